"""Geometry that travels with the data: image geometry (LPS) and video frame info.

Volumes are numpy arrays in (z, y, x) order. :class:`ImageGeometry` follows the DICOM/ITK
convention that SimpleITK uses: ``origin`` is the LPS position (mm) of voxel (0, 0, 0),
``spacing`` is (x, y, z) mm, and ``direction`` is a 3×3 matrix whose *columns* are the x, y and z
index axes as LPS unit vectors. Conversions to other conventions (RAS, channel-first) happen only
in the operator that needs them; :meth:`ImageGeometry.ras_affine` is provided for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _triple(name: str, value: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ValueError(f"ImageGeometry: expected {name} as 3 finite numbers; got {value!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageGeometry:
    """Where the voxels of a (z, y, x) array lie in patient space (LPS, mm).

    Parameters
    ----------
    origin : 3 floats
        LPS position of the centre of voxel (0, 0, 0), in mm.
    spacing : 3 floats
        Voxel size along the x, y and z index axes, in mm, each > 0.
    direction : 3×3 floats
        Columns are the unit vectors of the x, y, z index axes in LPS (row-major, as SimpleITK's
        ``GetDirection()`` flattened).

    Raises
    ------
    ValueError
        If a spacing is not positive or the direction is not orthonormal within 1e-3.
    """

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: tuple[float, ...] = field(default=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _triple("origin", self.origin))
        object.__setattr__(self, "spacing", _triple("spacing", self.spacing))
        d = np.asarray(self.direction, dtype=np.float64).reshape(-1)
        if d.size != 9:
            raise ValueError(f"ImageGeometry: expected direction of 9 numbers; got {d.size}")
        if min(self.spacing) <= 0:
            raise ValueError(f"ImageGeometry: expected spacing > 0; got {self.spacing}")
        m = d.reshape(3, 3)
        if not np.allclose(m.T @ m, np.eye(3), atol=1e-3):
            raise ValueError(f"ImageGeometry: expected orthonormal direction cosines; got {d.round(6).tolist()}")
        object.__setattr__(self, "direction", tuple(float(v) for v in d))

    @property
    def direction_matrix(self) -> np.ndarray:
        """3×3 array; column i is index axis i (x, y, z) in LPS."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def affine(self) -> np.ndarray:
        """4×4 LPS affine mapping an (x, y, z) index (column vector) to mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    def ras_affine(self) -> np.ndarray:
        """4×4 RAS affine (NIfTI/MONAI convention) for the same (x, y, z) index."""
        return _LPS_TO_RAS @ self.affine()

    def index_to_physical(self, zyx: Sequence[float] | np.ndarray) -> np.ndarray:
        """LPS mm of one (z, y, x) index or an (N, 3) array of them."""
        idx = np.asarray(zyx, dtype=np.float64)[..., ::-1]
        return idx @ (self.direction_matrix * np.asarray(self.spacing)).T + np.asarray(self.origin)

    def physical_to_index(self, lps: Sequence[float] | np.ndarray) -> np.ndarray:
        """Continuous (z, y, x) index of one LPS point (mm) or an (N, 3) array of them."""
        m = self.direction_matrix * np.asarray(self.spacing)
        xyz = (np.asarray(lps, dtype=np.float64) - np.asarray(self.origin)) @ np.linalg.inv(m).T
        return xyz[..., ::-1]

    def distance_mm(self, zyx_a: Sequence[float], zyx_b: Sequence[float]) -> float:
        """Euclidean distance in mm between two (z, y, x) indices."""
        return float(np.linalg.norm(self.index_to_physical(zyx_a) - self.index_to_physical(zyx_b)))

    def cropped(self, start_zyx: Sequence[int]) -> ImageGeometry:
        """Geometry of a sub-volume starting at ``start_zyx`` (same spacing and direction)."""
        return ImageGeometry(tuple(self.index_to_physical(start_zyx)), self.spacing, self.direction)

    def to_dict(self) -> dict[str, list[float]]:
        return {"origin": list(self.origin), "spacing": list(self.spacing), "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageGeometry:
        return cls(tuple(d["origin"]), tuple(d["spacing"]), tuple(d.get("direction", cls().direction)))

    @classmethod
    def from_sitk(cls, image: Any) -> ImageGeometry:
        """From a SimpleITK image (the reference implementation of this convention)."""
        return cls(image.GetOrigin(), image.GetSpacing(), image.GetDirection())

    def apply_to_sitk(self, image: Any) -> Any:
        """Set this geometry on a SimpleITK image (returned for chaining)."""
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    def allclose(self, other: ImageGeometry, atol: float = 1e-4) -> bool:
        """Equal within ``atol`` on origin, spacing and direction."""
        return bool(
            np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )


@dataclass(frozen=True)
class FrameInfo:
    """Timing of one video frame: presentation timestamp, time base, index and source rate.

    ``pts * time_base`` is the presentation time in seconds.
    """

    pts: int
    time_base: Fraction
    index: int
    rate: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_base", Fraction(self.time_base))
        object.__setattr__(self, "rate", Fraction(self.rate))
        if self.time_base <= 0 or self.rate <= 0:
            raise ValueError(f"FrameInfo: expected time_base and rate > 0; got {self.time_base}, {self.rate}")
        if self.index < 0:
            raise ValueError(f"FrameInfo: expected index >= 0; got {self.index}")

    @property
    def time_s(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    def to_dict(self) -> dict[str, Any]:
        return {"pts": self.pts, "time_base": str(self.time_base), "index": self.index, "rate": str(self.rate)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameInfo:
        return cls(int(d["pts"]), Fraction(d["time_base"]), int(d["index"]), Fraction(d["rate"]))
