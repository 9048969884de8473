"""Planar sources for tiles: an in-memory 2D image with a 2× pyramid, and a pyramidal TIFF/SVS
slide read through tiffslide in each level's own pixel coordinates."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Level:
    width: int
    height: int
    downsample: float


class ArraySource:
    """An in-memory RGB or grey 2D image with a 2× pyramid (for ``image`` datasets)."""

    def __init__(self, image: np.ndarray, mpp: float | tuple[float, float] | None = None) -> None:
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"ArraySource: expected (H, W) or (H, W, 3) image; got shape {image.shape}")
        img = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8, copy=False)
        self._levels = [img]
        while max(self._levels[-1].shape[:2]) > 512:
            prev = self._levels[-1]
            self._levels.append(
                cv2.resize(
                    prev,
                    (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2)),
                    interpolation=cv2.INTER_AREA,
                )
            )
        self.levels = [Level(a.shape[1], a.shape[0], img.shape[1] / a.shape[1]) for a in self._levels]
        mx, my = (mpp, mpp) if not isinstance(mpp, tuple | list) else mpp
        self.mpp, self.mpp_y = mx, my  # µm per level-0 pixel along x and y (None: no geometry)

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._levels[level][y : y + h, x : x + w]


def _level_slide(path: str):
    """A tiffslide slide whose ``read_region`` takes the location in the *requested level's* pixels.

    tiffslide maps a level-0 location with ``int(x0 / downsample)``; for a level whose downsample
    is not an integer (2.0005 on a TCGA slide) ``int(x * ds)`` then ``int(... / ds)`` lands 1 px
    short. Overriding ``_read_region_loc_transform`` is tiffslide's documented extension point.
    """
    import tiffslide

    class LevelSlide(tiffslide.TiffSlide):
        def _read_region_loc_transform(self, location: tuple[int, int], level: int) -> tuple[int, int]:
            return int(location[0]), int(location[1])

    return LevelSlide(path)


class SlideSource:
    """A pyramidal TIFF / SVS slide read through tiffslide (level coordinates).

    ``concurrent_reads``: stored tiles decode in tifffile's codecs (imagecodecs), which release the
    GIL, so a tile server may decode several tiles of one region at once.
    """

    concurrent_reads = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._slide = _level_slide(str(self.path))
        except Exception as exc:  # tiffslide raises several types for non-slides
            raise ValueError(f"SlideSource: expected a pyramidal TIFF/SVS slide; got {self.path} ({exc})") from exc
        self.levels = [
            Level(int(w), int(h), float(d))
            for (w, h), d in zip(self._slide.level_dimensions, self._slide.level_downsamples, strict=True)
        ]
        mpp = self._slide.properties.get("tiffslide.mpp-x")
        mpp_y = self._slide.properties.get("tiffslide.mpp-y") or mpp
        self.mpp = float(mpp) if mpp else None
        self.mpp_y = float(mpp_y) if mpp else None
        self._lock = threading.Lock()
        import tifffile

        self._tif = tifffile.TiffFile(str(self.path))  # stored tiles read directly (see read)
        self._virtual: dict[int, np.ndarray] = {}
        self._add_thumbnail_level()

    def _add_thumbnail_level(self) -> None:
        """Use the slide's thumbnail as an extra coarsest level when the pyramid stops much finer
        (e.g. single-level slides): overviews and provisional tiles then cost one small image."""
        thumb = self._slide.associated_images.get("thumbnail") if "thumbnail" in self._slide.associated_images else None
        if thumb is None:
            return
        w, h = thumb.size
        l0, last = self.levels[0], self.levels[-1]
        same_shape = abs(w / h - l0.width / l0.height) < 0.02 * (l0.width / l0.height)
        if not same_shape or w * 2 > last.width:
            return
        self._virtual[len(self.levels)] = np.asarray(thumb.convert("RGB"))
        self.levels.append(Level(w, h, l0.width / w))

    @property
    def native_tile(self) -> int:
        """The file's square tile edge (64..2048), or 256 when untiled or unusual: a tile server on
        the file's own grid reads (and may pass through) one stored tile per tile."""
        page = self._page(0)
        ok = page is not None and page.is_tiled and page.tilewidth == page.tilelength
        return int(page.tilewidth) if ok and 64 <= page.tilewidth <= 2048 else 256

    def _page(self, level: int):
        """The tifffile page of a stored level (None for the virtual thumbnail level)."""
        if level in self._virtual:
            return None
        lv = self._tif.series[0].levels[level]
        return lv.keyframe if hasattr(lv, "keyframe") else lv.pages[0]

    def _stored_tile(self, level: int, x: int, y: int, w: int, h: int) -> tuple[object, int] | None:
        """(page, tile index) when the box is exactly one tile as the file stores it (else None)."""
        page = self._page(level)
        if page is None or not page.is_tiled or page.tilewidth != page.tilelength:
            return None
        t = page.tilewidth
        lv = self.levels[level]
        if x % t or y % t or w != min(t, lv.width - x) or h != min(t, lv.height - y):
            return None
        return page, (y // t) * (-(-lv.width // t)) + x // t

    def _raw(self, page, index: int) -> bytes:
        fh = self._tif.filehandle
        with self._lock:
            fh.seek(page.dataoffsets[index])
            return fh.read(page.databytecounts[index])

    def stored_jpeg(self, level: int, x: int, y: int, w: int, h: int) -> bytes | None:
        """The file's own JPEG of a tile, as a complete JPEG (shared tables spliced in), when the
        box is one stored tile of a YCbCr JPEG level — served without decoding or re-encoding."""
        found = self._stored_tile(level, x, y, w, h)
        if found is None:
            return None
        page, index = found
        if page.compression != 7 or page.photometric != 6 or (w, h) != (page.tilewidth, page.tilelength):
            return None  # RGB-coded JPEG would be read as YCbCr by browsers; edge tiles are padded
        data = self._raw(page, index)
        tables = page.jpegtables
        return tables[:-2] + data[2:] if tables else data

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if level in self._virtual:
            return np.ascontiguousarray(self._virtual[level][y : y + h, x : x + w])
        found = self._stored_tile(level, x, y, w, h)
        if found is not None:  # one stored tile: decode it directly (tifffile's codec, no zarr layer)
            page, index = found
            arr, _, _ = page.decode(self._raw(page, index), index, jpegtables=page.jpegtables)
            return np.ascontiguousarray(arr[0, :h, :w, :3])
        with self._lock:
            arr = self._slide.read_region((x, y), level, (w, h), as_array=True)
        return np.ascontiguousarray(arr[:, :, :3])

    def close(self) -> None:
        self._slide.close()
        self._tif.close()
