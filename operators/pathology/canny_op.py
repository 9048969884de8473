"""CannyEdgeOp: Canny edges of every tile of a row, drawn in blue, core kept (overlap cut off)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clara_stream.operators.pathology.contracts import FILTERED_ROW, TILE_ROW
from clara_stream.operators.pathology.edges import BACKENDS, filter_tile

from clara_stream import ports as P
from clara_stream.arrays import gpu_available, to_device, to_host
from clara_stream.runtime import Operator, Port

DEVICES = ("data", "gpu")


class CannyEdgeOp(Operator):
    """Filter each tile on its padded window (thresholds on 8-bit grey); emit the cores on the host.

    Ports
    -----
    frame : TileRow with ``band`` (from SlideTileSourceOp; numpy, or cupy from a device decoder)
    overlay : the same TileRow with ``tiles`` (overlaid RGB uint8 cores, host) and ``edges`` (uint8
        0/255, host); ``band`` is dropped so the row's pixels are freed.

    Parameters
    ----------
    low, high : float
        Hysteresis thresholds, 0 <= low <= high (default 50, 150).
    l2gradient : bool
        Gradient magnitude sqrt(dx² + dy²) instead of |dx| + |dy| (cv2.Canny's option; default False).
    backend : {"auto", "cv2", "array"}
        ``auto``: the array module of the data decides (cupy → the array-API Canny, numpy → cv2.Canny,
        the faster one on the host); ``array``: the array-API Canny on either; ``cv2``: host only.
    device : {"data", "gpu"}
        ``data``: filter where the band lies; ``gpu``: copy each band to the GPU once, filter there.
    threads : int
        Tiles filtered at once (cv2 releases the GIL; default 2).
    cv2_threads : int
        OpenCV's own worker threads per call while the graph runs (a process-wide setting, put
        back at stop). Default 1: tiles already run in parallel, and splitting a 288 px tile
        across OpenCV's pool cost ~20 % more CPU; 0 leaves OpenCV's setting alone.
    keep_edges : bool
        Keep the edge maps in ``edges`` (default True; the tests compare them with cv2.Canny).

    Raises
    ------
    ValueError
        At construction for bad thresholds, backend, device, threads or cv2_threads, or ``backend='cv2'`` with
        ``device='gpu'``; at start for ``device='gpu'`` without a usable CUDA device.
    """

    inputs = (Port(P.FRAME, TILE_ROW, queue_size=4),)
    outputs = (Port(P.OVERLAY, FILTERED_ROW),)

    def __init__(self, fragment: Any, *args: Any, low: float = 50.0, high: float = 150.0, l2gradient: bool = False,
                 backend: str = "auto", device: str = "data", threads: int = 2, cv2_threads: int = 1,
                 keep_edges: bool = True, name: str = "filter", **kwargs: Any) -> None:  # fmt: skip
        if not 0 <= float(low) <= float(high):
            raise ValueError(f"CannyEdgeOp: expected 0 <= low <= high; got low={low}, high={high}")
        if backend not in BACKENDS:
            raise ValueError(f"CannyEdgeOp: expected backend in {BACKENDS}; got {backend!r}")
        if device not in DEVICES:
            raise ValueError(f"CannyEdgeOp: expected device in {DEVICES}; got {device!r}")
        if backend == "cv2" and device == "gpu":
            raise ValueError("CannyEdgeOp: expected backend 'auto' or 'array' with device 'gpu'; got 'cv2'")
        if int(threads) < 1 or int(cv2_threads) < 0:
            raise ValueError(f"CannyEdgeOp: expected threads >= 1 and cv2_threads >= 0; got {threads}, {cv2_threads}")
        self.low, self.high, self.l2gradient = float(low), float(high), bool(l2gradient)
        self.backend, self.device = backend, device
        self.threads, self.cv2_threads, self.keep_edges = int(threads), int(cv2_threads), bool(keep_edges)
        self._pool: ThreadPoolExecutor | None = None
        self._cv2_before: int | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if self.device == "gpu" and not gpu_available():
            raise ValueError("CannyEdgeOp: expected a usable CUDA device for device='gpu'; got none "
                             "(see `clara-stream doctor`)")  # fmt: skip
        self._pool = ThreadPoolExecutor(self.threads)
        if self.cv2_threads:
            import cv2

            self._cv2_before = cv2.getNumThreads()
            cv2.setNumThreads(self.cv2_threads)

    def _filter(self, row: Any, box: Any) -> tuple[Any, Any]:
        window, core = row.window(box), box.core_in_pad()
        tile, edges = filter_tile(window, core, self.low, self.high, self.backend, self.l2gradient)
        return to_host(tile), (to_host(edges) if self.keep_edges else None)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        row = self.receive(op_input, P.FRAME)
        assert self._pool is not None
        if self.device == "gpu":
            row.band = to_device(row.band)  # one copy per band; tiles are views of it
        done = list(self._pool.map(lambda b: self._filter(row, b), row.boxes))
        row.tiles = [t for t, _ in done]
        row.edges = [e for _, e in done] if self.keep_edges else None
        row.band = None
        self.emit(op_output, row, P.OVERLAY)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._cv2_before is not None:
            import cv2

            cv2.setNumThreads(self._cv2_before)
            self._cv2_before = None
