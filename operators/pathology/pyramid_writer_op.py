"""PyramidWriterOp: stitch filtered tile rows into a pyramidal tiled TIFF as they arrive."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.pathology.contracts import FILTERED_ROW, PATHS
from clara_stream.operators.pathology.pyramid import COMPRESSIONS, write_pyramid

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

_END = object()


class PyramidWriterOp(Operator):
    """Level 0 is written while rows stream in (a writer thread); the pyramid is done on the last row.

    Ports
    -----
    overlay : TileRow with ``tiles`` (RGB uint8 cores), rows in order
    paths : [Path of the written TIFF], emitted once, after the last row

    Parameters
    ----------
    output : path
        Output folder (required; created).
    filename : str
        A plain file name inside ``output`` (default ``edges.tif``).
    compression : {"jpeg", "zlib", "lzw", "none"}
        Tile compression (default jpeg, as Aperio slides).
    quality : int
        JPEG quality 1..100 (default 90).
    min_size : int
        Smallest level's longer side (default 256).
    workers : int
        Tile-compression threads (default 2).

    Raises
    ------
    ValueError
        At construction for a bad file name or setting; at start without ``output``; at run time for
    rows out of order.
    """

    inputs = (Port(P.OVERLAY, FILTERED_ROW, queue_size=4),)
    outputs = (Port(P.PATHS, PATHS),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "edges.tif",
                 compression: str = "jpeg", quality: int = 90, min_size: int = 256, workers: int = 2,
                 name: str = "stitcher", **kwargs: Any) -> None:  # fmt: skip
        if not filename or Path(filename).name != filename or filename in (".", ".."):
            raise ValueError(f"PyramidWriterOp: expected a plain file name; got {filename!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"PyramidWriterOp: expected compression in {COMPRESSIONS}; got {compression!r}")
        if not 1 <= int(quality) <= 100 or int(min_size) < 1 or int(workers) < 1:
            raise ValueError(f"PyramidWriterOp: expected 1 <= quality <= 100, min_size >= 1, workers >= 1; "
                             f"got {quality}, {min_size}, {workers}")  # fmt: skip
        self.path = Path(output) / filename if output is not None else None
        self.compression, self.quality = compression, int(quality)
        self.min_size, self.workers = int(min_size), int(workers)
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._expect = 0
        self.levels: list[tuple[int, int]] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # the output is needed when the graph runs, not when it is validated
        if self.path is None:
            raise ValueError("PyramidWriterOp: expected output=<folder>; got None")

    def _tiles(self) -> Iterator[np.ndarray]:
        while (row := self._queue.get()) is not _END:
            yield from row.tiles

    def _write(self, row: Any) -> None:
        try:
            info = row.level
            what = f"clara-stream digital_pathology: Canny edges of {Path(info.source).name} level {info.level}"
            self.levels = write_pyramid(
                self.path, self._tiles(), info.width, info.height, tile=row.tile, mpp=info.mpp,
                min_size=self.min_size, compression=self.compression, quality=self.quality,
                workers=self.workers, description=what,
            )  # fmt: skip
        except BaseException as exc:  # handed to compute, which raises it on the graph's thread
            self._error = exc
            while self._queue.get() is not _END:  # drain so compute never blocks on a dead writer
                pass

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        row = self.receive(op_input, P.OVERLAY)
        if row.row != self._expect:
            raise ValueError(f"PyramidWriterOp: expected row {self._expect}; got row {row.row} of {row.rows}")
        if self._thread is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._write, args=(row,), name=f"{self.name}-writer", daemon=True)
            self._thread.start()
        self._queue.put(row)
        self._expect += 1
        if row.row == row.rows - 1:
            self._queue.put(_END)
            self._thread.join()
            if self._error is not None:
                raise self._error
            self.emit(op_output, [self.path], P.PATHS)

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
