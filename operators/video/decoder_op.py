"""VideoDecoderOp: MP4/MKV/MOV/raw H.264/H.265 → RGB frames with FrameInfo, threaded, optionally paced."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from clara_stream.operators.video.contracts import FRAME_RGB
from clara_stream.operators.video.source import DROP_POLICIES, SUPPORTED_CODECS, Pacer, VideoSource

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class VideoDecoderOp(Operator):
    """Decode a video file on a background thread and emit one RGB frame per compute.

    Ports
    -----
    frame : uint8 (H, W, 3) RGB host array; metadata ``frame_info`` (FrameInfo: pts, time base,
        index, source rate) and ``frame_clock`` (``time.perf_counter()`` when emitted, for latency)

    Parameters
    ----------
    path : path
        Input video. It is probed here, so a missing, non-video or unsupported file fails when the
        app is built, before anything runs. ``None`` builds the operator for graph inspection
        (``clara-stream validate``) and fails at start.
    realtime : bool
        Pace frames at the source rate (live-camera behaviour); otherwise as fast as possible.
    drop_policy : {"none", "drop_late"}
        Realtime only: what to do with a frame already late by ``late_tolerance_s`` when it is read.
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

    Raises
    ------
    VideoInputError (ValueError)
        At construction for a bad file; from ``compute`` for data that fails mid-stream (the
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
        realtime: bool = False,
        drop_policy: str = "drop_late",
        late_tolerance_s: float | None = None,
        loop: bool = False,
        max_frames: int = 0,
        decode_threads: int = 0,
        queue_size: int = 8,
        codecs: list[str] | tuple[str, ...] = SUPPORTED_CODECS,
        name: str = "decoder",
        **kwargs: Any,
    ) -> None:
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"VideoDecoderOp: expected drop_policy in {DROP_POLICIES}; got {drop_policy!r}")
        if int(max_frames) < 0 or (loop and int(max_frames) == 0 and not realtime):
            raise ValueError(
                f"VideoDecoderOp: expected max_frames >= 0, and > 0 when looping as fast as possible; got {max_frames}"
            )
        self.path = Path(path) if path not in (None, "") else None
        self.source = (
            VideoSource(
                self.path,
                codecs=tuple(codecs),
                decode_threads=int(decode_threads),
                queue_size=int(queue_size),
                loop=bool(loop),
                owner="VideoDecoderOp",
            )
            if self.path is not None
            else None
        )
        rate = self.source.info.rate if self.source is not None else 30
        tol = float(late_tolerance_s) if late_tolerance_s is not None else float(1 / rate)
        self.pacer = Pacer(drop_policy=drop_policy, late_tolerance_s=tol) if realtime else None
        self.max_frames = int(max_frames)
        self.emitted = 0
        self.first_emit: float | None = None
        self.last_emit: float | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if self.source is None:
            raise ValueError("VideoDecoderOp: expected path=<video file> (the app's --input); got none")
        self.source.start()

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        while True:
            item = self.source.read()
            if item is None:
                self.stop_stream()
                return
            if self.pacer is None or self.pacer.admit(item.info.time_s):
                break
        now = time.perf_counter()
        self.first_emit = self.first_emit if self.first_emit is not None else now
        self.last_emit = now
        self.emit(op_output, item.rgb, P.FRAME, meta={"frame_info": item.info, "frame_clock": now})
        self.emitted += 1
        if self.max_frames and self.emitted >= self.max_frames:
            self.stop_stream()

    def stop(self) -> None:
        if self.source is not None:
            self.source.close()

    @property
    def dropped_frames(self) -> int:
        """Frames dropped by the realtime drop policy (read by ``clara-stream bench``)."""
        return self.pacer.dropped if self.pacer else 0

    @property
    def stats(self) -> dict[str, Any]:
        if self.source is None:
            return {"input": None, "emitted": 0}
        i = self.source.info
        return {
            "input": str(i.path),
            "codec": i.codec,
            "width": i.width,
            "height": i.height,
            "rate": float(i.rate),
            "frames_in_file": i.frames,
            "emitted": self.emitted,
            "dropped": self.pacer.dropped if self.pacer else 0,
            "realtime": self.pacer is not None,
        }
