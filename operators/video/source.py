"""Read video files with PyAV on a background thread: probe, decode, colour-convert, rotate.

:class:`VideoSource` demuxes and decodes ahead into a bounded queue (back-pressure: the thread
blocks when the consumer is behind), so demux + decode + YUV→RGB overlap with whatever consumes
the frames. Every problem with the input is a :class:`VideoInputError` naming the file: a missing
file, a file that is not a video container, no video stream, an unsupported codec, a raw stream
without a known rate, undecodable data, or a stream that ends before the frames its container
promises (index frame count, else its duration): truncated.

Each frame carries ``read_at``, the ``time.perf_counter()`` at which its packet was read from the
file: the start of the glass-to-glass latency that :class:`~.sink.VideoSink` closes when the
frame's encoded packet is written.

Rotation: a display matrix (phone videos, ``rotate`` tags) is applied to the pixels here, so every
consumer (the model, KITTI coordinates, the output file) sees the frame as a player displays it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.video.colour import frame_to_rgb
from clara_stream.operators.video.pacer import DROP_POLICIES, Pacer
from clara_stream.operators.video.probe import (
    SUPPORTED_CODECS,
    VideoInfo,
    VideoInputError,
    first_video_stream,
    open_video,
    probe,
    rotate,
)

from clara_stream.geometry import FrameInfo

__all__ = ["DROP_POLICIES", "SUPPORTED_CODECS", "Pacer", "VideoInfo", "VideoInputError", "VideoSource", "probe"]


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels (as displayed), timing, packet-read and decode-done clocks."""

    rgb: np.ndarray
    info: FrameInfo
    decoded_at: float
    read_at: float = 0.0


_END = object()


