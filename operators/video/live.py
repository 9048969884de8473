"""Read a live video stream with PyAV (FFmpeg) on a background thread, with live semantics.

:class:`LiveSource` is :class:`~.source.VideoSource`'s counterpart for streams (see
:mod:`.live_uri` for the addresses): no pacing (the sender's clock rules), a bounded
:class:`~.live_queue.DroppingQueue` (frames dropped and counted when the consumer is behind, so
latency never builds), reconnection with exponential backoff when the stream drops (each attempt
recorded, ``status`` says where it stands), and stream timestamps mapped to the wall clock
(:class:`~.live_queue.StreamClock`) so latency is counted from when the frame was sent.

The first connection is made by :meth:`LiveSource.open` (called by ``start``): an unreachable
host, a refused port, a protocol this FFmpeg lacks, a codec we refuse or a stream without video
is one :class:`LiveInputError` naming the address, before any frame or output exists.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from clara_stream.operators.video.colour import frame_to_rgb
from clara_stream.operators.video.live_queue import DroppingQueue, StreamClock
from clara_stream.operators.video.live_uri import RTSP_TRANSPORTS, input_options, is_v4l2, rtp_input, scheme
from clara_stream.operators.video.probe import SUPPORTED_CODECS, VideoInputError
from clara_stream.operators.video.rtp_nal import NalAssembler
from clara_stream.operators.video.source import DecodedFrame
from clara_stream.operators.video.v4l2_relay import (
    FFMPEG,
    V4L2_CODECS,
    V4L2_OPTIONS,
    FfmpegRelay,
    RelayError,
    check_device,
    system_ffmpeg_has_v4l2,
    v4l2_input_args,
)

from clara_stream.geometry import FrameInfo

log = logging.getLogger(__name__)
_END = object()
LIVE_TIME_BASE = Fraction(1, 90000)  # the RTP video clock: output timestamps keep the stream's spacing


@functools.cache
def _system_v4l2() -> bool:
    return system_ffmpeg_has_v4l2(FFMPEG)


class LiveInputError(VideoInputError):
    """A live input could not be opened, or did not come back within its retries."""


@dataclass(frozen=True)
class StreamInfo:
    """What the stream said when it was opened (sizes as decoded)."""

    uri: str
    codec: str
    width: int
    height: int
    rate: Fraction
    audio: tuple[str, ...] = ()


@dataclass
class Reconnect:
    """One reconnection: why the stream was lost, attempts made, and whether it came back."""

    reason: str
    attempts: int = 0
    recovered: bool = False
    lost_at: float = field(default_factory=time.perf_counter)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "attempts": self.attempts, "recovered": self.recovered}


def _why(exc: BaseException, timeout_s: float | None = None) -> str:
    why = str(getattr(exc, "strerror", None) or exc)
    if timeout_s is not None and "Immediate exit requested" in why:  # PyAV's timeout interrupt
        return f"no data within timeout_s={timeout_s:g} s"
    return why


class LiveSource:
    """Decode a live stream into a bounded, dropping queue; reconnect when it drops.

    Parameters
    ----------
    uri : str
        Stream address (see :mod:`.live_uri`).
    codecs : sequence of str
        Accepted codecs (FFmpeg names); another is refused at open.
    queue_size : int
        Frames held for the consumer (≥ 1): the latency bound, in frames.
    drop_policy : {"drop_oldest", "drop_newest"}
        Which frame goes when the queue is full (counted in ``dropped``).
    retries : int
        Reconnection attempts after the stream drops (0: the first loss ends the run).
    backoff_s, backoff_max_s : float
        First wait before a reconnection attempt, doubled per failed attempt up to the maximum.
    timeout_s : float
        Socket open/read timeout: how long silence lasts before the stream counts as lost.
    transport : {"tcp", "udp"}
        RTSP transport (interleaved TCP, or RTP over UDP).
    low_delay : bool
        MPEG-TS: hand packets to the decoder unparsed (one frame per PES; see ``live_uri.input_options``).
        RTSP/SDP H.264: the depacketiser's output joined into whole NAL units here (``rtp_nal``),
        the decoder finishing each picture at its last slice (``flags2=+chunks``), not at the next
        frame's first packet. A stream whose size the probe cannot find unparsed (no parameter
        sets in its SDP) is opened again with FFmpeg's parser.
    options : dict, optional
        Further FFmpeg options (they win over the defaults).
    convert : callable
        ``av.VideoFrame → ndarray`` (:func:`frame_to_rgb`).
    decode_threads : int
        FFmpeg slice threads (0 = FFmpeg's choice; 1 where many sources decode side by side).
    owner : str
        Prefix of error messages.
    """

    def __init__(self, uri: str, *, codecs: Sequence[str] = SUPPORTED_CODECS, queue_size: int = 4,
                 drop_policy: str = "drop_oldest", retries: int = 5, backoff_s: float = 0.25,
                 backoff_max_s: float = 4.0, timeout_s: float = 5.0, transport: str = "tcp", low_delay: bool = True,
                 options: dict[str, str] | None = None, convert: Callable[[Any], np.ndarray] = frame_to_rgb,
                 decode_threads: int = 0, owner: str = "LiveSource"):
        if transport not in RTSP_TRANSPORTS:
            raise ValueError(f"{owner}: expected transport in {RTSP_TRANSPORTS}; got {transport!r}")
        if int(retries) < 0 or backoff_s <= 0 or backoff_max_s < backoff_s or timeout_s <= 0:
            raise ValueError(f"{owner}: expected retries >= 0, 0 < backoff_s <= backoff_max_s and timeout_s > 0; "
                             f"got {retries}, {backoff_s}, {backoff_max_s}, {timeout_s}")
        self.uri, self.owner, self.codecs, self.convert = str(uri), owner, tuple(codecs), convert
        self.decode_threads = max(0, int(decode_threads))
        self.retries, self.backoff_s, self.backoff_max_s = int(retries), float(backoff_s), float(backoff_max_s)
        self.timeout_s = float(timeout_s)  # PyAV interrupts any blocking open/read after it
        if is_v4l2(self.uri) and (unknown := sorted(set(options or {}) - set(V4L2_OPTIONS))):
            raise ValueError(f"{owner}: expected options for a V4L2 device among {sorted(V4L2_OPTIONS)}; "
                             f"got {unknown} [{self.uri}]")  # the relay passes only those: never drop one unsaid
        self.options = input_options(self.uri, transport=transport, timeout_s=timeout_s,
                                     low_delay=bool(low_delay)) | dict(options or {})
        self.nal: NalAssembler | None = None  # RTSP/SDP H.264 at low delay: whole NAL units, see rtp_nal
        self._nal_lost = (0, 0)  # (orphans, oversized) of earlier connections
        self._relay: FfmpegRelay | None = None  # V4L2 through the system FFmpeg
        if self.options.get("rtsp_flags") == "listen":  # the server side for one publisher: its own timeout
            self.options.pop("timeout", None)
            self.options.setdefault("listen_timeout", str(max(1, round(timeout_s))))
        self.queue = DroppingQueue(queue_size, drop_policy, owner)
        self.clock = StreamClock()
        self.info: StreamInfo | None = None
        self.status = "idle"  # idle → connected ⇄ reconnecting → ended | failed
        self.reconnects: list[Reconnect] = []
        self.decoded = 0
        self._container: Any = None
        self._stream: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._last_index = -1

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> tuple[Any, Any]:
        """Open the address and check its first video stream; LiveInputError naming it otherwise."""
        import av

        where = f"[{self.uri}]"
        target, fmt, options, relay = self.uri, None, self.options, None
        if is_v4l2(self.uri):
            if self._check_v4l2(where):
                fmt = "v4l2"
            else:  # PyAV's FFmpeg lacks the v4l2 input: the system FFmpeg captures, see v4l2_relay
                relay = self._relay = self._open_relay(where)  # known to close() while av.open waits
                target, fmt = f"pipe:{relay.fd}", "nut"
                options = {k: v for k, v in self.options.items() if k in ("flags", "probesize", "analyzeduration")}
        if scheme(self.uri) == "srt":
            raise LiveInputError(f"{self.owner}: expected a protocol this FFmpeg build supports; got srt:// "
                                 f"(PyAV's bundled FFmpeg has no libsrt) {where}")
        try:
            container = av.open(target, "r", format=fmt, options=options, timeout=self.timeout_s)
        except av.ProtocolNotFoundError as exc:
            raise LiveInputError(f"{self.owner}: expected a protocol this FFmpeg build supports; got "
                                 f"{scheme(self.uri) or 'none'} ({_why(exc)}) {where}") from exc
        except (av.FFmpegError, OSError) as exc:
            if relay is not None:
                why = relay.why()
                self._close_relay()
                raise LiveInputError(f"{self.owner}: expected a V4L2 capture device; got {why} {where}") from exc
            why = _why(exc, self.timeout_s)
            raise LiveInputError(f"{self.owner}: expected a reachable live video stream; got {why} {where}") from exc
        self._relay = relay
        try:
            if not container.streams.video:
                found = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "no streams"
                raise LiveInputError(f"{self.owner}: expected a video stream; got none ({found}) {where}")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            codecs = self.codecs + V4L2_CODECS if is_v4l2(self.uri) and self.codecs else self.codecs
            if codecs and codec not in codecs:
                raise LiveInputError(f"{self.owner}: expected a video codec in {codecs}; got {codec!r} {where}")
        except LiveInputError:
            container.close()
            self._close_relay()
            raise
        stream.thread_type = "SLICE"  # frame threads hold each frame back by a frame per thread
        stream.thread_count = self.decode_threads
        if self.nal is not None:  # a reconnection: the losses of the last connection stay counted
            self._nal_lost = (self._nal_lost[0] + self.nal.orphans, self._nal_lost[1] + self.nal.oversized)
        self.nal = None
        if rtp_input(self.uri) and "noparse" in self.options.get("fflags", ""):
            if codec != "h264" or not stream.codec_context.width:  # unparsed needs the SDP's parameter sets
                container.close()
                return self._connect_parsed()
            stream.codec_context.flags2 |= av.codec.context.Flags2.chunks  # a picture ends at its last slice
            stream.thread_count = 1  # one NAL unit per packet: nothing for slice threads to share
            self.nal = NalAssembler()
        # the SPS's rate before FFmpeg's guess from the time base (which reads 60 for a 30 fps H.264 stream)
        rates = (stream.average_rate, stream.codec_context.framerate, stream.guessed_rate, stream.base_rate)
        rate = next((Fraction(r) for r in rates if r), Fraction(30))
        audio = tuple(a.codec_context.name for a in container.streams.audio)
        self.info = StreamInfo(self.uri, codec, stream.codec_context.width, stream.codec_context.height, rate, audio)
        self.clock.reset()
        return container, stream

    def _connect_parsed(self) -> tuple[Any, Any]:
        """Open again with FFmpeg's parser (the stream cannot be taken unparsed)."""
        fflags = self.options["fflags"].replace("+noparse", "")
        self.options = {k: v for k, v in self.options.items() if k not in ("fflags", "fpsprobesize")}
        if fflags:
            self.options["fflags"] = fflags
        return self._connect()

    def _decode(self, packet: Any) -> list[Any]:
        """Frames from one demuxed packet: as is, or through the NAL assembler (RTSP/SDP at low delay)."""
        if self.nal is None:
            return packet.decode()
        import av

        frames = []
        for data, pts in self.nal.push(bytes(packet), packet.pts) if packet.size else self.nal.flush():
            nal = av.Packet(data)
            nal.pts = nal.dts = pts
            nal.time_base = packet.time_base
            frames += self._stream.codec_context.decode(nal)
        return frames if packet.size else frames + packet.decode()  # the end: the decoder's last frames too

    def _check_v4l2(self, where: str) -> bool:
        """True: PyAV's FFmpeg reads the device; False: the system FFmpeg does (see v4l2_relay).

        Options (``options``): ``video_size`` (``1280x720``), ``framerate`` (``30``),
        ``input_format`` (``mjpeg``, ``yuyv422``…), as FFmpeg's v4l2 input takes them.
        """
        import av

        try:
            return check_device(self.uri, pyav_has_v4l2="v4l2" in av.formats_available, system_has_v4l2=_system_v4l2)
        except RelayError as exc:
            what = "an FFmpeg with the v4l2 input" if "v4l2 input" in str(exc) else "a V4L2 capture device"
            raise LiveInputError(f"{self.owner}: expected {what}; got {exc} {where}") from exc

    def _open_relay(self, where: str) -> FfmpegRelay:
        device = {k: v for k, v in self.options.items() if k in V4L2_OPTIONS}
        try:
            return FfmpegRelay(v4l2_input_args(self.uri, device), silence_s=self.timeout_s, owner=f"{self.owner}-v4l2")
        except (RelayError, ValueError) as exc:
            raise LiveInputError(f"{self.owner}: expected the V4L2 capture relay to start; got {exc} {where}") from exc

    def _close_relay(self) -> None:
        relay, self._relay = getattr(self, "_relay", None), None
        if relay is not None:
            relay.close()

    def open(self) -> LiveSource:
        """Make the first connection (raises LiveInputError) and start the decode thread."""
        if self._thread is None:
            self._container, self._stream = self._connect()
            self.status = "connected"
            self._thread = threading.Thread(target=self._run, name=f"{self.owner}-live", daemon=True)
            self._thread.start()
        return self

    start = open

    def _reconnect(self, reason: str) -> bool:
        """Try again with exponential backoff; True when the stream is back."""
        event = Reconnect(reason)
        self.reconnects.append(event)
        self.status = "reconnecting"
        log.warning("%s: stream lost (%s); reconnecting [%s]", self.owner, reason, self.uri)
        wait = self.backoff_s
        while event.attempts < self.retries and not self._stop.is_set():
            if self._stop.wait(wait):
                return False
            event.attempts += 1
            try:
                self._container, self._stream = self._connect()
            except LiveInputError as exc:
                event.reason = f"{reason}; last attempt: {str(exc).split('; got ', 1)[-1].rsplit(' [', 1)[0]}"
                wait = min(wait * 2, self.backoff_max_s)
                continue
            event.recovered, self.status = True, "connected"
            return True
        return False

    # -- decoding -------------------------------------------------------------------------------
    def _frame(self, frame: Any, stream: Any, origin: list[Any], arrived: float) -> DecodedFrame:
        """RGB + FrameInfo on the run's continuous timeline; ``read_at`` is the send-time estimate."""
        tb = Fraction(stream.time_base) if stream.time_base else LIVE_TIME_BASE
        stream_s = float(frame.pts * tb) if frame.pts is not None else arrived
        sent = self.clock.sent_at(stream_s, arrived)
        if origin[0] is None:  # a new connection: its first frame sits where the wall clock says
            self._t0 = sent if self._t0 is None else self._t0
            origin[0], origin[1] = stream_s, sent - self._t0
        rel_s = origin[1] + (stream_s - origin[0])
        rate = self.info.rate
        index = max(self._last_index + 1, round(rel_s * float(rate)))  # gaps where frames were lost
        self._last_index = index
        info = FrameInfo(round(rel_s / LIVE_TIME_BASE), LIVE_TIME_BASE, index, rate)
        return DecodedFrame(self.convert(frame), info, time.perf_counter(), sent)

    def _run(self) -> None:
        import av

        try:
            while not self._stop.is_set():
                origin: list[Any] = [None, 0.0]
                reason = "the stream ended"
                try:
                    for packet in self._container.demux(self._stream):
                        if self._stop.is_set():
                            return
                        arrived = time.perf_counter()
                        for frame in self._decode(packet):
                            self.queue.put(self._frame(frame, self._stream, origin, arrived))
                            self.decoded += 1
                except av.FFmpegError as exc:
                    reason = _why(exc, self.timeout_s)
                finally:
                    self._container.close()
                    if self._relay is not None and self._relay.silent:
                        reason = self._relay.why()  # the watchdog ended a device that went quiet
                    self._close_relay()
                if self._stop.is_set():
                    return
                if not self._reconnect(reason):
                    if self._stop.is_set():
                        return
                    self.status = "failed"
                    tries = self.reconnects[-1].attempts
                    self.queue.put_final(LiveInputError(
                        f"{self.owner}: expected the stream to come back within {self.retries} retries; got "
                        f"{self.reconnects[-1].reason} after frame {self.decoded} ({tries} attempts) [{self.uri}]"))
                    return
        except Exception as exc:  # any other failure must reach the consumer, not die with the thread
            self.status = "failed"
            self.queue.put_final(exc)

    # -- consumer -------------------------------------------------------------------------------
    def read(self, timeout_s: float | None = None) -> DecodedFrame | None:
        """The next frame (blocks); re-raises the error that ended the stream, after its frames."""
        if self._thread is None:
            self.open()
        item = self.queue.get(timeout_s)
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def close(self) -> None:
        """Stop the thread and the connection (idempotent)."""
        self._stop.set()
        self.queue.clear()
        self.queue.put_final(_END)
        relay = self._relay
        if relay is not None:
            relay.terminate()  # a silent device: the demuxer sees the pipe end at once
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_relay()
        if self.status not in ("failed",):
            self.status = "ended"

    def describe(self) -> dict[str, Any]:
        i = self.info
        return {
            "input": self.uri, "live": True, "status": self.status,
            "codec": i.codec if i else None, "width": i.width if i else None, "height": i.height if i else None,
            "rate": float(i.rate) if i else None, "audio_streams": list(i.audio) if i else [],
            "decoded": self.decoded, "dropped": self.dropped, "drop_policy": self.queue.policy,
            "queue_size": self.queue.size, "queue_high_water": self.queue.high_water,
            "reconnects": [r.to_dict() for r in self.reconnects],
            **self._nal_stats(),
        }

    def _nal_stats(self) -> dict[str, Any]:
        """RTSP/SDP at low delay: NAL units lost in transport (``orphans``: a fragment whose start never
        came) or dropped for size (``oversized``), over every connection."""
        if self.nal is None and self._nal_lost == (0, 0):
            return {}
        orphans, oversized = self._nal_lost
        if self.nal is not None:
            orphans, oversized = orphans + self.nal.orphans, oversized + self.nal.oversized
        return {"rtp_nal": {"orphans": orphans, "oversized": oversized}}

    def __enter__(self) -> LiveSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
