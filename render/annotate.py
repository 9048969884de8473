"""Annotations drawn into frames: scale bar, picture-in-picture overview, and encoding."""

from __future__ import annotations

import math

import cv2
import numpy as np

PIP_FRACTION = 0.25


def nice_length(target: float) -> float:
    """The largest 1/2/5·10^n not above ``target`` (scale bars read in round numbers)."""
    if target <= 0 or not math.isfinite(target):
        raise ValueError(f"nice_length: expected a positive finite length; got {target}")
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**exp <= target:
            return float(m * 10**exp)
    return float(10**exp)


def draw_scale_bar(rgb: np.ndarray, units_per_px: float, unit: str) -> tuple[float, int]:
    """Draw a scale bar (bottom left) in place; return (length in ``unit``, length in px).

    ``unit`` is ``mm`` or ``µm`` when the data has geometry, ``px`` otherwise.
    """
    h, w = rgb.shape[:2]
    length = nice_length(units_per_px * w * 0.2)
    px = max(1, int(round(length / units_per_px)))
    x0, y0 = 12, h - 14
    thick = max(2, h // 170)
    text = f"{length:g} {unit}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    # a dark plate keeps bar and label readable on bright (slide) and dark (CT) backgrounds alike
    x1, top = x0 + max(px, tw) + 6, y0 - thick - th - 14
    plate = rgb[max(0, top) : y0 + 6, max(0, x0 - 6) : min(w, x1)]
    plate[:] = (plate.astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.rectangle(rgb, (x0, y0 - thick), (x0 + px, y0), (255, 255, 255), -1)
    cv2.putText(rgb, text, (x0, y0 - thick - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return length, px


def draw_pip(rgb: np.ndarray, overview: np.ndarray, box: tuple[float, float, float, float] | None) -> None:
    """Paste ``overview`` (already PiP-sized) bottom right, with the visible ``box`` outlined.

    ``box`` is (x0, y0, x1, y1) in overview pixels (clipped to it), or None.
    """
    h, w = rgb.shape[:2]
    oh, ow = overview.shape[:2]
    y0, x0 = h - oh - 8, w - ow - 8
    if y0 < 0 or x0 < 0:
        return
    rgb[y0 - 2 : y0 + oh + 2, x0 - 2 : x0 + ow + 2] = (255, 255, 255)
    rgb[y0 : y0 + oh, x0 : x0 + ow] = overview
    if box is not None:
        bx0, by0, bx1, by1 = (int(round(v)) for v in box)
        bx0, bx1 = max(0, bx0), min(ow - 1, bx1)
        by0, by1 = max(0, by0), min(oh - 1, by1)
        if bx1 > bx0 and by1 > by0:
            cv2.rectangle(rgb, (x0 + bx0, y0 + by0), (x0 + bx1, y0 + by1), (255, 220, 0), 1)


def pip_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the overview inset for a viewport."""
    return max(16, int(width * PIP_FRACTION)), max(16, int(height * PIP_FRACTION))


def encode(rgb: np.ndarray, fmt: str, quality: int = 85) -> bytes:
    """Encode an RGB uint8 frame as ``jpeg`` or ``png`` bytes, or ``rgb``: the raw rows (for a
    co-located video encoder, which would otherwise decode a JPEG first)."""
    if fmt == "rgb":
        return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"encode: expected format jpeg or png; got {fmt!r}")
    if not ok:
        raise ValueError(f"encode: expected an encodable RGB frame; got shape {rgb.shape}")
    return buf.tobytes()

