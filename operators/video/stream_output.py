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
from clara_stream.operators.video.detections import Detections
from clara_stream.operators.video.kitti import write_kitti
from clara_stream.operators.video.overlay import clock_text, draw_clock, draw_detections

from clara_stream.geometry import FrameInfo

_STOP = object()
_NAMED = (OSError, RuntimeError, ValueError)  # errors raised as they are; they already say what failed


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
                frame = rgb if rgb.flags.writeable else rgb.copy()
                draw_detections(frame, det)
                draw_clock(frame, clock_text(info.time_s, info.index))
                write_kitti(self.kitti, info.index, det)
                self.kitti_files += 1
                for sink in self.sinks:
                    sink.write(frame, info, read_at=read_at)
            except BaseException as exc:  # surfaced to the producer by submit()/close()
                self._error = exc if isinstance(exc, _NAMED) else self._wrapped(exc)

    def _wrapped(self, exc: BaseException) -> RuntimeError:
        err = RuntimeError(f"{self.owner}: expected the frame drawn, its KITTI file and its sinks written; "
                           f"got {exc!r}")
        err.__cause__ = exc
        return err

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
