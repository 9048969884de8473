"""Whole-slide reading for tiling: level geometry, overlapping tile grids, band readers.

Coordinates are pixels of the chosen level, (x, y) with y down; arrays are (rows, cols, 3) RGB
uint8. A "band" is one row of tiles plus the overlap margin above and below; tiles are cut from
it in memory. Bands overlap each other and straddle stored tile rows, so the pipeline reads
full-width "stripes", one stored tile row each, and cuts the bands from them
(:func:`stripe_bands`): each stored tile is decoded once, where reading every tile with its
margin decodes most stored tiles several times (4 to 9 on the test slides).

Loaders (Clara Deploy's list): ``tiffslide`` (the level as tiffslide opens it), ``tifffile`` (the
same through tifffile alone; both decode the level's stored tiles directly with tifffile's decoder
when the page allows, see :mod:`.tiles`, else read through zarr), ``pillow`` (Pillow's libtiff
decoder; level 0 of plain JPEG/LZW TIFFs only, no Aperio JPEG 2000). A multiprocessing pool of
tiffslide readers is :class:`BandPool`. DALI's GPU decoder is not offered: it needs a GPU, and this
code path is CPU.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.pathology.tiles import PageTiles

__all__ = ["LOADERS", "TileBox", "TileRow", "SlideLevel", "tile_rows", "band_span", "stripe_bands", "open_level",
           "BandPool"]

LOADERS = ("tiffslide", "tifffile", "pillow")


@dataclass(frozen=True)
class TileBox:
    """One tile: its core (written out) and its padded window (read and filtered), level pixels."""

    col: int
    row: int
    x: int
    y: int
    w: int
    h: int
    pad: tuple[int, int, int, int]  # x0, y0, x1, y1 of the padded window, clipped to the level

    def core_in_pad(self) -> tuple[slice, slice]:
        """Rows/cols of the core inside the padded window's array."""
        x0, y0 = self.pad[0], self.pad[1]
        return slice(self.y - y0, self.y - y0 + self.h), slice(self.x - x0, self.x - x0 + self.w)


@dataclass
class TileRow:
    """One row of tiles travelling through the pipeline (a message between operators).

    ``band`` holds pixels of rows ``band_y0 .. band_y0 + band.shape[0]`` over the full level width;
    after filtering, ``tiles`` holds each tile's output core (h, w, 3) in column order.
    """

    row: int
    rows: int
    tile: int
    boxes: list[TileBox]
    band_y0: int
    band: np.ndarray | None = None
    tiles: list[np.ndarray] | None = None
    edges: list[np.ndarray] | None = None
    level: SlideLevelInfo | None = None

    def window(self, box: TileBox) -> np.ndarray:
        """The padded window of ``box`` as a view of the band."""
        x0, y0, x1, y1 = box.pad
        return self.band[y0 - self.band_y0 : y1 - self.band_y0, x0:x1]


@dataclass(frozen=True)
class SlideLevelInfo:
    """What the writer needs to reproduce the input level's geometry."""

    width: int
    height: int
    mpp: tuple[float, float] | None  # (x, y) micrometres per pixel at this level
    source: str
    level: int


def tile_rows(width: int, height: int, tile: int, overlap: int) -> list[list[TileBox]]:
    """Row-major tile grid with ``overlap`` pixels of margin on every side (clipped to the level).

    Raises
    ------
    ValueError
        For a non-positive size or tile, or a negative overlap.
    """
    if width < 1 or height < 1 or tile < 1 or overlap < 0:
        raise ValueError(f"tile_rows: expected width, height, tile >= 1 and overlap >= 0; "
                         f"got {width}, {height}, {tile}, {overlap}")  # fmt: skip
    rows = []
    for r in range(math.ceil(height / tile)):
        y, h = r * tile, min(tile, height - r * tile)
        row = []
        for c in range(math.ceil(width / tile)):
            x, w = c * tile, min(tile, width - c * tile)
            pad = (max(0, x - overlap), max(0, y - overlap), min(width, x + w + overlap), min(height, y + h + overlap))
            row.append(TileBox(c, r, x, y, w, h, pad))
        rows.append(row)
    return rows


