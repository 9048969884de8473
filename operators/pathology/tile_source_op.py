"""SlideTileSourceOp: one level of a whole-slide image as rows of overlapping tiles."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clara_stream.operators.pathology.contracts import TILE_ROW
from clara_stream.operators.pathology.slide import LOADERS, BandPool, SlideLevel, TileRow, stripe_bands, tile_rows

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

log = logging.getLogger(__name__)


class SlideTileSourceOp(Operator):
    """Read a slide level stripe by stripe (read-ahead in the background); emit one TileRow per row.

    Threads read full-width stripes one stored tile row tall, so each stored tile is decoded once;
    each row's band (its tiles plus the overlap) is cut from the stripes it spans.

    Ports
    -----
    frame : TileRow (band of RGB uint8 (rows, width, 3) pixels of the level, y down; tile boxes)

    Parameters
    ----------
    path : path
        The slide (SVS/TIFF; Aperio JPEG 2000 through imagecodecs). Required.
    level : int
        Pyramid level to tile (default 0).
    tile : int
        Tile size in pixels, a multiple of 16 (default 256).
    overlap : int
        Margin read around each tile so filters do not break at tile borders (default 16, >= 2).
    loader : {"tiffslide", "tifffile", "pillow", "process"}
        How tiles are decoded; ``process``: a pool of ``workers`` tiffslide processes.
    workers : int
        Read-ahead threads or processes (default 2); at most ``2 * workers`` stripes (bands for ``process``)
        are read ahead.
    tiles_dir : path, optional
        Also write each tile core as ``<row>_<col>.jpg`` there (Clara Deploy's option); default in memory.

    Raises
    ------
    ValueError
        At construction for a bad tile, overlap, loader or workers; at start for a missing slide or level.
    """

    outputs = (Port(P.FRAME, TILE_ROW),)

    def __init__(self, fragment: Any, *args: Any, path: Any = None, level: int = 0, tile: int = 256,
                 overlap: int = 16, loader: str = "tiffslide", workers: int = 2, tiles_dir: Any = None,
                 name: str = "tiler", **kwargs: Any) -> None:  # fmt: skip
        if int(tile) < 16 or int(tile) % 16:
            raise ValueError(f"SlideTileSourceOp: expected tile a multiple of 16; got {tile}")
        if not 2 <= int(overlap) <= int(tile):
            raise ValueError(f"SlideTileSourceOp: expected 2 <= overlap <= tile; got {overlap}")
        if loader not in (*LOADERS, "process"):
            raise ValueError(f"SlideTileSourceOp: expected loader in {(*LOADERS, 'process')}; got {loader!r}")
        if int(workers) < 1:
            raise ValueError(f"SlideTileSourceOp: expected workers >= 1; got {workers}")
        self.path = Path(path) if path is not None else None
        self.level, self.tile, self.overlap = int(level), int(tile), int(overlap)
        self.loader, self.workers = loader, int(workers)
        self.tiles_dir = Path(tiles_dir) if tiles_dir else None
        self._bands: Iterator[tuple[int, Any]] | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if self.path is None:
            raise ValueError("SlideTileSourceOp: expected path=<slide file>; got None")
        self.reader = SlideLevel(self.path, self.level, "tiffslide" if self.loader == "process" else self.loader)
        self.info = self.reader.info()
        self.rows = tile_rows(self.reader.width, self.reader.height, self.tile, self.overlap)
        if self.tiles_dir is not None:
            self.tiles_dir.mkdir(parents=True, exist_ok=True)
        self._next = 0
        if self.loader == "process":
            self._pool: Any = BandPool(self.path, self.level, self.workers)
            self._bands = self._pool.bands(self.rows, ahead=2 * self.workers)
        else:
            self._pool = ThreadPoolExecutor(self.workers)
            self._bands = stripe_bands(self.rows, self._read_ahead(2 * self.workers))

    def _read_ahead(self, ahead: int) -> Iterator[tuple[int, Any]]:
        """Stripes top to bottom with at most ``ahead`` reads in flight (memory stays bounded)."""
        pending: deque = deque()
        for span in self.reader.stripe_spans():
            pending.append(self._pool.submit(self.reader.stripe, span))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        assert self._bands is not None
        boxes = self.rows[self._next]
        y0, band = next(self._bands)
        row = TileRow(self._next, len(self.rows), self.tile, boxes, y0, band, level=self.info)
        if self.tiles_dir is not None:
            self._write_tiles(row)
        self._next += 1
        self.emit(op_output, row, P.FRAME)
        if self._next == len(self.rows):
            self.stop_stream()

    def _write_tiles(self, row: TileRow) -> None:
        import cv2

        for b in row.boxes:
            core = row.window(b)[b.core_in_pad()]
            cv2.imwrite(str(self.tiles_dir / f"{b.row}_{b.col}.jpg"), core[..., ::-1])

    def stop(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            if isinstance(pool, BandPool):
                pool.close()
            else:
                pool.shutdown(cancel_futures=True)
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()
