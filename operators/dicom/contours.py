"""Exact planar contours of a pixel mask, and their even-odd fill back onto the pixel grid.

A contour here follows the *edges* of the mask's pixels (corners at half-pixel offsets), not the
centres of its boundary pixels. Each pixel centre is then strictly inside or outside every contour,
so filling the contours with the even-odd rule at pixel centres gives back exactly the mask: holes
are their own contours, pixels touching only at a corner stay separate. Coordinates are (x, y) in
pixel units, x along a row (column index), y down the columns (row index) — the DICOM image plane.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mask_outlines", "fill_even_odd"]


def _edges(mask: np.ndarray) -> np.ndarray:
    """Directed boundary edges (i0, j0, i1, j1) between pixel corners, inside pixels on the right."""
    m = np.pad(mask.astype(bool), 1)
    inner = m[1:, 1:-1]  # pixel (i, j) below horizontal corner line i
    above = m[:-1, 1:-1]
    i, j = np.nonzero(inner & ~above)  # top edges: (i, j) → (i, j+1)
    top = np.stack([i, j, i, j + 1], 1)
    i, j = np.nonzero(~inner & above)  # bottom edges: (i, j+1) → (i, j)
    bottom = np.stack([i, j + 1, i, j], 1)
    right_of = m[1:-1, 1:]  # pixel (i, j) right of vertical corner line j
    left_of = m[1:-1, :-1]
    i, j = np.nonzero(right_of & ~left_of)  # left edges: (i+1, j) → (i, j)
    left = np.stack([i + 1, j, i, j], 1)
    i, j = np.nonzero(~right_of & left_of)  # right edges: (i, j) → (i+1, j)
    right = np.stack([i, j, i + 1, j], 1)
    return np.concatenate([top, bottom, left, right])


def mask_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops along the pixel edges of a 2D bool mask, as (n, 2) float arrays of (x, y).

    Corner (i, j) of the pixel grid is the point (x, y) = (j - 0.5, i - 0.5); only corners where the
    outline turns are kept. Every loop is closed implicitly (the last point joins the first). Filling
    the loops with :func:`fill_even_odd` gives back ``mask`` exactly.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask_outlines: expected a 2D mask; got shape {mask.shape}")
    edges = _edges(mask)
    if edges.size == 0:
        return []
    width = mask.shape[1] + 1
    starts = (edges[:, 0] * width + edges[:, 1]).tolist()
    ends = (edges[:, 2] * width + edges[:, 3]).tolist()
    outgoing: dict[int, list[int]] = {}  # vertex → its unused outgoing edges (one, or two at a diagonal touch)
    for e, v in enumerate(starts):
        outgoing.setdefault(v, []).append(e)
    loops = []
    for e0 in range(len(starts)):
        if e0 not in outgoing.get(starts[e0], ()):
            continue  # already walked
        vertices = []
        e: int | None = e0
        while e is not None:  # in-degree = out-degree everywhere: the walk can only end at its start
            outgoing[starts[e]].remove(e)
            vertices.append(starts[e])
            nxt = outgoing.get(ends[e])
            e = nxt[0] if nxt else None
        pts = np.array([(v % width, v // width) for v in vertices], dtype=np.float64) - 0.5
        loops.append(_corners(pts))
    return loops


def _corners(pts: np.ndarray) -> np.ndarray:
    """Drop the points where a closed outline goes straight on."""
    d_in = pts - np.roll(pts, 1, axis=0)
    d_out = np.roll(pts, -1, axis=0) - pts
    turn = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0
    return pts[turn] if turn.any() else pts


def fill_even_odd(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Bool (rows, cols) mask of the pixel centres inside an odd number of the (x, y) polygons.

    A centre on an edge counts as inside when the edge is at or left of it (half-open rule); with the
    half-pixel corners of :func:`mask_outlines` no centre lies on an edge.
    """
    rows, cols = shape
    toggles = np.zeros((rows, cols + 1), dtype=np.int32)
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        q = np.roll(p, -1, axis=0)
        for (x0, y0), (x1, y1) in zip(p, q, strict=True):
            if y0 == y1:
                continue
            lo, hi = min(y0, y1), max(y0, y1)
            r = np.arange(max(int(np.ceil(lo)), 0), min(int(np.ceil(hi)), rows))
            if r.size == 0:
                continue
            x = x0 + (r - y0) * (x1 - x0) / (y1 - y0)
            np.add.at(toggles, (r, np.clip(np.ceil(x), 0, cols).astype(np.intp)), 1)
    return (np.cumsum(toggles, axis=1)[:, :cols] % 2).astype(bool)
