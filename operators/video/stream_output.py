"""One source's outputs on its own thread: draw its boxes, write its KITTI file, hand it to its sinks.

A batched pipeline gets N frames per tick; drawing, KITTI and the encoder hand-off for all N on the
one thread that runs the graph made that thread the bottleneck (measured: creating a KITTI file
costs ≈ 0.5 ms of kernel time on a journal-less ext4 that recently deleted files, and N of them a
tick were serial). :class:`StreamOutput` does one source's part on its own thread, so the N sources'
outputs run side by side (OpenCV and file writes release the GIL), and per source in tick order.
An error on the worker is re-raised by the next :meth:`submit` or by :meth:`close`: an OSError,
RuntimeError or ValueError as it is (the sinks' own, which name the file and the cause), any other
(``cv2.error``, an IndexError from a bad box) wrapped in a RuntimeError that names the stream, so a
caller closing several outputs catches one family and the message says which stream failed.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.video.codec_worker import named
from clara_stream.operators.video.detections import Detections
from clara_stream.operators.video.kitti import clear_kitti, write_kitti
from clara_stream.operators.video.live_output import live_sink, shares_file_encode
from clara_stream.operators.video.mse_live import MseLiveSink
from clara_stream.operators.video.overlay import clock_text, draw_clock, draw_detections
from clara_stream.operators.video.sink import VideoSink

from clara_stream.geometry import FrameInfo

_STOP = object()


def render_frame(rgb: np.ndarray, info: FrameInfo, read_at: float, det: Detections, kitti: Path,
                 sinks: list[Any]) -> None:
    """Draw one frame's boxes and clock (on a copy if read-only), write its KITTI file, feed its sinks."""
    frame = rgb if rgb.flags.writeable else rgb.copy()
    draw_detections(frame, det)
    draw_clock(frame, clock_text(info.time_s, info.index))
    write_kitti(kitti, info.index, det)
    for sink in sinks:
        sink.write(frame, info, read_at=read_at)


def stream_sinks(folder: Path, index: int, url: str | None, *, tune: str | None, token: str | None,
                 opts: dict[str, Any]) -> tuple[Any, Any | None]:
    """Stream ``index``'s file sink ``stream_<index>/output.mp4`` and its live sink of its own, if any.

    A live address that can take the file's zerolatency packets as they are gets them (one encode).
    """
    shared = shares_file_encode(url, tune)
    sink = VideoSink(Path(folder) / f"stream_{index}" / "output.mp4", tune=tune or None,
                     copies=(str(url),) if shared else (), **opts)
    live = None if not url or shared else live_sink(str(url), token=token, codec="libx264", **opts)
    return sink, live


def prepare_stream(folder: Path, index: int, sink: Any, live: Any | None) -> Path:
    """The run owns its outputs: the old MP4 and KITTI files go; a browser page opens before the first frame."""
    sink.path.unlink(missing_ok=True)
    kitti = Path(folder) / f"stream_{index}" / "kitti"
    kitti.mkdir(parents=True, exist_ok=True)
    clear_kitti(kitti)
    if isinstance(live, MseLiveSink):
        live.open()
    return kitti


def open_stream_outputs(folder: str, index: int, url: str | None, tune: str | None, token: str | None,
                        opts: dict[str, Any]) -> tuple[Path, list[Any]]:
    """Build and prepare stream ``index``'s outputs in this process (a codec worker's): KITTI folder, sinks."""
    sink, live = stream_sinks(Path(folder), index, url, tune=tune, token=token, opts=opts)
    kitti = prepare_stream(Path(folder), index, sink, live)
    return kitti, [sink] + ([live] if live is not None else [])




class StreamOutput:
    """Overlay + KITTI + sinks for one source, on a worker thread behind a bounded queue.

    Parameters
    ----------
    kitti : path
        Folder for this source's KITTI files (created).
    sinks : list
        Objects with ``write(rgb, info, read_at=…)`` (VideoSink): the file, then any live output.
    queue_size : int
        Frames waiting for the worker (≥ 1); :meth:`submit` blocks when full (back-pressure).
    owner : str
        Prefix of error messages and the thread's name.
    """

    def __init__(self, kitti: str | Path, sinks: list[Any], *, queue_size: int = 4, owner: str = "StreamOutput"):
        if int(queue_size) < 1:
            raise ValueError(f"{owner}: expected queue_size >= 1; got {queue_size}")
        self.kitti, self.sinks, self.owner = Path(kitti), list(sinks), owner
        self.kitti.mkdir(parents=True, exist_ok=True)
        self.kitti_files = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(queue_size))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=owner, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is not None:
                continue  # failed: drain so a producer never blocks; the error is raised to it
            rgb, info, read_at, det = item
            try:
                render_frame(rgb, info, read_at, det, self.kitti, self.sinks)
                self.kitti_files += 1
            except BaseException as exc:  # surfaced to the producer by submit()/close()
                self._error = named(exc, self.owner)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, rgb: np.ndarray, info: FrameInfo, read_at: float, det: Detections) -> None:
        """Queue one frame and its detections (blocks while the worker is ``queue_size`` behind)."""
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError(f"{self.owner}: expected an open output; got submit after close")
        self._queue.put((rgb, info, read_at, det))

    def close(self) -> None:
        """Finish the queued frames and stop the worker (idempotent); re-raise its error. Sinks stay open."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise()
