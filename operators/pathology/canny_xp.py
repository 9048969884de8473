"""Canny edges written once against the array API: numpy on the host, cupy on a GPU.

OpenCV's CUDA module is not in the PyPI wheel, so the GPU path is this code running on cupy; on
the host it is the tested fallback (cv2.Canny stays the faster default there). It follows
OpenCV's ``canny.cpp`` (aperture 3) step for step, so the result is pixel-equal to ``cv2.Canny``:

* no blur: the image is taken as is;
* Sobel 3x3 (separable: [-1 0 1] across, [1 2 1] down, and the transpose), border replicated;
* magnitude |dx| + |dy| (L1, default) or dx² + dy² (``l2gradient``, thresholds then squared);
  thresholds swapped if low > high, then floored; magnitude outside the image is 0;
* non-maximum suppression in OpenCV's fixed-point bins (tan 22.5° as 13573 / 2**15):
  horizontal keeps ``m > left and m >= right``, vertical ``m > up and m >= down``, diagonals
  ``m > both neighbours`` along the direction set by the signs of dx and dy;
* a candidate has ``m > low`` and survives suppression, a strong pixel also ``m > high``;
* hysteresis: OpenCV's stack walk marks every candidate 8-connected to a strong one, which is
  exactly the 8-connected components of the candidates that hold a strong pixel
  (``scipy.ndimage.label`` on the host, ``cupyx.scipy.ndimage.label`` on the GPU).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from clara_stream.arrays import array_module

__all__ = ["canny_xp", "rgb_to_grey_xp", "TG22"]

TG22 = 13573  # round(tan(22.5°) * 2**15), OpenCV's CANNY_SHIFT = 15
_SHIFT = 15
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity; both label functions take a host structure


def _ndimage(xp: ModuleType) -> ModuleType:
    if xp.__name__ == "numpy":
        from scipy import ndimage
    else:
        from cupyx.scipy import ndimage
    return ndimage


def rgb_to_grey_xp(rgb: Any) -> Any:
    """uint8 grey of an RGB uint8 image as cv2 5's RGB2GRAY: ITU-R 601 weights in 15-bit fixed point."""
    xp = array_module(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != xp.uint8:
        raise ValueError(f"rgb_to_grey_xp: expected RGB uint8 (rows, cols, 3); got {rgb.dtype} {tuple(rgb.shape)}")
    c = rgb[..., :3].astype(xp.int32)
    return ((c[..., 0] * 9798 + c[..., 1] * 19235 + c[..., 2] * 3735 + (1 << 14)) >> 15).astype(xp.uint8)


def _thresholds(low: float, high: float, l2gradient: bool) -> tuple[int, int]:
    """cv2.Canny's integer thresholds: swapped if reversed, squared for L2 (capped at 32767), floored."""
    low, high = float(low), float(high)
    if low > high:
        low, high = high, low
    if l2gradient:
        low, high = min(32767.0, low), min(32767.0, high)
        low, high = (low * low if low > 0 else low), (high * high if high > 0 else high)
    return math.floor(low), math.floor(high)


def canny_xp(grey: Any, low: float, high: float, *, l2gradient: bool = False) -> Any:
    """uint8 edge map (0 or 255) of a 2-D uint8 image, on the image's own device.

    Raises
    ------
    ValueError
        If the image is not 2-D uint8 or is empty.
    """
    xp = array_module(grey)
    if grey.ndim != 2 or grey.dtype != xp.uint8 or min(grey.shape) < 1:
        raise ValueError(f"canny_xp: expected a non-empty 2-D uint8 image; got {grey.dtype} {tuple(grey.shape)}")
    lo, hi = _thresholds(low, high, l2gradient)
    p = xp.pad(grey.astype(xp.int32), 1, mode="edge")  # BORDER_REPLICATE
    d = p[:, 2:] - p[:, :-2]
    dx = d[:-2] + 2 * d[1:-1] + d[2:]
    s = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    dy = s[2:] - s[:-2]
    mag = dx * dx + dy * dy if l2gradient else xp.abs(dx) + xp.abs(dy)

    m = xp.pad(mag, 1)  # 0 outside the image
    c = m[1:-1, 1:-1]
    ax, ay = xp.abs(dx), xp.abs(dy) << _SHIFT
    tg22x = ax * TG22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << (_SHIFT + 1)))
    diagonal = ~horizontal & ~vertical
    same_sign = (dx ^ dy) >= 0  # OpenCV: s = 1 unless the signs differ
    keep = horizontal & (c > m[1:-1, :-2]) & (c >= m[1:-1, 2:])
    keep |= vertical & (c > m[:-2, 1:-1]) & (c >= m[2:, 1:-1])
    keep |= diagonal & same_sign & (c > m[:-2, :-2]) & (c > m[2:, 2:])
    keep |= diagonal & ~same_sign & (c > m[:-2, 2:]) & (c > m[2:, :-2])
    candidate = keep & (c > lo)
    strong = candidate & (c > hi)

    labels, n = _ndimage(xp).label(candidate, structure=_EIGHT)
    linked = xp.zeros(int(n) + 1, dtype=bool)
    linked[labels[strong]] = True
    linked[0] = False
    return linked[labels].astype(xp.uint8) * xp.uint8(255)
