"""Render-side image containers: a volume with its LPS geometry and optional label map.

Volumes are numpy arrays in (z, y, x) order; their geometry is
:class:`clara_stream.geometry.ImageGeometry` (origin/spacing/direction, LPS, spacing in x, y, z).
A volume without real geometry (``has_geometry=False``) still renders, but measurements are then
reported in pixels, never in invented millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clara_stream.geometry import ImageGeometry

#: dtypes the kernels accept for intensities (others are converted once at load).
VOLUME_DTYPES = (np.int16, np.uint8, np.uint16, np.float32)


@dataclass
class Volume:
    """A 3D image to render.

    Parameters
    ----------
    data : ndarray (z, y, x)
        Intensities; int16, uint8, uint16 or float32 (others are converted to float32).
    geometry : ImageGeometry
        Where the voxels lie in LPS mm.
    labels : ndarray (z, y, x) of uint8, optional
        Label map on the same grid (0 = background).
    has_geometry : bool
        False when the source carried no spacing (measurements then in pixels).
    """

    data: np.ndarray
    geometry: ImageGeometry = field(default_factory=ImageGeometry)
    labels: np.ndarray | None = None
    has_geometry: bool = True
    _coarse: dict[int, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or min(self.data.shape) < 1:
            raise ValueError(f"Volume: expected a (z, y, x) array; got shape {self.data.shape}")
        if self.data.dtype not in VOLUME_DTYPES:
            self.data = self.data.astype(np.float32)
        self.data = np.ascontiguousarray(self.data)
        if self.labels is not None:
            if self.labels.shape != self.data.shape:
                raise ValueError(f"Volume: expected labels of shape {self.data.shape}; got {self.labels.shape}")
            if self.labels.min(initial=0) < 0 or self.labels.max(initial=0) > 255:
                raise ValueError("Volume: expected label values in 0..255")
            self.labels = np.ascontiguousarray(self.labels.astype(np.uint8, copy=False))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def index_matrix(self) -> np.ndarray:
        """3×3 map from an (x, y, z) index step to an LPS mm step (direction · diag(spacing))."""
        return self.geometry.direction_matrix * np.asarray(self.geometry.spacing)[None, :]

    def to_index_xyz(self, points_mm: np.ndarray) -> np.ndarray:
        """Continuous (x, y, z) index of LPS points (…, 3)."""
        inv = np.linalg.inv(self.index_matrix)
        return (np.asarray(points_mm, dtype=np.float64) - np.asarray(self.geometry.origin)) @ inv.T

    def to_mm(self, index_xyz: np.ndarray) -> np.ndarray:
        """LPS mm of continuous (x, y, z) indices (…, 3)."""
        return np.asarray(index_xyz, dtype=np.float64) @ self.index_matrix.T + np.asarray(self.geometry.origin)

    @property
    def center_mm(self) -> np.ndarray:
        z, y, x = self.shape_zyx
        return self.to_mm(np.array([(x - 1) / 2, (y - 1) / 2, (z - 1) / 2]))

    @property
    def extent_mm(self) -> np.ndarray:
        """Physical size along the x, y and z index axes (mm)."""
        z, y, x = self.shape_zyx
        return np.array([x, y, z], dtype=np.float64) * np.asarray(self.geometry.spacing)

    def value_range(self) -> tuple[float, float]:
        """Robust intensity range (0.5 and 99.5 percentiles of a subsample)."""
        sample = self.data[:: max(1, self.data.shape[0] // 16), ::4, ::4]
        lo, hi = np.percentile(sample, [0.5, 99.5])
        return float(lo), float(max(hi, lo + 1))

    def device_data(self, factor: int = 1):
        """cupy copy of the (``factor``-pooled) intensities, uploaded once (GPU rendering)."""
        from clara_stream.render import gpu

        cache = self.__dict__.setdefault("_device", {})
        if factor not in cache:
            cache[factor] = gpu.device_volume(self.coarse(factor)[0])
        return cache[factor]

    def block_max(self, factor: int = 1) -> np.ndarray:
        """8³-block maxima of the (``factor``-pooled) intensities, cached (MIP skipping)."""
        from clara_stream.render.kernels import block_max

        key = -factor
        if key not in self._coarse:
            self._coarse[key] = (block_max(self.coarse(factor)[0]), None)
        return self._coarse[key][0]

    def coarse(self, factor: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Max-pooled copy (intensities) and nearest-sampled labels, ``factor`` per axis, cached.

        Used for interactive MIP/composite frames: max pooling keeps thin bright structures
        (contrast vessels, bone) visible in a MIP at a fraction of the cost.
        """
        if factor <= 1:
            return self.data, self.labels
        if factor not in self._coarse:
            z, y, x = (s // factor * factor for s in self.data.shape)
            if min(z, y, x) == 0:
                return self.data, self.labels
            d = self.data[:z, :y, :x].reshape(z // factor, factor, y // factor, factor, x // factor, factor)
            pooled = np.ascontiguousarray(d.max(axis=(1, 3, 5)))
            labels = None
            if self.labels is not None:
                labels = np.ascontiguousarray(self.labels[:z:factor, :y:factor, :x:factor])
            self._coarse[factor] = (pooled, labels)
        return self._coarse[factor]
