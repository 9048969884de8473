"""Pure helpers behind the generic operators (no holoscan import)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind
from clara_stream.geometry import FrameInfo

F32_IMAGE = Contract(kind=Kind.TENSOR, dtypes=("float32",), shape=("H", "W"), layout="HW",
                     domain="image/intensity", device=Device.ANY, meta=(P.FRAME_INFO,),
                     description="float32 greyscale frame with its timing")


def blob_frame(index: int, height: int, width: int, period: int = 60) -> np.ndarray:
    """A Gaussian blob moving on a circle: a frame whose content depends on its index."""
    t = 2 * np.pi * (index % period) / period
    cy, cx = height / 2 + height / 4 * np.sin(t), width / 2 + width / 4 * np.cos(t)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    sigma = max(height, width) / 12
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def frame_info(index: int, rate: Fraction) -> FrameInfo:
    """Timing of frame ``index`` at ``rate`` frames per second (time base 1/rate)."""
    return FrameInfo(pts=index, time_base=1 / rate, index=index, rate=rate)


def summarise(values: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of per-frame statistics collected by a sink."""
    if not values:
        return {"frames": 0}
    means = np.array([v["mean"] for v in values])
    return {
        "frames": len(values),
        "first_index": values[0]["index"],
        "last_index": values[-1]["index"],
        "mean_of_means": float(means.mean()),
        "max": float(max(v["max"] for v in values)),
    }
