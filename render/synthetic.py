"""Synthetic render datasets: a labelled CT-like phantom in the seed layout and a pyramidal slide.

Used by tests and by ``clara-stream render serve`` when the real data is absent. Geometry is
real (anisotropic spacing, non-zero origin) so millimetre measurements can be checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Phantom labels: 1 = body, 2 = "rib" shell, 3 = lesion.
PHANTOM_LABELS = {"1": {"name": "body"}, "2": {"name": "ribs"}, "3": {"name": "lesion"}}
PHANTOM_SPACING = (0.8, 0.8, 2.0)  # x, y, z mm
PHANTOM_ORIGIN = (-100.0, -120.0, -50.0)


def phantom(shape_zyx: tuple[int, int, int] = (48, 160, 160)) -> tuple[np.ndarray, np.ndarray]:
    """(int16 HU-like volume, uint8 labels): an elliptic body with a bony shell and a bright lesion."""
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape_zyx)
    zz, yy, xx = np.meshgrid(z / shape_zyx[0] - 0.5, y / shape_zyx[1] - 0.5, x / shape_zyx[2] - 0.5, indexing="ij")
    r = np.sqrt((xx / 0.42) ** 2 + (yy / 0.32) ** 2)
    vol = np.full(shape_zyx, -1000, np.int16)
    labels = np.zeros(shape_zyx, np.uint8)
    body = r < 1.0
    vol[body] = 40
    labels[body] = 1
    shell = (r > 0.86) & body & (np.cos(zz * 60) > 0.2)  # rib-like bands
    vol[shell] = 700
    labels[shell] = 2
    lesion = ((xx - 0.12) ** 2 + (yy + 0.05) ** 2 + (zz * 0.6) ** 2) < 0.06**2
    vol[lesion] = 300
    labels[lesion] = 3
    return vol, labels


def write_seed_dataset(folder: Path, shape_zyx: tuple[int, int, int] = (48, 160, 160)) -> Path:
    """Write the seed layout: config.meta, image.mhd/.raw, mask.mhd/.raw. Returns the folder."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vol, labels = phantom(shape_zyx)
    for name, arr in (("image", vol), ("mask", labels)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(PHANTOM_SPACING)
        img.SetOrigin(PHANTOM_ORIGIN)
        sitk.WriteImage(img, str(folder / f"{name}.mhd"))
    meta = {"name": "phantom", "image": "image.mhd", "mask": "mask.mhd", "labels": PHANTOM_LABELS}
    (folder / "config.meta").write_text(json.dumps(meta, indent=2))
    return folder


def slide_image(width: int = 3000, height: int = 2000, seed: int = 0) -> np.ndarray:
    """RGB 'tissue': pink blobs with purple nuclei on white, plus a black 100 px grid."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 245, np.uint8)
    for _ in range(12):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(150, 450)), int(rng.integers(100, 300)))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, (230, 150, 190), -1)
    for _ in range(3000):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(img, c, int(rng.integers(3, 8)), (110, 50, 150), -1)
    img[::100, :] = 0
    img[:, ::100] = 0
    return img


def write_slide(path: Path, width: int = 3000, height: int = 2000, mpp: float = 0.5) -> Path:
    """A tiled, pyramidal (1, 1/2, 1/4, 1/8) JPEG TIFF with levels as top-level pages."""
    import cv2
    import tifffile

    img = slide_image(width, height)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    res = (1e4 / mpp, 1e4 / mpp)
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        level = img
        for i in range(4):
            tif.write(
                level,
                tile=(256, 256),
                compression="jpeg",
                photometric="rgb",
                resolution=(res[0] / 2**i, res[1] / 2**i),
                resolutionunit="CENTIMETER",
                subfiletype=0 if i == 0 else 1,
            )
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return path
