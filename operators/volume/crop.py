"""Crop a (z, y, x) volume to a box as a zero-copy view, with the cropped geometry.

The crop is a NumPy/CuPy slice of the original buffer, so it can be passed between operators
without a copy (the seed's shared-memory 3D pipeline); ``clara_stream.arrays.count_copies`` proves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

__all__ = ["CropBox", "crop_view", "box_from_mm", "bounding_box"]

CropBox = tuple[tuple[int, int, int], tuple[int, int, int]]  # (start zyx, stop zyx), stop exclusive


def _validate(box: Any, shape: Sequence[int]) -> CropBox:
    try:
        start, stop = (tuple(int(v) for v in box[0]), tuple(int(v) for v in box[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"Crop: expected a box [[z0, y0, x0], [z1, y1, x1]]; got {box!r}") from exc
    if len(start) != 3 or len(stop) != 3:
        raise ValueError(f"Crop: expected 3 start and 3 stop indices; got {box!r}")
    for a, b, n, axis in zip(start, stop, shape, "zyx", strict=True):
        if not 0 <= a < b <= n:
            raise ValueError(
                f"Crop: expected 0 <= start < stop <= {n} on axis {axis}; got {a}..{b} (shape {tuple(shape)})"
            )
    return start, stop  # type: ignore[return-value]


def crop_view(array: Any, geometry: ImageGeometry, box: Any) -> tuple[Any, ImageGeometry]:
    """Return (view of ``array`` inside ``box``, geometry of the view); no data is copied.

    Parameters
    ----------
    array : (z, y, x) numpy or cupy array (or (c, z, y, x): the box applies to the last three axes).
    box : ((z0, y0, x0), (z1, y1, x1)) voxel indices, stop exclusive.

    Raises
    ------
    ValueError
        If the box is malformed, empty or outside the volume.
    """
    start, stop = _validate(box, array.shape[-3:])
    sl = (Ellipsis, *(slice(a, b) for a, b in zip(start, stop, strict=True)))
    return array[sl], geometry.cropped(start)


def box_from_mm(
    shape: Sequence[int], geometry: ImageGeometry, lo_mm: Sequence[float], hi_mm: Sequence[float]
) -> CropBox:
    """The voxel box covering the LPS box with corners ``lo_mm`` and ``hi_mm``, clipped to the volume.

    Raises
    ------
    ValueError
        If the LPS box holds no voxel centre of the volume (entirely outside it): a crop there is a
        mistake, not a 1-voxel result.
    """
    corners = np.array(
        [[x, y, z] for x in (lo_mm[0], hi_mm[0]) for y in (lo_mm[1], hi_mm[1]) for z in (lo_mm[2], hi_mm[2])]
    )
    idx = geometry.physical_to_index(corners)
    n = np.asarray(shape)
    lo, hi = np.floor(idx.min(axis=0) + 0.5), np.floor(idx.max(axis=0) + 0.5) + 1
    outside = [axis for axis, a, b, m in zip("zyx", lo, hi, n, strict=True) if b <= 0 or a >= m]
    if outside:
        far = geometry.index_to_physical(n - 1)
        near = np.asarray(geometry.origin)
        raise ValueError(
            f"Crop: expected box_mm to overlap the volume; got {[list(lo_mm), list(hi_mm)]} mm, outside along "
            f"index axis {', '.join(outside)} (voxel centres span {np.round(np.minimum(near, far), 2).tolist()} .. "
            f"{np.round(np.maximum(near, far), 2).tolist()} mm LPS)"
        )
    lo = np.clip(lo, 0, n - 1).astype(int)
    hi = np.clip(hi, 1, n).astype(int)
    return _validate((tuple(lo), tuple(hi)), shape)


def bounding_box(mask: np.ndarray, margin: int = 0) -> CropBox | None:
    """Tight box around the non-zero voxels of ``mask`` grown by ``margin`` voxels (None if empty)."""
    nz = np.nonzero(mask)
    if not nz[0].size:
        return None
    lo = [max(0, int(a.min()) - margin) for a in nz]
    hi = [min(n, int(a.max()) + 1 + margin) for a, n in zip(nz, mask.shape, strict=True)]
    return tuple(lo), tuple(hi)  # type: ignore[return-value]
