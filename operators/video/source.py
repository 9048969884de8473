"""Read video files with PyAV on a background thread: probe, decode, colour-convert, pace.

:class:`VideoSource` decodes ahead into a bounded queue (back-pressure: the thread blocks when
the consumer is behind), so demux + decode + YUV→RGB overlap with whatever consumes the frames.
Every problem with the input is a :class:`VideoInputError` naming the file: a missing file, a
file that is not a video container, no video stream, an unsupported codec, undecodable data,
or a file that ends before the frames its index promises (truncated).

:class:`Pacer` turns "as fast as possible" into "real time at the source rate", with a drop
policy for frames that are already late when their turn comes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.video.colour import frame_to_rgb

from clara_stream.geometry import FrameInfo

SUPPORTED_CODECS: tuple[str, ...] = ("h264", "hevc")
DROP_POLICIES: tuple[str, ...] = ("none", "drop_late")
_ISO = (".mp4", ".mov", ".m4v", ".3gp")


class VideoInputError(ValueError):
    """The input is not a usable video; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream."""

    path: Path
    codec: str
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int  # from the container index, else counted from packets
    duration_s: float | None


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels, timing, and when decoding finished (``time.perf_counter``)."""

    rgb: np.ndarray
    info: FrameInfo
    decoded_at: float


def _open(path: Path, owner: str) -> Any:
    import av

    if not path.exists():
        raise VideoInputError(f"{owner}: expected an existing video file; got missing path [{path}]")
    if not path.is_file():
        raise VideoInputError(f"{owner}: expected a video file; got a directory [{path}]")
    if path.stat().st_size == 0:
        raise VideoInputError(f"{owner}: expected a video file; got an empty file [{path}]")
    try:
        return av.open(str(path), "r")
    except av.FFmpegError as exc:
        hint = " (an MP4/MOV cut short loses its index, the moov atom)" if path.suffix.lower() in _ISO else ""
        raise VideoInputError(
            f"{owner}: expected a readable video container (MP4/MKV/MOV/raw H.264/H.265); "
            f"got {exc.strerror or exc}{hint} [{path}]"
        ) from exc


def _video_stream(container: Any, path: Path, codecs: Sequence[str], owner: str) -> Any:
    if not container.streams.video:
        found = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "no streams"
        container.close()
        raise VideoInputError(f"{owner}: expected a video stream; got none ({found}) [{path}]")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codecs and codec not in codecs:
        container.close()
        raise VideoInputError(f"{owner}: expected a video codec in {tuple(codecs)}; got {codec!r} [{path}]")
    if not stream.codec_context.width or not stream.codec_context.height:
        container.close()
        raise VideoInputError(f"{owner}: expected a video stream with a frame size; got 0x0 (corrupt header) [{path}]")
    return stream


def _rate(stream: Any) -> Fraction:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return Fraction(25)


def probe(path: str | Path, *, codecs: Sequence[str] = SUPPORTED_CODECS, owner: str = "probe") -> VideoInfo:
    """Open, check and describe a video file without decoding it.

    Raises
    ------
    VideoInputError
        Missing, empty or non-video file; no video stream; codec not in ``codecs``.
    """
    p = Path(path)
    container = _open(p, owner)
    try:
        s = _video_stream(container, p, codecs, owner)
        tb = Fraction(s.time_base) if s.time_base else 1 / _rate(s)
        dur = float(s.duration * tb) if s.duration else (container.duration / 1e6 if container.duration else None)
        frames = int(s.frames or 0)
        if frames == 0:  # fragmented MP4 / raw bitstream: no index, so count packets (demux only, no decode)
            frames = sum(1 for pkt in container.demux(s) if pkt.size)
        return VideoInfo(
            p,
            s.codec_context.name,
            s.codec_context.width,
            s.codec_context.height,
            _rate(s),
            tb,
            frames,
            dur,
        )
    finally:
        container.close()


_END = object()


