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

from clara_stream.geometry import FrameInfo

SUPPORTED_CODECS: tuple[str, ...] = ("h264", "hevc")
RAW_FORMATS: tuple[str, ...] = ("h264", "hevc")  # FFmpeg demuxers of elementary streams (no container)
_ISO = (".mp4", ".mov", ".m4v", ".3gp")
__all__ = ["DROP_POLICIES", "Pacer", "VideoInfo", "VideoInputError", "VideoSource", "probe"]


class VideoInputError(ValueError):
    """The input is not a usable video; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (sizes as displayed, after rotation)."""

    path: Path
    codec: str
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int  # from the container index, else counted from packets
    duration_s: float | None
    rotation: int = 0  # degrees counter-clockwise applied to the coded frame for display
    raw: bool = False  # an elementary stream (.h264/.h265): no container timing
    audio: tuple[str, ...] = ()  # codecs of the audio streams (not carried to the output)


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels (as displayed), timing, packet-read and decode-done clocks."""

    rgb: np.ndarray
    info: FrameInfo
    decoded_at: float
    read_at: float = 0.0


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


def _is_raw(container: Any) -> bool:
    return container.format.name in RAW_FORMATS


def _rate(container: Any, stream: Any, path: Path, rate: Fraction | None, owner: str) -> Fraction:
    """The source rate: the container's; for a raw stream ``rate`` if given, else its VUI timing.

    FFmpeg's raw H.264/HEVC demuxers report 25 fps for any stream; the decoder's ``framerate``
    comes from the SPS VUI timing info when the encoder wrote it (x264 does; x265 unless
    ``vui-timing-info=0``), and is 0 otherwise.
    """
    if _is_raw(container):
        if rate is not None:
            return Fraction(rate)
        vui = stream.codec_context.framerate
        if vui:
            return Fraction(vui)
        raise VideoInputError(
            f"{owner}: expected a frame rate for a raw {stream.codec_context.name} stream (no VUI timing in it); "
            f"got none: set decoder.rate [{path}]"
        )
    if rate is not None:
        raise VideoInputError(
            f"{owner}: expected decoder.rate only for raw .h264/.h265 streams; got rate={rate} for a "
            f"{container.format.name} container, whose own timing is used [{path}]"
        )
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return Fraction(25)


def _expected_frames(container: Any, stream: Any, rate: Fraction, tb: Fraction) -> tuple[int, str]:
    """Frames the container promises and where the promise comes from (0 when it makes none)."""
    if stream.frames:
        return int(stream.frames), "container index"
    if stream.duration:
        return round(float(stream.duration * tb) * rate), f"stream duration {float(stream.duration * tb):.3f} s"
    if container.duration and not _is_raw(container):
        secs = container.duration / 1e6
        return round(secs * rate), f"container duration {secs:.3f} s at {float(rate):g} fps"
    return 0, ""


def probe(
    path: str | Path, *, codecs: Sequence[str] = SUPPORTED_CODECS, rate: Fraction | None = None, owner: str = "probe"
) -> VideoInfo:
    """Open, check and describe a video file, decoding only its first frame (for the rotation).

    Raises
    ------
    VideoInputError
        Missing, empty or non-video file; no video stream; codec not in ``codecs``; a raw stream
        without VUI timing and no ``rate``; ``rate`` given for a container.
    """
    import av

    p = Path(path)
    container = _open(p, owner)
    try:
        s = _video_stream(container, p, codecs, owner)
        fps = _rate(container, s, p, rate, owner)
        raw = _is_raw(container)
        tb = 1 / fps if raw or not s.time_base else Fraction(s.time_base)
        dur = float(s.duration * tb) if s.duration else (container.duration / 1e6 if container.duration else None)
        frames = int(s.frames or 0)
        audio = tuple(a.codec_context.name for a in container.streams.audio)
        try:
            first = next(iter(container.decode(s)), None)
        except av.FFmpegError:
            first = None  # reported with the frame reached when the stream is decoded
        rotation = _rotation(first, p, owner)
        w, h = s.codec_context.width, s.codec_context.height
        if rotation % 180:
            w, h = h, w
        if frames == 0:  # fragmented MP4 / MKV / raw bitstream: no index, so count packets (demux only)
            container.close()
            container = _open(p, owner)  # raw streams cannot seek
            frames = sum(1 for pkt in container.demux(container.streams.video[0]) if pkt.size)
        if raw and dur is None:
            dur = frames / float(fps)
        return VideoInfo(p, s.codec_context.name, w, h, fps, tb, frames, dur, rotation, raw, audio)
    finally:
        container.close()


def _rotation(frame: Any, path: Path, owner: str) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) to apply to a decoded frame for display."""
    if frame is None:
        return 0
    angle = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    if angle % 90:
        raise VideoInputError(f"{owner}: expected a display rotation in multiples of 90°; got {angle}° [{path}]")
    return angle


def rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (counter-clockwise degrees) to ``(H, W, 3)`` pixels."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


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

    def _run(self) -> None:
        import av

        try:
            container = _open(self.path, self.owner)
        except VideoInputError as exc:
            self._put(exc)
            return
        info = self.info
        try:
            stream = _video_stream(container, self.path, self._codecs, self.owner)
            stream.thread_type = "SLICE" if self.pacer is not None else "AUTO"  # see the pacer parameter
            stream.thread_count = self._threads
            rate, tb = info.rate, info.time_base
            step = 1 if info.raw else max(1, round(1 / (rate * tb)))  # one frame in time-base units
            expected, where = _expected_frames(container, stream, rate, Fraction(stream.time_base or tb))
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
                slack = 0 if where == "container index" else max(1, expected // 50)  # durations round
                if expected and expected - n_pass > slack:
                    raise VideoInputError(
                        f"{self.owner}: expected {expected} frames ({where}); got {n_pass}, the stream ends after "
                        f"frame {n_pass - 1}: the file is truncated or corrupt [{self.path}]"
                    )
                if not self.loop:
                    break
                offset = (last or 0) + step
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