class SlideLevel:
    """One level of a slide, read as regions of level pixels.

    Raises
    ------
    FileNotFoundError
        If the slide does not exist.
    ValueError
        For an unknown loader, a level the slide lacks, or a format the loader cannot decode.
    """

    def __init__(self, path: str | Path, level: int = 0, loader: str = "tiffslide") -> None:
        self.path = Path(path)
        if loader not in LOADERS:
            raise ValueError(f"SlideLevel: expected loader in {LOADERS}; got {loader!r}")
        if not self.path.is_file():
            raise FileNotFoundError(f"SlideLevel: expected a slide file; got {str(self.path)!r} (missing)")
        self.loader, self.level = loader, int(level)
        self._closers: list[Any] = []
        self.tiles: PageTiles | None = None  # the direct decoder, when the level's page allows it
        import tifffile

        if loader == "pillow":
            self._open_pillow()
        else:
            try:
                self._open_zarr()
            except tifffile.TiffFileError as exc:
                self.close()
                raise ValueError(f"SlideLevel: expected a TIFF slide; got {exc} [{self.path.name}]") from exc

    def _open_zarr(self) -> None:
        import tifffile
        import zarr

        if self.loader == "tiffslide":
            import tiffslide

            slide = tiffslide.TiffSlide(self.path)
            self._closers.append(slide)
            if not 0 <= self.level < slide.level_count:
                raise ValueError(f"SlideLevel: expected level in 0..{slide.level_count - 1}; got {self.level} "
                                 f"[{self.path.name}]")  # fmt: skip
            group = slide.zarr_group
            self._array = group[str(self.level)] if hasattr(group, "keys") else group
            series = slide.ts_tifffile.series[0]
            mpp_x, mpp_y = slide.properties.get("tiffslide.mpp-x"), slide.properties.get("tiffslide.mpp-y")
            down = slide.level_downsamples[self.level]
            self.mpp = (float(mpp_x) * down, float(mpp_y) * down) if mpp_x and mpp_y else None
        else:
            tif = tifffile.TiffFile(self.path)
            self._closers.append(tif)
            levels = tif.series[0].levels
            if not 0 <= self.level < len(levels):
                raise ValueError(f"SlideLevel: expected level in 0..{len(levels) - 1}; got {self.level} "
                                 f"[{self.path.name}]")  # fmt: skip
            store = tif.series[0].aszarr(level=self.level)
            self._closers.append(store)
            arr = zarr.open(store, mode="r")
            self._array = arr[str(self.level)] if hasattr(arr, "keys") else arr
            self.mpp = None
            series = tif.series[0]
        self.height, self.width = int(self._array.shape[0]), int(self._array.shape[1])
        page = series.levels[self.level].keyframe
        if PageTiles.usable(page) and (page.imagelength, page.imagewidth) == (self.height, self.width):
            self.tiles = PageTiles(page)  # the same level's stored tiles, decoded without zarr

    def _open_pillow(self) -> None:
        from PIL import Image

        if self.level != 0:
            raise ValueError(f"SlideLevel: expected level 0 with loader 'pillow'; got {self.level}")
        try:
            img = Image.open(self.path)
            self._closers.append(img)
            self._image = np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise ValueError(f"SlideLevel: expected a TIFF Pillow can decode; got {exc} [{self.path.name}]") from exc
        self.height, self.width = self._image.shape[:2]
        self.mpp = None

    def info(self) -> SlideLevelInfo:
        return SlideLevelInfo(self.width, self.height, self.mpp, str(self.path), self.level)

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """RGB uint8 pixels of the box [x0, x1) × [y0, y1) (contiguous)."""
        if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
            raise ValueError(f"SlideLevel: expected a box inside {self.width}x{self.height}; "
                             f"got ({x0}, {y0}, {x1}, {y1})")  # fmt: skip
        if self.tiles is not None:
            return self.tiles.read(x0, y0, x1, y1)
        src = self._image if self.loader == "pillow" else self._array
        out = np.asarray(src[y0:y1, x0:x1])
        return np.ascontiguousarray(out[..., :3])

    def band(self, boxes: list[TileBox]) -> tuple[int, np.ndarray]:
        """(y0, pixels) of the full-width band covering the padded windows of one tile row."""
        y0, y1 = band_span(boxes)
        return y0, self.read(0, y0, self.width, y1)

    @property
    def stripe_height(self) -> int:
        """Rows of one stored tile row: full-width stripes this tall decode each stored tile once."""
        if self.tiles is not None:
            return self.tiles.tile_h
        return 256 if self.loader == "pillow" else int(self._array.chunks[0])

    def stripe_spans(self) -> list[tuple[int, int]]:
        """(y0, y1) of every stripe of the level, top to bottom."""
        h = self.stripe_height
        return [(y, min(y + h, self.height)) for y in range(0, self.height, h)]

    def stripe(self, span: tuple[int, int]) -> tuple[int, np.ndarray]:
        """(y0, pixels) of one full-width stripe (see :meth:`stripe_spans`)."""
        return span[0], self.read(0, span[0], self.width, span[1])

    def close(self) -> None:
        for c in reversed(self._closers):
            c.close()
        self._closers.clear()


