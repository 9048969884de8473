"""Chest CT phantom for the COVID-style lung pipeline: lungs, airways, vessels, with or without
ground-glass-like lesions, written as a real DICOM CT series plus the lung label volume.

Built in patient coordinates (LPS, mm) like :mod:`clara_stream.samples.ct`: body wall, two lungs
(-860 HU parenchyma with vessel-like bright spots), trachea and main bronchi (air), heart and
mediastinum, spine. ``lesions=True`` adds 2-6 blurred ground-glass opacities (-550..-250 HU),
peripheral and lower-lobe biased as in COVID-19 pneumonia; the class label is whether there are any.
Voxels are anisotropic (1.9 x 1.7 mm in plane, 6 mm slices by default, coarse for CPU training):
a swapped axis shows.

Labels: 0 background, 1 lung (airways and lesions inside the lung count as lung).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABELS", "make_phantom", "write_sample"]

LABELS: dict[int, tuple[str, str, str]] = {1: ("lung", "39607008", "Lung")}


def make_phantom(
    shape: tuple[int, int, int] = (40, 160, 192),
    *,
    seed: int = 0,
    spacing: tuple[float, float, float] = (1.9, 1.7, 6.0),
    lesions: bool = False,
    noise_hu: float = 20.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(hu int16 (z, y, x), labels uint8 (z, y, x), geometry dict); identity direction (axial)."""
    from scipy import ndimage

    nz, ny, nx = (int(v) for v in shape)
    if min(nz, ny, nx) < 2:
        raise ValueError(f"chest: expected shape with every axis >= 2; got {shape}")
    rng = np.random.default_rng(seed)
    sx, sy, sz = (round(float(v), 6) for v in spacing)
    origin = [round(-(n - 1) * s / 2, 6) for n, s in ((nx, sx), (ny, sy), (nz, sz))]
    z = (origin[2] + sz * np.arange(nz, dtype=np.float32))[:, None, None]
    y = (origin[1] + sy * np.arange(ny, dtype=np.float32))[None, :, None]
    x = (origin[0] + sx * np.arange(nx, dtype=np.float32))[None, None, :]

    def u(a: float, b: float) -> float:
        return float(rng.uniform(a, b))

    def ell(c: tuple[float, float, float], r: tuple[float, float, float]) -> np.ndarray:
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0

    full = np.zeros((nz, ny, nx), bool)
    hu = np.full((nz, ny, nx), -1000.0, np.float32)
    bx, by = u(150, 170), u(105, 120)
    body = full | ((x / bx) ** 2 + (y / by) ** 2 <= 1)
    hu[body] = -90  # fat
    hu[full | ((x / (bx - 12)) ** 2 + (y / (by - 12)) ** 2 <= 1)] = 40  # chest wall muscle
    lungs = np.zeros_like(full)
    half_z = nz * sz / 2
    for side in (-1, 1):
        c = (side * u(62, 72), u(-5, 5), u(-10, 10))
        r = (u(48, 56), u(70, 80), half_z * u(0.85, 1.0))
        lung = ell(c, r) & ~ell((0, u(20, 30), 0), (u(38, 45), u(40, 48), 999))  # heart notch
        lungs |= lung
    lungs &= body
    hu[lungs] = -860
    vessels = rng.normal(0, 1, lungs.shape).astype(np.float32)
    vessels = ndimage.gaussian_filter(vessels, (0.6, 1.2, 1.2))
    vessels = vessels > 2.3 * vessels.std()
    hu[lungs & vessels] = -150
    hu[ell((0, u(15, 25), u(-5, 5)), (u(40, 48), u(38, 45), half_z))] = 45  # heart / mediastinum
    hu[full | (((x - u(-3, 3)) ** 2 + (y - u(80, 90)) ** 2) <= u(14, 18) ** 2)] = 420  # spine
    trachea = full | ((x**2 + (y + u(-35, -25)) ** 2 <= 81) & (z > 0))
    hu[trachea & body] = -1000
    for side in (-1, 1):  # main bronchi: tubes from the carina into each lung
        t = np.clip((x * side) / 40.0, 0, 1)
        bronchus = ((y + 30 - 10 * t) ** 2 + (z + 12 * t) ** 2 <= 36) & (x * side > 0) & (x * side < 45)
        hu[bronchus & body] = -1000
    labels = lungs.astype(np.uint8)
    if lesions:
        for _ in range(int(rng.integers(3, 8))):
            idx = np.argwhere(lungs)
            w = np.exp(-np.abs(idx[:, 2] - nx / 2) / (nx / 6)) ** -1 * np.exp(-idx[:, 0] / max(nz, 1))
            k, j, i = idx[rng.choice(len(idx), p=w / w.sum())]
            c = (origin[0] + i * sx, origin[1] + j * sy, origin[2] + k * sz)
            blob = ell(c, (u(15, 32), u(15, 32), u(10, 20))) & lungs
            soft = ndimage.gaussian_filter(blob.astype(np.float32), (0.5, 1.5, 1.5))
            hu = np.where(lungs, hu + soft * (u(-550, -250) + 860), hu)
    hu += rng.normal(0, noise_hu, hu.shape).astype(np.float32)
    geometry = {"origin": origin, "spacing": [sx, sy, sz], "direction": [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]}
    return hu.clip(-1024, 3071).astype(np.int16), labels, geometry


def write_sample(out_dir: Path, *, seed: int = 0, lesions: bool = True, shape: Any = (40, 160, 192),
                 uid_root: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Write ``dicom/`` (CT series), ``labels.mhd`` (lung mask) and ``labels.json`` (incl. the class)."""
    from clara_stream.geometry import ImageGeometry
    from clara_stream.operators.volume.mhd import write_mhd

    from .ct import write_dicom_series

    if isinstance(shape, str):
        shape = tuple(int(v) for v in shape.replace("x", ",").split(","))
    if isinstance(lesions, str):
        lesions = lesions.lower() in ("1", "true", "yes")
    hu, labels, geometry = make_phantom(tuple(shape), seed=int(seed), lesions=bool(lesions))
    out_dir = Path(out_dir)
    write_dicom_series(hu, geometry, out_dir / "dicom", seed=int(seed), uid_root=uid_root, patient_id="PHANTOM-CHEST",
                       description="Phantom chest", body_part="CHEST")  # fmt: skip
    write_mhd(out_dir / "labels.mhd", labels, ImageGeometry.from_dict(geometry))
    names = {"labels": {str(v): {"name": n, "snomed_code": c, "snomed_meaning": m} for v, (n, c, m) in LABELS.items()},
             "background": 0, "covid_like": bool(lesions)}  # fmt: skip
    (out_dir / "labels.json").write_text(json.dumps(names, indent=2) + "\n")
    return {"dicom": out_dir / "dicom", "labels": out_dir / "labels.mhd", "label_names": out_dir / "labels.json"}