class VideoSource:
    """Decode a video file on a background thread into a bounded queue.

    Parameters
    ----------
    path : path
        MP4, MKV, MOV, or a raw ``.h264``/``.h265`` bitstream.
    codecs : sequence of str
        Accepted codec names (FFmpeg names); others raise :class:`VideoInputError`.
    rate : Fraction, optional
        Frame rate of a raw bitstream (required when it carries no VUI timing; refused for containers).
    decode_threads : int
        FFmpeg decoder threads (0 = FFmpeg's choice, frame + slice threading).
    queue_size : int
        Frames decoded ahead (≥ 1); the decode thread blocks when the queue is full.
    loop : bool
        Start again at the end; timestamps and indices keep increasing across loops.
    convert : callable
        ``av.VideoFrame → ndarray``; :func:`frame_to_rgb` by default.
    pacer : Pacer, optional
        Realtime: packets are read at their decode time; a frame whose packet came later than the
        pacer's tolerance (the consumer fell behind) is dropped before conversion (counted). Paced
        decoding uses slice threads only: FFmpeg's frame threads hold each frame back by one frame
        interval per thread (≈ 68 ms at 30 fps measured here), which a live pipeline cannot afford.
    owner : str
        Prefix of error messages (the operator's name).

    Notes
    -----
    The file is probed at construction. The decode thread releases the GIL inside FFmpeg and
    OpenCV, so it runs beside the consumer. A failure in the thread is re-raised by the next
    :meth:`read`, after the frames decoded before it; ``decoded`` is the frame count reached.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        codecs: Sequence[str] = SUPPORTED_CODECS,
        rate: Fraction | None = None,
        decode_threads: int = 0,
        queue_size: int = 8,
        loop: bool = False,
        convert: Callable[[Any], np.ndarray] = frame_to_rgb,
        pacer: Pacer | None = None,
        owner: str = "VideoSource",
    ):
        if queue_size < 1:
            raise ValueError(f"{owner}: expected queue_size >= 1; got {queue_size}")
        self.path, self.owner, self.loop, self.convert = Path(path), owner, bool(loop), convert
        self.info = probe(self.path, codecs=codecs, rate=rate, owner=owner)
        self._codecs, self._threads, self.pacer = tuple(codecs), int(decode_threads), pacer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.decoded = 0

    def start(self) -> VideoSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.owner}-decode", daemon=True)
            self._thread.start()
        return self

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _frames(self, container: Any, stream: Any, offset_s: float) -> Any:
        """Decoded frames with their packet's read time and lateness (matched by pts; FIFO without pts).

        Paced (realtime), each packet is released at its decode time, as a live source delivers
        it, and stamped after that wait: a file's read-ahead is not counted as latency. Its
        lateness (> 0 when the decode thread was held by a full queue) decides a frame's drop.
        """
        by_pts: dict[int, tuple[float, float]] = {}
        fifo: deque[tuple[float, float]] = deque()
        rate, origin, n = float(self.info.rate), None, 0
        for packet in container.demux(stream):
            late = 0.0
            if self.pacer is not None and packet.size:
                ts = packet.dts if packet.dts is not None else packet.pts
                if self.info.raw or ts is None:
                    at = n / rate
                else:
                    origin = ts if origin is None else origin
                    at = float((ts - origin) * packet.time_base)
                late = self.pacer.wait(offset_s + at)
            stamp = (time.perf_counter(), late)
            if packet.size:
                n += 1
                fifo.append(stamp)
                if packet.pts is not None:
                    by_pts[packet.pts] = stamp
            for frame in packet.decode():
                own = by_pts.pop(frame.pts, None) if frame.pts is not None else None
                earliest = fifo.popleft() if fifo else stamp
                yield (frame, *(own or earliest))

    def _stream(self, container: Any) -> Any:
        stream = first_video_stream(container, self.path, self._codecs, self.owner)
        stream.thread_type = "SLICE" if self.pacer is not None else "AUTO"  # see the pacer parameter
        stream.thread_count = self._threads
        return stream

    def _run(self) -> None:
        import av

        try:
            container = open_video(self.path, self.owner)
        except VideoInputError as exc:
            self._put(exc)
            return
        info = self.info
        try:
            stream = self._stream(container)
            rate, tb = info.rate, info.time_base
            step = 1 if info.raw else max(1, round(1 / (rate * tb)))  # one frame in time-base units
            offset, index = 0, 0
            while not self._stop.is_set():
                n_pass, last, first_pts = 0, None, None
                try:
                    for frame, read_at, late_s in self._frames(container, stream, float(offset * tb)):
                        pts = n_pass * step if info.raw or frame.pts is None else frame.pts
                        first_pts = pts if first_pts is None else first_pts
                        rel = pts - first_pts + offset
                        n_pass, index, last = n_pass + 1, index + 1, rel
                        if self.pacer is not None and self.pacer.late(late_s):
                            continue  # late: dropped like a live source whose consumer fell behind (counted)
                        rgb = rotate(self.convert(frame), info.rotation)
                        item = DecodedFrame(rgb, FrameInfo(rel, tb, index - 1, rate), time.perf_counter(), read_at)
                        if not self._put(item):
                            return
                        self.decoded = index
                except av.FFmpegError as exc:
                    raise VideoInputError(
                        f"{self.owner}: expected decodable video data; got {exc.strerror or exc} after frame "
                        f"{index} [{self.path}]"
                    ) from exc
                if n_pass == 0:
                    raise VideoInputError(f"{self.owner}: expected at least one decodable frame; got 0 [{self.path}]")
                self._check_complete(n_pass)
                if not self.loop:
                    break
                offset = (last or 0) + step
                if info.raw:  # an elementary stream cannot seek: start it again
                    container.close()
                    container = open_video(self.path, self.owner)
                    stream = self._stream(container)
                else:
                    container.seek(0, stream=stream)
            self._put(_END)
        except VideoInputError as exc:
            self._put(exc)
        except Exception as exc:  # any other failure must reach the consumer, not die with the thread
            self._put(exc)
        finally:
            container.close()

    def _check_complete(self, n_pass: int) -> None:
        """Refuse a pass that ended before what the container promised (a truncated file).

        Indexed containers (MP4/MOV) promise a frame count, checked exactly. Others (MKV,
        fragmented MP4) promise a duration: the media found in the file (any stream) must reach
        it within two frames or 2 %, so variable frame rates and audio longer than video pass.
        """
        i = self.info
        if i.indexed and n_pass < i.frames:
            raise VideoInputError(
                f"{self.owner}: expected {i.frames} frames (container index); got {n_pass}, the stream ends after "
                f"frame {n_pass - 1}: the file is truncated or corrupt [{self.path}]"
            )
        if i.promised_end_s is None or i.content_end_s is None:
            return
        slack = max(2 / float(i.rate), 0.02 * (i.duration_s or 0))
        if i.promised_end_s - i.content_end_s > slack:
            raise VideoInputError(
                f"{self.owner}: expected media up to {i.promised_end_s:.3f} s (container duration); got "
                f"{i.content_end_s:.3f} s, the stream ends after frame {n_pass - 1}: the file is truncated or "
                f"corrupt [{self.path}]"
            )

    def read(self, timeout_s: float | None = None) -> DecodedFrame | None:
        """Next frame, or ``None`` at the end; re-raises a decode failure in order."""
        if self._thread is None:
            self.start()
        item = self._queue.get(timeout=timeout_s)
        if item is _END:
            self._queue.put(_END)  # later reads see the end too
            return None
        if isinstance(item, BaseException):
            self._queue.put(_END)
            raise item
        return item

    def __iter__(self):  # type: ignore[no-untyped-def]
        while (f := self.read()) is not None:
            yield f

    def close(self) -> None:
        """Stop the decode thread and drop frames not yet read (idempotent)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VideoSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
