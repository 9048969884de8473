"""Canny edges per tile, drawn in blue over the tile (Clara Deploy's pathology "filtering" step).

Each tile is filtered on its padded window and only its core is kept. cv2.Canny's Sobel and
non-maximum suppression look 2 px around a pixel, so with ``overlap >= 2`` the core's candidate
and strong edge pixels equal those of Canny on the whole level; only hysteresis can differ, for a
weak chain whose link to a strong pixel leaves the padded window (the "overlap rule", checked by
:func:`overlap_rule_violations`).

Two implementations, pixel-equal (tested on the real slides): ``cv2`` (cv2.Canny, host only, the
faster default there) and ``array`` (:mod:`.canny_xp`, written once for numpy and cupy: the GPU
path, since OpenCV's CUDA module is not in the PyPI wheel, and a tested host fallback). Backend
``auto`` takes the array module from the data: cupy arrays go to ``array``, host arrays to ``cv2``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from clara_stream.operators.pathology.canny_xp import canny_xp, rgb_to_grey_xp

from clara_stream.arrays import array_module

__all__ = ["BLUE", "BACKENDS", "canny", "overlay", "filter_tile", "overlap_rule_violations"]

BLUE = (0, 0, 255)  # RGB
BACKENDS = ("auto", "cv2", "array")


def canny(rgb: Any, low: float, high: float, backend: str = "auto", l2gradient: bool = False) -> Any:
    """uint8 edge map (0 or 255) of an RGB uint8 image (grey as cv2's RGB2GRAY), on its device.

    Raises
    ------
    ValueError
        For an unknown backend, or ``cv2`` asked to filter device data.
    """
    if backend not in BACKENDS:
        raise ValueError(f"canny: expected backend in {BACKENDS}; got {backend!r}")
    xp = array_module(rgb)
    if backend == "array" or (backend == "auto" and xp is not np):
        return canny_xp(rgb_to_grey_xp(rgb), low, high, l2gradient=l2gradient)
    if xp is not np:
        raise ValueError("canny: expected host data for backend 'cv2'; got a device array (use 'auto' or 'array')")
    import cv2

    return cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), float(low), float(high), L2gradient=bool(l2gradient))


def overlay(rgb: Any, edges: Any, color: tuple[int, int, int] = BLUE) -> Any:
    """A copy of ``rgb`` with edge pixels set to ``color`` (on the data's device)."""
    xp = array_module(rgb)
    if xp is np and rgb.ndim == 3 and rgb.shape[2] == 3 and edges.dtype == np.uint8:
        import cv2  # a masked copy from a solid tile: ~10x faster than numpy's masked store

        return cv2.copyTo(_solid(rgb.shape, color), edges, np.array(rgb, order="C"))
    return xp.where((edges > 0)[..., None], xp.asarray(color, dtype=rgb.dtype), rgb)  # one kernel on a GPU


@functools.lru_cache(maxsize=32)
def _solid(shape: tuple[int, ...], color: tuple[int, int, int]) -> np.ndarray:
    out = np.empty(shape, np.uint8)
    out[:] = color
    out.setflags(write=False)
    return out


def filter_tile(window: Any, core: tuple[slice, slice], low: float, high: float, backend: str = "auto",
                l2gradient: bool = False) -> tuple[Any, Any]:  # fmt: skip
    """(overlaid core, edge core) of one tile filtered on its padded window, on the window's device."""
    edges = canny(window, low, high, backend, l2gradient)[core]
    edges = array_module(edges).ascontiguousarray(edges)
    return overlay(window[core], edges), edges


def overlap_rule_violations(tiled: np.ndarray, whole: np.ndarray, boxes: list, margin: int = 3) -> int:
    """Pixels where tiled edges differ from whole-image edges *outside* what the overlap allows.

    A difference is allowed only on an 8-connected edge chain (of either map) that comes within
    ``margin`` px of the edge of the padded window of the tile it lies in, not on the level border.
    ``boxes`` are the :class:`~clara_stream.operators.pathology.slide.TileBox` of the grid.
    """
    from scipy import ndimage

    diff = (tiled > 0) != (whole > 0)
    if not diff.any():
        return 0
    height, width = whole.shape
    near = np.zeros_like(diff)
    for b in boxes:
        x0, y0, x1, y1 = b.pad
        ring = np.zeros((y1 - y0, x1 - x0), bool)
        if y0 > 0:
            ring[:margin] = True
        if y1 < height:
            ring[-margin:] = True
        if x0 > 0:
            ring[:, :margin] = True
        if x1 < width:
            ring[:, -margin:] = True
        sl = (slice(b.y, b.y + b.h), slice(b.x, b.x + b.w))
        near[sl] |= ring[b.y - y0 : b.y - y0 + b.h, b.x - x0 : b.x - x0 + b.w]
        # a chain that reaches the ring inside this tile's window but outside its core counts too
        outside = ring.copy()
        outside[b.y - y0 : b.y - y0 + b.h, b.x - x0 : b.x - x0 + b.w] = False
        near[y0:y1, x0:x1] |= outside & ((tiled[y0:y1, x0:x1] > 0) | (whole[y0:y1, x0:x1] > 0))
    labels, _ = ndimage.label((tiled > 0) | (whole > 0), structure=np.ones((3, 3), bool))
    allowed = np.unique(labels[near & (labels > 0)])
    bad = diff & ~np.isin(labels, allowed)
    return int(bad.sum())
