"""CannyEdgeOp: Canny edges of every tile of a row, drawn in blue, core kept (overlap cut off)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clara_stream.operators.pathology.contracts import FILTERED_ROW, TILE_ROW
from clara_stream.operators.pathology.edges import filter_tile

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class CannyEdgeOp(Operator):
    """Filter each tile on its padded window (cv2.Canny, thresholds on 8-bit grey); emit the cores.

    Ports
    -----
    frame : TileRow with ``band`` (from SlideTileSourceOp)
    overlay : the same TileRow with ``tiles`` (overlaid RGB uint8 cores) and ``edges`` (uint8 0/255);
        ``band`` is dropped so the row's pixels are freed.

    Parameters
    ----------
    low, high : float
        Hysteresis thresholds, 0 <= low <= high (default 50, 150).
    threads : int
        Tiles filtered at once (cv2 releases the GIL; default 2).
    keep_edges : bool
        Keep the edge maps in ``edges`` (default True; the tests compare them with cv2.Canny).
    """

    inputs = (Port(P.FRAME, TILE_ROW, queue_size=4),)
    outputs = (Port(P.OVERLAY, FILTERED_ROW),)

    def __init__(self, fragment: Any, *args: Any, low: float = 50.0, high: float = 150.0, threads: int = 2,
                 keep_edges: bool = True, name: str = "filter", **kwargs: Any) -> None:  # fmt: skip
        if not 0 <= float(low) <= float(high):
            raise ValueError(f"CannyEdgeOp: expected 0 <= low <= high; got low={low}, high={high}")
        if int(threads) < 1:
            raise ValueError(f"CannyEdgeOp: expected threads >= 1; got {threads}")
        self.low, self.high, self.threads, self.keep_edges = float(low), float(high), int(threads), bool(keep_edges)
        self._pool: ThreadPoolExecutor | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.threads)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        row = self.receive(op_input, P.FRAME)
        assert self._pool is not None
        done = list(self._pool.map(
            lambda b: filter_tile(row.window(b), b.core_in_pad(), self.low, self.high), row.boxes))  # fmt: skip
        row.tiles = [t for t, _ in done]
        row.edges = [e for _, e in done] if self.keep_edges else None
        row.band = None
        self.emit(op_output, row, P.OVERLAY)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
