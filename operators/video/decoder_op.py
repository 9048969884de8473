"""VideoDecoderOp: a video file or a live stream (by URI) → RGB frames with FrameInfo, threaded."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from clara_stream.operators.video.contracts import FRAME_RGB
from clara_stream.operators.video.live import LiveSource
from clara_stream.operators.video.live_queue import QUEUE_POLICIES
from clara_stream.operators.video.live_uri import RTSP_TRANSPORTS, is_live
from clara_stream.operators.video.pacer import DROP_POLICIES, Pacer
from clara_stream.operators.video.source import SUPPORTED_CODECS, VideoSource

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class VideoDecoderOp(Operator):
    """Decode a video file or a live stream on a background thread and emit one RGB frame per compute.

    Ports
    -----
    frame : uint8 (H, W, 3) RGB host array, as displayed (a display-matrix rotation is applied);
        metadata ``frame_info`` (FrameInfo: pts, time base, index, source rate), ``packet_clock``
        (``time.perf_counter()`` when its packet was read from the file: glass-to-glass start) and
        ``frame_clock`` (when emitted)

    Parameters
    ----------
    path : path or URI
        Input video: a file, or a live stream (``rtsp://``, ``rtp://``/``.sdp``, ``udp://``,
        ``tcp://``, ``http(s)://….m3u8``; see ``live_uri``), read by ``LiveSource`` with live
        semantics (no pacing, the ``queue_policy`` drops, reconnection). It is opened in
        ``start()`` (nothing is opened while the app is built, so ``clara-stream validate`` has no
        side effects): a missing, non-video or unsupported file, or an unreachable stream, fails
        before the first frame. ``None`` builds the operator for graph inspection and fails
        at start.
    rate : float or str, optional
        Frame rate of a raw ``.h264``/``.h265`` stream (e.g. ``24`` or ``"30000/1001"``): required
        when the stream carries no VUI timing, refused for containers (their timing is used).
    realtime : bool
        Behave like a live source: the decode thread reads each packet at its decode time (so the
        glass-to-glass clock starts when a camera would deliver it, not when a file read ahead)
        and releases frames at their presentation time; otherwise as fast as possible.
    drop_policy : {"none", "drop_late"}
        Realtime only: what to do with a decoded frame already late by ``late_tolerance_s`` (the
        consumer fell behind and the decode thread was held by the full queue).
    late_tolerance_s : float, optional
        Default: one frame interval of the source.
    loop : bool
        Restart at the end (timestamps keep increasing); bound the run with ``max_frames``.
    max_frames : int
        Stop after this many emitted frames (0 = no limit).
    decode_threads : int
        FFmpeg decoder threads (0 = automatic).
    queue_size : int
        Frames decoded ahead on the decode thread.
    codecs : list of str
        Accepted codecs (FFmpeg names).
    queue_policy : {"drop_oldest", "drop_newest"}
        Live only: which frame goes when ``queue_size`` frames wait for the pipeline (counted).
    retries, backoff_s, backoff_max_s, timeout_s : int, float
        Live only: reconnection attempts after the stream drops, the first wait (doubled per
        failure up to the maximum), and the silence after which the stream counts as lost.
    transport : {"tcp", "udp"}
        Live RTSP only: interleaved TCP or RTP over UDP.
    low_delay : bool
        Live MPEG-TS: packets to the decoder unparsed, one frame per PES (no frame of delay per
        hop); ``false`` for a sender that splits frames over PES packets. Live RTSP/SDP H.264: the
        RTP depacketiser's output joined into whole NAL units (``rtp_nal``), each picture decoded
        at its last slice; ``false``: FFmpeg's parser (a frame later per hop).
    options : dict, optional
        Live only: further FFmpeg input options, e.g. V4L2 ``video_size``, ``framerate``,
        ``input_format``.

    Raises
    ------
    VideoInputError (ValueError)
        From ``start`` for a bad file; from ``compute`` for data that fails mid-stream (the
        frames before the fault have been emitted and are kept downstream).

    Notes
    -----
    ``stats`` holds ``emitted``, ``dropped`` and the source description after the run.
    """

    outputs = (Port(P.FRAME, FRAME_RGB),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        path: str | Path | None = None,
        rate: float | str | None = None,
        realtime: bool = False,
        drop_policy: str = "drop_late",
        late_tolerance_s: float | None = None,
        loop: bool = False,
        max_frames: int = 0,
        decode_threads: int = 0,
        queue_size: int = 8,
        codecs: list[str] | tuple[str, ...] = SUPPORTED_CODECS,
        queue_policy: str = "drop_oldest",
        retries: int = 5,
        backoff_s: float = 0.25,
        backoff_max_s: float = 4.0,
        timeout_s: float = 5.0,
        transport: str = "tcp",
        low_delay: bool = True,
        options: dict[str, Any] | None = None,
        name: str = "decoder",
        **kwargs: Any,
    ) -> None:
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"VideoDecoderOp: expected drop_policy in {DROP_POLICIES}; got {drop_policy!r}")
        if int(max_frames) < 0 or (loop and int(max_frames) == 0 and not realtime):
            raise ValueError(
                f"VideoDecoderOp: expected max_frames >= 0, and > 0 when looping as fast as possible; got {max_frames}"
            )
        try:
            self.rate = Fraction(str(rate)) if rate not in (None, "") else None
        except (ValueError, ZeroDivisionError):
            msg = f"VideoDecoderOp: expected rate as a number or a fraction like 30000/1001; got {rate!r}"
            raise ValueError(msg) from None
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"VideoDecoderOp: expected rate > 0; got {rate!r}")
        self.live = is_live(path)
        if queue_policy not in QUEUE_POLICIES or transport not in RTSP_TRANSPORTS:
            raise ValueError(f"VideoDecoderOp: expected queue_policy in {QUEUE_POLICIES} and transport in "
                             f"{RTSP_TRANSPORTS}; got {queue_policy!r}, {transport!r}")
        self.uri = str(path) if self.live else None  # a URI is not a Path (Path('rtsp://h') is 'rtsp:/h')
        self.path = Path(path) if path not in (None, "") and not self.live else None
        self._live_args = {"codecs": tuple(codecs), "queue_size": int(queue_size), "drop_policy": queue_policy,
                           "retries": int(retries), "backoff_s": float(backoff_s),
                           "backoff_max_s": float(backoff_max_s), "timeout_s": float(timeout_s),
                           "transport": transport, "low_delay": bool(low_delay),
                           "options": {k: str(v) for k, v in (options or {}).items()}}
        self._source_args = {"codecs": tuple(codecs), "decode_threads": int(decode_threads),
                             "queue_size": int(queue_size), "loop": bool(loop)}
        self.source: VideoSource | LiveSource | None = None
        self._realtime, self._drop_policy, self._tolerance = bool(realtime), drop_policy, late_tolerance_s
        self.pacer: Pacer | None = None
        self.max_frames = int(max_frames)
        self.emitted = 0
        self.first_emit: float | None = None
        self.last_emit: float | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if self.live:  # connects now: a bad address fails before any frame or output
            self.source = LiveSource(self.uri, owner="VideoDecoderOp", **self._live_args).open()
            return
        if self.path is None:
            raise ValueError("VideoDecoderOp: expected path=<video file> (the app's --input); got none")
        self.source = VideoSource(self.path, rate=self.rate, owner="VideoDecoderOp", **self._source_args)
        if self._realtime:  # paced on the decode thread: packets read at their time, late frames dropped there
            tol = float(self._tolerance) if self._tolerance is not None else float(1 / self.source.info.rate)
            self.pacer = self.source.pacer = Pacer(drop_policy=self._drop_policy, late_tolerance_s=tol)
        self.source.start()

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        item = self.source.read()
        if item is None:
            self.stop_stream()
            return
        now = time.perf_counter()
        self.first_emit = self.first_emit if self.first_emit is not None else now
        self.last_emit = now
        meta = {P.FRAME_INFO: item.info, P.PACKET_CLOCK: item.read_at, P.FRAME_CLOCK: now}
        self.emit(op_output, item.rgb, P.FRAME, meta=meta)
        self.emitted += 1
        if self.max_frames and self.emitted >= self.max_frames:
            self.stop_stream()

    def stop(self) -> None:
        if self.source is not None:
            self.source.close()

    @property
    def dropped_frames(self) -> int:
        """Frames dropped by the realtime or live drop policy (read by ``clara-stream bench``)."""
        if self.live and self.source is not None:
            return self.source.dropped
        return self.pacer.dropped if self.pacer else 0

    @property
    def stats(self) -> dict[str, Any]:
        if self.source is None:
            return {"input": self.uri or (str(self.path) if self.path else None), "emitted": 0}
        if isinstance(self.source, LiveSource):
            return {**self.source.describe(), "emitted": self.emitted, "realtime": True}
        i = self.source.info
        return {
            "input": str(i.path),
            "codec": i.codec,
            "width": i.width,
            "height": i.height,
            "rotation_deg": i.rotation,
            "rate": float(i.rate),
            "rate_from": ("decoder.rate" if self.rate else "VUI timing") if i.raw else "container",
            "frames_in_file": i.frames,
            "decoded": self.source.decoded,
            "audio_streams": list(i.audio),
            "emitted": self.emitted,
            "dropped": self.pacer.dropped if self.pacer else 0,
            "realtime": self.pacer is not None,
        }