class VideoSource:
    """Decode a video file on a background thread into a bounded queue.

    Parameters
    ----------
    path : path
        MP4, MKV, MOV, or a raw ``.h264``/``.h265`` bitstream.
    codecs : sequence of str
        Accepted codec names (FFmpeg names); others raise :class:`VideoInputError`.
    decode_threads : int
        FFmpeg decoder threads (0 = FFmpeg's choice, frame + slice threading).
    queue_size : int
        Frames decoded ahead (≥ 1); the decode thread blocks when the queue is full.
    loop : bool
        Start again at the end; timestamps and indices keep increasing across loops.
    convert : callable
        ``av.VideoFrame → ndarray``; :func:`frame_to_rgb` by default.
    owner : str
        Prefix of error messages (the operator's name).

    Notes
    -----
    The decode thread releases the GIL inside FFmpeg and OpenCV, so it runs beside the consumer.
    A failure in the thread is re-raised by the next :meth:`read`, after the frames decoded before it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        codecs: Sequence[str] = SUPPORTED_CODECS,
        decode_threads: int = 0,
        queue_size: int = 8,
        loop: bool = False,
        convert: Callable[[Any], np.ndarray] = frame_to_rgb,
        owner: str = "VideoSource",
    ):
        if queue_size < 1:
            raise ValueError(f"{owner}: expected queue_size >= 1; got {queue_size}")
        self.path, self.owner, self.loop, self.convert = Path(path), owner, bool(loop), convert
        self.info = probe(self.path, codecs=codecs, owner=owner)
        self._codecs, self._threads = tuple(codecs), int(decode_threads)
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

    def _run(self) -> None:
        import av

        try:
            container = _open(self.path, self.owner)
        except VideoInputError as exc:
            self._put(exc)
            return
        try:
            stream = _video_stream(container, self.path, self._codecs, self.owner)
            stream.thread_type = "AUTO"
            stream.thread_count = self._threads
            rate = _rate(stream)
            tb = Fraction(stream.time_base) if stream.time_base else 1 / rate
            step = max(1, round(1 / (rate * tb)))  # one frame in time-base units
            offset, index, first_pts = 0, 0, None
            while not self._stop.is_set():
                n_pass, last = 0, None
                try:
                    for frame in container.decode(stream):
                        pts = frame.pts if frame.pts is not None else n_pass * step
                        if first_pts is None:
                            first_pts = pts
                        rel = pts - first_pts + offset
                        item = DecodedFrame(self.convert(frame), FrameInfo(rel, tb, index, rate), time.perf_counter())
                        if not self._put(item):
                            return
                        n_pass, index, last = n_pass + 1, index + 1, rel
                        self.decoded = index
                except av.FFmpegError as exc:
                    raise VideoInputError(
                        f"{self.owner}: expected decodable video data; got {exc.strerror or exc} after frame "
                        f"{index} [{self.path}]"
                    ) from exc
                expected = int(stream.frames or 0)
                if expected and n_pass < expected:
                    raise VideoInputError(
                        f"{self.owner}: expected {expected} frames (container index); got {n_pass}: "
                        f"the file is truncated or corrupt [{self.path}]"
                    )
                if n_pass == 0:
                    raise VideoInputError(f"{self.owner}: expected at least one decodable frame; got 0 [{self.path}]")
                if not self.loop:
                    break
                offset = (last or 0) + step
                first_pts = None
                container.seek(0, stream=stream)
            self._put(_END)
        except VideoInputError as exc:
            self._put(exc)
        except Exception as exc:  # any other failure must reach the consumer, not die with the thread
            self._put(exc)
        finally:
            container.close()

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


class Pacer:
    """Release frames at their presentation time; drop the late ones when asked.

    Parameters
    ----------
    drop_policy : {"none", "drop_late"}
        ``none``: a late frame is released at once and the timeline slides (nothing is lost);
        ``drop_late``: a frame later than ``late_tolerance_s`` is dropped (counted), like a live
        source whose consumer cannot keep up.
    late_tolerance_s : float
        Lateness allowed before a drop (default one frame at 30 fps).
    clock, sleep : callables
        Time source and sleeper (``time.perf_counter`` / ``time.sleep``); tests pass a fake pair.
    """

    def __init__(self, *, drop_policy: str = "drop_late", late_tolerance_s: float = 1 / 30,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep):
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"Pacer: expected drop_policy in {DROP_POLICIES}; got {drop_policy!r}")
        if late_tolerance_s < 0:
            raise ValueError(f"Pacer: expected late_tolerance_s >= 0; got {late_tolerance_s}")
        self.drop_policy, self.tolerance = drop_policy, float(late_tolerance_s)
        self._clock, self._sleep = clock, sleep
        self._t0: float | None = None
        self._m0 = 0.0
        self.dropped = 0
        self.released = 0

    def admit(self, media_time_s: float) -> bool:
        """Wait until the frame is due; return False when it should be dropped instead."""
        now = self._clock()
        if self._t0 is None:
            self._t0, self._m0 = now, media_time_s
        due = self._t0 + (media_time_s - self._m0)
        if now < due:
            self._sleep(due - now)
        elif now - due > self.tolerance:
            if self.drop_policy == "drop_late":
                self.dropped += 1
                return False
            self._t0 += now - due  # slide the timeline: release now, pace the rest from here
        self.released += 1
        return True
