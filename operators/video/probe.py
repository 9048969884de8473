"""Probe a video file: open it, check it, and describe its first video stream without decoding it all.

Every problem is a :class:`VideoInputError` naming the file: missing, empty, not a container, no
video stream, an unsupported codec, a raw stream without a known rate. The rate of a raw
``.h264``/``.h265`` stream comes from its VUI timing (FFmpeg's raw demuxers say 25 fps for any
stream), the rotation from the display matrix, and what the container promises (an index's frame
count, else a duration checked against the media actually in the file) from the container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED_CODECS: tuple[str, ...] = ("h264", "hevc")
RAW_FORMATS: tuple[str, ...] = ("h264", "hevc")  # FFmpeg demuxers of elementary streams (no container)
_ISO = (".mp4", ".mov", ".m4v", ".3gp")


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
    audio: tuple[str, ...] = ()  # codecs of the audio streams
    indexed: bool = False  # ``frames`` is the container index's count (else counted from packets)
    promised_end_s: float | None = None  # where the container says its media ends (start + duration)
    content_end_s: float | None = None  # where the packets in the file actually end (any stream)


def open_video(path: Path, owner: str) -> Any:
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


def first_video_stream(container: Any, path: Path, codecs: Sequence[str], owner: str) -> Any:
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
    container = open_video(p, owner)
    try:
        s = first_video_stream(container, p, codecs, owner)
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
        indexed, promised, content = frames > 0, None, None
        if not indexed:  # fragmented MP4 / MKV / raw bitstream: no index, so count packets (demux only)
            container.close()
            container = open_video(p, owner)  # raw streams cannot seek
            frames, content = _scan(container)
            if container.duration and not raw:
                promised = (container.start_time or 0) / 1e6 + container.duration / 1e6
        if raw and dur is None:
            dur = frames / float(fps)
        return VideoInfo(p, s.codec_context.name, w, h, fps, tb, frames, dur, rotation, raw, audio, indexed,
                         promised, content)
    finally:
        container.close()


def _scan(container: Any) -> tuple[int, float | None]:
    """Video packets in the file, and where its media ends: the latest packet end of any stream (s).

    Any stream: a video legitimately shorter than its audio is not a truncation; a file cut short
    loses the end of every stream.
    """
    video = container.streams.video[0].index
    frames, end = 0, None
    for pkt in container.demux():
        if not pkt.size:
            continue
        frames += pkt.stream.index == video
        if pkt.pts is not None and pkt.time_base:
            t = float((pkt.pts + (pkt.duration or 0)) * pkt.time_base)
            end = t if end is None else max(end, t)
    return frames, end


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
