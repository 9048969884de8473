"""VideoEncoderOp: annotated RGB frames → libx264 MP4 (+ a live stream, + segmented recording)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from clara_stream.operators.video.contracts import FRAME_RGB
from clara_stream.operators.video.live_output import live_sink, shares_file_encode
from clara_stream.operators.video.mse_live import MseLiveSink
from clara_stream.operators.video.sink import PRESETS, VideoSink
from clara_stream.operators.video.stats import latency_summary

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class VideoEncoderOp(Operator):
    """Encode frames on a background thread; finalise the file when the graph stops.

    Ports
    -----
    frame : uint8 (H, W, 3) RGB host array (odd sizes are padded right/bottom to even), metadata
        ``frame_info`` (timestamps) and, when present, ``packet_clock`` (when the frame's packet was
        read at the source) and ``frame_clock`` (when the decoder emitted it)

    Parameters
    ----------
    path : path
        Output file, e.g. ``<output>/output.mp4`` (required; its folder is created).
    preset : str
        libx264 preset (default ``veryfast``).
    crf : int
        Quality 0–51 (default 23).
    gop : int, optional
        Keyframe interval in frames (default: one second of the source).
    fragmented : bool
        Fragmented MP4 for streaming / crash safety.
    tune : str, optional
        libx264 tune; ``zerolatency`` for live pipelines (frames leave the encoder at once).
    encode_threads : int
        x264 threads (0 = automatic).
    queue_size : int
        Frames buffered before the encoder thread (back-pressure beyond).
    live_url : str, optional
        Also send the annotated stream live: ``udp://``/``tcp://`` MPEG-TS, ``rtp://`` (MPEG-TS over
        RTP), ``rtsp://`` (published to an RTSP server), with ``tune=zerolatency``: when the file's
        ``tune`` is ``zerolatency`` too, one encode feeds both (its packets muxed twice), else a second;
        or ``ws://HOST:PORT/PATH``: served to browsers (a page at ``http://HOST:PORT/PATH`` playing
        fragmented MP4 over the WebSocket there, see ``mse_live``).
    live_token : str, optional
        Token the browser output requires (needed beyond loopback; default ``$CLARA_STREAM_LIVE_TOKEN``).
    codec : {"libx264", "h264_nvenc", "auto"}
        H.264 encoder (``auto``: NVENC where a GPU offers it, else libx264).
    segment_s : float, optional
        Also record ``<path's folder>/segments/segment_00000.mp4``… rotated every this many seconds.

    Notes
    -----
    The file is closed in ``stop()``, which Holoscan also runs when another operator failed, so
    the frames that reached the encoder before a fault form a playable MP4. ``stats`` holds the
    frame count and the glass-to-glass latency percentiles: packet read at the source → encoded
    packet written, every thread's queueing included (``timeline`` has the per-frame clocks).
    """

    inputs = (Port(P.FRAME, FRAME_RGB, queue_size=2),)
    timeline_stages = ("packet_read", "decoder_emit", "encoder_receive", "packet_written")  # read by bench

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        path: str | Path | None = None,
        preset: str = "veryfast",
        crf: int = 23,
        gop: int | None = None,
        fragmented: bool = False,
        tune: str | None = None,
        encode_threads: int = 0,
        queue_size: int = 8,
        live_url: str | None = None,
        live_token: str | None = None,
        segment_s: float | None = None,
        codec: str = "libx264",
        name: str = "encoder",
        **kwargs: Any,
    ) -> None:
        if path is None or str(path) == "":
            raise ValueError("VideoEncoderOp: expected path=<output .mp4>; got none")
        if preset not in PRESETS:
            raise ValueError(f"VideoEncoderOp: expected preset in {PRESETS}; got {preset!r}")
        # the file is already encoded as a live stream needs it: one encode, its packets muxed twice
        self.shared_live = shares_file_encode(live_url, tune)
        self.sink = VideoSink(
            path,
            preset=preset,
            crf=int(crf),
            gop=gop,
            fragmented=bool(fragmented),
            tune=tune or None,
            encode_threads=int(encode_threads),
            queue_size=int(queue_size),
            codec=codec,
            copies=(str(live_url),) if self.shared_live else (),
            owner="VideoEncoderOp",
        )
        common = {"preset": preset, "crf": int(crf), "gop": gop, "encode_threads": int(encode_threads),
                  "queue_size": int(queue_size), "codec": codec, "owner": "VideoEncoderOp"}
        self.extra: dict[str, VideoSink | MseLiveSink] = {}  # each an encoder of its own (zerolatency for live)
        if live_url and not self.shared_live:
            self.extra["live"] = live_sink(str(live_url), token=live_token, **common)
        if segment_s:
            pattern = Path(path).parent / "segments" / "segment_%05d.mp4"
            self.extra["segments"] = VideoSink(pattern, tune=tune or None, segment_s=float(segment_s), **common)
        self.emitted_at: dict[float, float] = {}  # packet clock → decoder emit clock
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        """The run owns its output file: one left by an earlier run into the same folder goes now."""
        self.sink.path.unlink(missing_ok=True)
        if isinstance(self.extra.get("live"), MseLiveSink):
            self.extra["live"].open()  # browsers can load the page before the first frame
        seg = self.extra.get("segments")
        if seg is not None and seg.path.parent.is_dir():
            for old in seg.path.parent.glob("segment_*.mp4"):
                old.unlink()

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = self.receive(op_input, P.FRAME)
        info = self.get_meta(P.FRAME_INFO)
        read, emitted = self.get_meta(P.PACKET_CLOCK), self.get_meta(P.FRAME_CLOCK)
        read = float(read) if read is not None else time.perf_counter()
        self.emitted_at[read] = float(emitted) if emitted is not None else read
        self.sink.write(frame, info, read_at=read)
        for sink in self.extra.values():
            sink.write(frame, info, read_at=read)

    def stop(self) -> None:
        try:
            self.sink.close()
        finally:
            for sink in self.extra.values():
                sink.close()

    @property
    def timeline(self) -> list[tuple[float, float, float, float]]:
        """Per frame: (packet read, decoder emit, encoder receive, encoded packet written) clocks."""
        return [(r, self.emitted_at.get(r, r), got, done) for r, got, done in self.sink.timeline]

    @property
    def stats(self) -> dict[str, Any]:
        line = self.sink.timeline
        lat = [done - read for read, _, done in line]
        span = (line[-1][2] - line[0][0]) if line else 0.0
        return {
            "output": str(self.sink.path),
            "frames": self.sink.written,
            "fps": round((len(line) - 1) / (line[-1][2] - line[0][2]), 2) if len(line) > 1 and span > 0 else None,
            "written_clock_s": [line[0][2], line[-1][2]] if line else None,  # first/last packet (perf_counter)
            "latency": latency_summary(lat),
            "padded_from": list(self.sink.padded) if self.sink.padded else None,
            "removed": self.sink.removed,
            "encoder": self.sink.encoder,
            **{key: {"output": str(s.path), "frames": s.written,
                     "latency": latency_summary([d - r for r, _, d in s.timeline])} for key, s in self.extra.items()},
            **({"live": {"output": self.sink.copies[0], "frames": self.sink.written, "latency": latency_summary(lat),
                         "shared_encode": True}} if self.shared_live else {}),
        }
