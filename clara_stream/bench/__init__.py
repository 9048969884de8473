"""Latency benchmarking of any app: Holoscan data-flow tracking logs → percentiles, plots, reports.

Holoscan's tracker reports only min/avg/max; the per-message receive/publish timestamps in its
log give the full distribution (HoloHub's flow benchmarking method: latency = sink publish −
source receive).
"""
