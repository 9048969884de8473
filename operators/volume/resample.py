"""Resample (z, y, x) volumes between grids, in patient space (LPS), keeping geometry exact.

A grid is an :class:`~clara_stream.geometry.ImageGeometry` plus a shape. Mapping a target voxel to
the source is one affine (both grids are affine), so every resampling here is a single
``scipy.ndimage.affine_transform``: linear for images and probabilities, nearest for labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from clara_stream.geometry import ImageGeometry

__all__ = ["spacing_grid", "resample_to_grid", "resample_to_spacing"]


def spacing_grid(
    shape: Sequence[int], geometry: ImageGeometry, spacing: Sequence[float]
) -> tuple[tuple[int, int, int], ImageGeometry]:
    """The grid covering the same extent as (``shape``, ``geometry``) with a new (x, y, z) ``spacing``.

    The first voxel's outer corner stays put; the number of voxels per axis is the extent divided by
    the new spacing, rounded (at least 1).
    """
    new_sp = np.asarray([float(s) for s in spacing])
    if new_sp.shape != (3,) or np.any(new_sp <= 0):
        raise ValueError(f"Resample: expected 3 spacings > 0 (x, y, z mm); got {list(spacing)}")
    old_sp = np.asarray(geometry.spacing)
    n_xyz = np.asarray(shape[::-1], dtype=float)
    new_n = np.maximum(1, np.rint(n_xyz * old_sp / new_sp)).astype(int)
    d = geometry.direction_matrix
    corner = np.asarray(geometry.origin) - d @ (old_sp / 2)
    origin = corner + d @ (new_sp / 2)
    new_geom = ImageGeometry(tuple(origin), tuple(new_sp), geometry.direction)
    return (int(new_n[2]), int(new_n[1]), int(new_n[0])), new_geom


def resample_to_grid(
    array: np.ndarray,
    geometry: ImageGeometry,
    shape: Sequence[int],
    target: ImageGeometry,
    *,
    order: int = 1,
    cval: float | None = None,
    out_dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """Sample ``array`` (on ``geometry``) at the voxel centres of the target grid.

    Parameters
    ----------
    array : (z, y, x) or (c, z, y, x); channels are resampled one by one.
    order : 0 nearest (labels), 1 linear (images, probabilities), up to 3.
    cval : value outside the source (default: the array's minimum, e.g. air for CT).
    out_dtype : result dtype (default: float32 for order > 0, the input dtype for order 0).
    """
    if array.ndim == 4:
        return np.stack(
            [resample_to_grid(a, geometry, shape, target, order=order, cval=cval, out_dtype=out_dtype) for a in array]
        )
    if array.ndim != 3:
        raise ValueError(f"Resample: expected a (z, y, x) or (c, z, y, x) array; got shape {array.shape}")
    src = geometry.direction_matrix * np.asarray(geometry.spacing)
    dst = target.direction_matrix * np.asarray(target.spacing)
    m_xyz = np.linalg.solve(src, dst)  # target index (x, y, z) -> source index (x, y, z)
    off_xyz = np.linalg.solve(src, np.asarray(target.origin) - np.asarray(geometry.origin))
    m_zyx = m_xyz[::-1, ::-1]
    off_zyx = off_xyz[::-1]
    if out_dtype is None:
        out_dtype = array.dtype if order == 0 else np.float32
    fill = float(array.min()) if cval is None else float(cval)
    shape = tuple(int(s) for s in shape)
    if np.allclose(m_zyx, np.diag(np.diag(m_zyx)), atol=1e-9):
        matrix: np.ndarray = np.diag(m_zyx)  # axis-aligned: the fast separable path
    else:
        matrix = m_zyx
    src_arr = array if order == 0 or array.dtype == np.float32 else array.astype(np.float32)
    out = ndimage.affine_transform(
        src_arr, matrix, offset=off_zyx, output_shape=shape, order=order, mode="constant", cval=fill
    )
    if np.dtype(out_dtype).kind in "iu" and order > 0:
        out = np.rint(out)
    return out.astype(out_dtype, copy=False)


def resample_to_spacing(
    array: np.ndarray, geometry: ImageGeometry, spacing: Sequence[float], *, order: int = 1
) -> tuple[np.ndarray, ImageGeometry]:
    """Resample to a new (x, y, z) spacing over the same extent; returns (array, geometry)."""
    shape, target = spacing_grid(array.shape[-3:], geometry, spacing)
    return resample_to_grid(array, geometry, shape, target, order=order), target
