"""Synthetic H&E-like whole-slide image: a pyramidal tiled TIFF (JPEG tiles, MPP 0.5) with tissue.

Pink stroma with smooth texture, purple nuclei (ellipses) clustered in glands, white background
outside an irregular tissue outline; levels are top-level IFDs as in Aperio files, so tiffslide and
OpenSlide read the pyramid. Written with the same pyramid writer the pathology pipeline uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["make_slide", "write_sample"]


def make_slide(width: int = 2304, height: int = 1664, *, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 RGB tissue image."""
    import cv2

    if width < 64 or height < 64:
        raise ValueError(f"slide: expected width and height >= 64; got {width}x{height}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    r = np.hypot((xx - width / 2) / (0.42 * width), (yy - height / 2) / (0.42 * height))
    ang = np.arctan2(yy - height / 2, xx - width / 2)
    edge = 1 + 0.12 * np.sin(3 * ang + rng.uniform(0, 6)) + 0.07 * np.sin(7 * ang + rng.uniform(0, 6))
    tissue = r < edge
    img = np.full((height, width, 3), 242, np.uint8)
    tex = (np.sin(xx / rng.uniform(20, 40)) * np.cos(yy / rng.uniform(20, 40)) * 18).astype(np.float32)
    stroma = np.stack([228 + tex * 0.5, 160 + tex, 196 + tex * 0.7], axis=-1).clip(0, 255).astype(np.uint8)
    img[tissue] = stroma[tissue]
    for _ in range(int(width * height / 30000)):  # glands: pale lumen ringed by nuclei
        cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        if not tissue[cy, cx]:
            continue
        rad = int(rng.uniform(25, 60))
        cv2.circle(img, (cx, cy), rad, (246, 226, 236), -1)
        for a in np.linspace(0, 2 * np.pi, int(rad / 4), endpoint=False):
            nx, ny = int(cx + (rad + 6) * np.cos(a)), int(cy + (rad + 6) * np.sin(a))
            axes = (int(rng.uniform(4, 8)), int(rng.uniform(3, 6)))
            cv2.ellipse(img, (nx, ny), axes, float(np.degrees(a)), 0, 360, (95, 60, 150), -1)
    for _ in range(int(width * height / 900)):  # scattered nuclei
        cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        if tissue[cy, cx]:
            cv2.circle(img, (cx, cy), int(rng.uniform(2, 5)), (110, 70, 160), -1)
    noise = rng.normal(0, 4, img.shape)
    return (img + noise).clip(0, 255).astype(np.uint8)


def write_sample(out_dir: Path, *, seed: int = 0, width: int = 2304, height: int = 1664) -> dict[str, Path]:
    """Write ``slide.tif`` (pyramidal, JPEG tiles of 256, MPP 0.5 at level 0)."""
    from clara_stream.operators.pathology.pyramid import write_pyramid

    img = make_slide(int(width), int(height), seed=int(seed))
    tile = 256
    h, w = img.shape[:2]
    tiles = (img[y : y + tile, x : x + tile] for y in range(0, h, tile) for x in range(0, w, tile))
    path = Path(out_dir) / "slide.tif"
    write_pyramid(path, tiles, img.shape[1], img.shape[0], tile=tile, mpp=(0.5, 0.5), quality=92,
                  description="clara-stream synthetic H&E-like slide")  # fmt: skip
    return {"slide": path}
