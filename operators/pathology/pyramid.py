"""Pyramidal tiled TIFF writer (Clara Deploy's pathology "stitching" step), tifffile only.

Levels are top-level IFDs (level 0 full size, then ``NewSubfileType`` = reduced-resolution pages,
each half the previous), the layout both OpenSlide (which ignores SubIFDs) and tiffslide read as a
pyramid. Resolution tags carry the MPP of level 0. Level 0 is streamed from the tile iterator
while level 1 is built in memory at a quarter of level 0's size; deeper levels come from level 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["COMPRESSIONS", "write_pyramid", "level_sizes"]

COMPRESSIONS = ("jpeg", "zlib", "lzw", "none")


def level_sizes(width: int, height: int, min_size: int) -> list[tuple[int, int]]:
    """(width, height) of each level: halved (floor) while the longer side stays >= ``min_size``."""
    sizes = [(width, height)]
    while max(sizes[-1]) // 2 >= min_size and min(sizes[-1]) // 2 >= 1:
        w, h = sizes[-1]
        sizes.append((w // 2, h // 2))
    return sizes


def _half(img: np.ndarray) -> np.ndarray:
    import cv2

    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return cv2.resize(img[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _resolution(mpp: tuple[float, float] | None, down: int) -> dict:
    """TIFF resolution tags (pixels per cm) of a level ``down`` times smaller than level 0."""
    if not mpp:
        return {}
    return dict(resolution=(1e4 / (mpp[0] * down), 1e4 / (mpp[1] * down)), resolutionunit="CENTIMETER")


def write_pyramid(
    path: str | Path,
    tiles: Iterable[np.ndarray],
    width: int,
    height: int,
    *,
    tile: int = 256,
    mpp: tuple[float, float] | None = None,
    min_size: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
    workers: int = 2,
    description: str = "",
) -> list[tuple[int, int]]:
    """Write ``tiles`` (row-major RGB cores, each ``tile`` px or clipped at the right/bottom edge).

    Returns the (width, height) of the levels written. Written to ``<path>.partial`` and renamed
    once complete, so a reader never sees a half-written slide.

    Raises
    ------
    ValueError
        For an unknown compression, a tile size not a multiple of 16, or a tile of the wrong shape.
    """
    import tifffile

    if compression not in COMPRESSIONS:
        raise ValueError(f"write_pyramid: expected compression in {COMPRESSIONS}; got {compression!r}")
    if tile < 16 or tile % 16:
        raise ValueError(f"write_pyramid: expected a tile size that is a multiple of 16; got {tile}")
    sizes = level_sizes(width, height, min_size)
    cols = -(-width // tile)
    half = np.zeros((height // 2 + 1, width // 2 + 1, 3), np.uint8) if len(sizes) > 1 else None

    def padded() -> Iterator[np.ndarray]:
        for i, t in enumerate(tiles):
            r, c = divmod(i, cols)
            want = (min(tile, height - r * tile), min(tile, width - c * tile))
            if t.shape[:2] != want or t.ndim != 3 or t.shape[2] != 3 or t.dtype != np.uint8:
                raise ValueError(f"write_pyramid: expected tile ({r}, {c}) uint8 {want + (3,)}; "
                                 f"got {t.dtype} {t.shape}")  # fmt: skip
            if half is not None:
                y, x = r * tile // 2, c * tile // 2
                small = _half(t)
                half[y : y + small.shape[0], x : x + small.shape[1]] = small
            if t.shape[:2] != (tile, tile):
                full = np.zeros((tile, tile, 3), np.uint8)
                full[: t.shape[0], : t.shape[1]] = t
                t = full
            yield t

    # one tile row per encoding pass: tifffile's default pass (512 MB) would hold every tile of
    # level 0 before encoding any, so nothing would be written while rows stream in
    opts = dict(photometric="rgb", compression=None if compression == "none" else compression,
                tile=(tile, tile), maxworkers=workers, buffersize=tile * tile * 3 * max(cols, workers),
                metadata=None)  # fmt: skip
    if compression == "jpeg":
        opts["compressionargs"] = {"level": int(quality)}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with tifffile.TiffWriter(partial, bigtiff=width * height * 3 > 2**31) as tw:
        tw.write(padded(), shape=(height, width, 3), dtype=np.uint8, description=description or None,
                 **_resolution(mpp, 1), **opts)  # fmt: skip
        level = half
        for i, (w, h) in enumerate(sizes[1:], start=1):
            img = np.ascontiguousarray(level[:h, :w]) if i == 1 else _half(level)[:h, :w]
            level = img
            tw.write(img, subfiletype=1, **_resolution(mpp, 2**i), **opts)
    partial.replace(path)
    return sizes