def band_span(boxes: list[TileBox]) -> tuple[int, int]:
    """(y0, y1) of the rows the padded windows of one tile row cover."""
    return min(b.pad[1] for b in boxes), max(b.pad[3] for b in boxes)


def stripe_bands(rows: list[list[TileBox]], stripes: Iterator[tuple[int, np.ndarray]]
                 ) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
    """(y0, band) per tile row, cut from full-width stripes that arrive top to bottom.

    Bands overlap (by twice the tile overlap) and straddle stored tile rows, so reading each band
    decodes most stored tiles twice; cutting bands from stripes decodes each once. Only the
    stripes the current band needs are held. A band inside one stripe is a view of it.

    Raises
    ------
    ValueError
        If the stripes end before the rows do.
    """
    held: deque[tuple[int, np.ndarray]] = deque()
    for boxes in rows:
        y0, y1 = band_span(boxes)
        while not held or held[-1][0] + held[-1][1].shape[0] < y1:
            got = next(stripes, None)
            if got is None:
                raise ValueError(f"stripe_bands: expected stripes down to row {y1}; got none after "
                                 f"{held[-1][0] + held[-1][1].shape[0] if held else 0}")  # fmt: skip
            held.append(got)
        while held[0][0] + held[0][1].shape[0] <= y0:
            held.popleft()
        parts = [a[max(0, y0 - s) : y1 - s] for s, a in held if s < y1]
        yield y0, parts[0] if len(parts) == 1 else np.concatenate(parts)


def open_level(path: str | Path, level: int = 0, loader: str = "tiffslide") -> SlideLevel:
    return SlideLevel(path, level, loader)


_WORKER: SlideLevel | None = None


def _worker_init(path: str, level: int) -> None:
    global _WORKER
    _WORKER = SlideLevel(path, level, "tiffslide")


def _worker_band(y0: int, y1: int) -> np.ndarray:
    assert _WORKER is not None
    return _WORKER.read(0, y0, _WORKER.width, y1)


class BandPool:
    """Bands read ahead by a pool of worker processes (each with its own tiffslide handle)."""

    def __init__(self, path: str | Path, level: int, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"BandPool: expected workers >= 1; got {workers}")
        self._pool = ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(str(path), int(level)))

    def bands(self, rows: list[list[TileBox]], ahead: int = 4) -> Iterator[tuple[int, np.ndarray]]:
        """(y0, band) per row in order, keeping up to ``ahead`` reads in flight."""
        spans = [(min(b.pad[1] for b in r), max(b.pad[3] for b in r)) for r in rows]
        pending: list[tuple[int, Future]] = []
        for y0, y1 in spans:
            pending.append((y0, self._pool.submit(_worker_band, y0, y1)))
            if len(pending) > ahead:
                y, fut = pending.pop(0)
                yield y, fut.result()
        for y, fut in pending:
            yield y, fut.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
