"""Latency summary statistics (HoloHub's set: percentiles, tail, flatness)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99, 99.9)


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """min, mean, p50…p99.9, max, stddev, tail (p100 − p95), flatness (p90 − p10), count.

    Raises
    ------
    ValueError
        If there are no samples.
    """
    v = np.asarray(samples_ms, dtype=np.float64)
    if v.size == 0:
        raise ValueError("stats.summarize: expected at least one latency sample; got none")
    pct = {f"p{p:g}": float(np.percentile(v, p)) for p in PERCENTILES}
    p10 = float(np.percentile(v, 10))
    return {
        "count": int(v.size),
        "min": float(v.min()),
        "mean": float(v.mean()),
        **pct,
        "max": float(v.max()),
        "stddev": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "tail": float(v.max()) - pct["p95"],
        "flatness": pct["p90"] - p10,
    }
