"""T2-like pelvis MR phantom with a prostate label, written as a real DICOM MR series.

Built in patient coordinates (LPS, mm) like :mod:`clara_stream.samples.ct`, on an oblique axial grid
(tilted 12° about the patient's left-right axis) with anisotropic pixels (0.9 mm columns, 1.1 mm
rows, 3 mm slices), so a swapped axis or a transposed direction cannot go unnoticed. Tissues: fat
(bright), muscle, bladder (fluid, brightest), prostate (intermediate, textured, the label),
rectum (dark wall, air), femoral heads; a smooth multiplicative bias field and Rician-like noise.

Labels: 0 background, 1 prostate (SNOMED CT 41216001 "Prostate").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABELS", "make_phantom", "write_sample"]

LABELS: dict[int, tuple[str, str, str]] = {1: ("prostate", "41216001", "Prostate")}
TILT_DEG = 12.0


def _direction(tilt_deg: float) -> list[float]:
    """Row-major 3x3 whose columns are the x, y, z axes: axial tilted about L-R by ``tilt_deg``."""
    t = np.deg2rad(tilt_deg)
    cols = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), np.sin(t)], [0.0, -np.sin(t), np.cos(t)]]).T
    return [round(float(v), 6) for v in cols.ravel()]


def make_phantom(
    shape: tuple[int, int, int] = (24, 144, 176),
    *,
    seed: int = 0,
    spacing: tuple[float, float, float] = (0.9, 1.1, 3.0),
    noise: float = 18.0,
    tilt_deg: float = TILT_DEG,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(signal uint16-range float32 (z, y, x), labels uint8 (z, y, x), geometry dict) of one phantom."""
    nz, ny, nx = (int(v) for v in shape)
    if min(nz, ny, nx) < 2:
        raise ValueError(f"pelvis_mr: expected shape with every axis >= 2; got {shape}")
    rng = np.random.default_rng(seed)
    sx, sy, sz = (round(float(v), 6) for v in spacing)
    direction = _direction(tilt_deg)
    d = np.array(direction).reshape(3, 3)
    centre = np.array([0.0, 0.0, 0.0])
    origin = centre - d @ (np.array([nx - 1, ny - 1, nz - 1]) * np.array([sx, sy, sz]) / 2)
    origin = np.round(origin, 6)
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i * sx, j * sy, k * sz]).reshape(3, -1)
    pts = (d @ idx).reshape(3, nz, ny, nx) + origin[:, None, None, None]
    x, y, z = (p.astype(np.float32) for p in pts)

    def u(a: float, b: float) -> float:
        return float(rng.uniform(a, b))

    def ell(c: tuple[float, float, float], r: tuple[float, float, float]) -> np.ndarray:
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0

    img = np.full(x.shape, 5.0, np.float32)
    body_r = (u(150, 175), u(100, 115))
    body = (x / body_r[0]) ** 2 + (y / body_r[1]) ** 2 <= 1.0
    muscle = (x / (body_r[0] - 18)) ** 2 + (y / (body_r[1] - 16)) ** 2 <= 1.0
    img[body] = 620 + u(-40, 40)
    img[muscle] = 260 + u(-30, 30)
    for side in (-1, 1):  # femoral heads: dark cortex, marrow inside
        c = (side * u(85, 100), u(-5, 10), u(-5, 5))
        img[ell(c, (24, 24, 26))] = 60
        img[ell(c, (20, 20, 22))] = 480 + u(-40, 40)
    pc = (u(-6, 6), u(-4, 8), u(-8, 8))
    pr = (u(19, 26), u(15, 21), u(16, 22))
    prostate = ell(pc, pr)
    bladder = ell((pc[0] + u(-5, 5), pc[1] - pr[1] - u(18, 26), pc[2] + u(15, 25)), (u(30, 42), u(22, 30), u(24, 32)))
    img[bladder & muscle] = 950 + u(-50, 50)
    rc = (pc[0] + u(-4, 4), pc[1] + pr[1] + u(12, 16))
    rect = ((x - rc[0]) / 15) ** 2 + ((y - rc[1]) / 12) ** 2 <= 1.0
    img[rect & muscle] = 140
    img[(((x - rc[0]) / 9) ** 2 + ((y - rc[1]) / 6) ** 2 <= 1.0) & muscle] = 20
    tex = 40 * np.sin(x / u(5, 8) + u(0, 6)) * np.cos(y / u(5, 8) + u(0, 6)) * np.sin(z / 9 + u(0, 6))
    img[prostate] = (430 + u(-50, 50) + tex)[prostate]
    labels = prostate.astype(np.uint8)
    bias = 1 + 0.25 * np.sin(x / u(90, 140) + u(0, 6)) * np.cos(y / u(80, 120) + u(0, 6))
    img *= bias.astype(np.float32)
    n1, n2 = rng.normal(0, noise, img.shape), rng.normal(0, noise, img.shape)
    img = np.sqrt((img + n1) ** 2 + n2**2).astype(np.float32)  # magnitude image: Rician noise
    geometry = {"origin": [float(v) for v in origin], "spacing": [sx, sy, sz], "direction": direction}
    return img.clip(0, 4095), labels, geometry


def write_sample(out_dir: Path, *, seed: int = 0, shape: Any = (24, 144, 176), noise: float = 18.0,
                 uid_root: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Write ``dicom/`` (MR Image Storage, one file per slice), ``labels.mhd`` and ``labels.json``."""
    from clara_stream.geometry import ImageGeometry
    from clara_stream.operators.volume.mhd import write_mhd

    from .ct import write_dicom_series

    if isinstance(shape, str):
        shape = tuple(int(v) for v in shape.replace("x", ",").split(","))
    img, labels, geometry = make_phantom(tuple(shape), seed=int(seed), noise=float(noise))
    out_dir = Path(out_dir)
    write_dicom_series(np.rint(img).astype(np.int32), geometry, out_dir / "dicom", seed=int(seed), uid_root=uid_root,
                       patient_id="PHANTOM-MR", modality="MR", description="Phantom pelvis",
                       body_part="PROSTATE")  # fmt: skip
    write_mhd(out_dir / "labels.mhd", labels, ImageGeometry.from_dict(geometry))
    names = {"labels": {str(v): {"name": n, "snomed_code": c, "snomed_meaning": m} for v, (n, c, m) in LABELS.items()},
             "background": 0}  # fmt: skip
    (out_dir / "labels.json").write_text(json.dumps(names, indent=2) + "\n")
    return {"dicom": out_dir / "dicom", "labels": out_dir / "labels.mhd", "label_names": out_dir / "labels.json"}
