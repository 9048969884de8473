"""Latency and throughput summaries (percentiles in ms) for pipeline runs and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float | int]:
    """``{"frames", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}`` of per-frame latencies."""
    a = np.asarray(latencies_s, np.float64) * 1e3
    if a.size == 0:
        return {"frames": 0}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "frames": int(a.size),
        "p50_ms": round(float(p50), 2),
        "p90_ms": round(float(p90), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(a.max()), 2),
        "mean_ms": round(float(a.mean()), 2),
    }
