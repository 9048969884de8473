"""Write H.264 MP4 files with libx264 on a background thread.

:class:`VideoSink` takes RGB frames with their :class:`FrameInfo`, converts them to I420 with
OpenCV (not swscale) and encodes + muxes them on its own thread behind a bounded queue, so
encoding overlaps the producer. Timestamps are the source's, shifted so the first frame is at 0,
in the source's time base, so the output has the input's frame count, rate and duration.

``fragmented=True`` writes a fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``)
that browsers' Media Source Extensions play while it grows, and that stays playable up to the
last complete fragment if the process dies. A plain MP4 is finalised by :meth:`VideoSink.close`.

Odd sizes: H.264 4:2:0 needs even width and height, so a frame of odd size is padded by one
edge-replicated column/row on the right/bottom. Nothing moves: pixel (x, y) of the input is
pixel (x, y) of the output, so boxes in input pixels (KITTI) stay valid; ``padded`` says so.

Live and segmented outputs: ``path`` may be a stream address (``udp://``/``tcp://``/``srt://``
MPEG-TS, ``rtp://`` MPEG-TS over RTP, ``rtsp://`` published to a server; see ``live_uri``), sent
as encoded; or, with ``segment_s``, a pattern like ``segment_%05d.mp4`` that FFmpeg's segment
muxer rotates by duration (cut at the next keyframe; each file starts at 0 and plays alone).

A write failure (disk full, a quota, a dead mount) stops the encoder with :class:`VideoOutputError`
naming the file; the unfinishable file is removed rather than left unplayable.

``timeline`` holds, per frame in the order its encoded packet was written, the clocks
(``time.perf_counter()``) of its packet read at the source, its arrival here, and its encoded
packet written: glass to glass, every thread's queueing included.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.operators.video.colour import rgb_to_i420
from clara_stream.operators.video.encoders import ENCODERS, encoder_options, pick_encoder
from clara_stream.operators.video.live_uri import is_live, output_format

from clara_stream.geometry import FrameInfo

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
TUNES = ("zerolatency", "film", "animation", "grain", "stillimage", "fastdecode", "psnr", "ssim")
_FRAG = "frag_keyframe+empty_moov+default_base_moof"


class VideoOutputError(OSError):
    """The output file could not be written; the message names it and the cause."""


def live_muxer_options(url: str, fmt: str) -> dict[str, str]:
    """Muxer options for a live output: nothing held back, each packet leaves at once.

    MPEG-TS: the PES length written, so a receiver's demuxer emits each frame when its last byte
    arrives instead of when the next frame starts (a frame interval per hop, measured).
    """
    return {"max_delay": "0", "flush_packets": "1",
            **({"rtsp_transport": "udp"} if fmt == "rtsp" else {}),
            **({"omit_video_pes_length": "0"} if "mpegts" in fmt else {}),
            **({"pkt_size": "1316"} if fmt == "mpegts" and url.startswith("udp") else {})}


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Pad ``(H, W, 3)`` to even H and W by replicating the last row/column (right/bottom only)."""
    h, w = rgb.shape[:2]
    if not (h % 2 or w % 2):
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class FrameSink:
    """What every sink of RGB frames shares: the frame check and the encoder thread's error, re-raised."""

    owner: str
    path: Any
    closed: bool
    _error: BaseException | None

    def _accept(self, rgb: np.ndarray) -> float:
        """The clock when a frame came; refuse one after close, after an encoder failure, or not RGB."""
        if self.closed:
            raise RuntimeError(f"{self.owner}: expected an open sink; got write after close [{self.path}]")
        self._raise()
        received = time.perf_counter()
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{self.owner}: expected (H, W, 3) uint8 RGB; got {rgb.shape} {rgb.dtype} [{self.path}]")
        return received

    def _raise(self) -> None:
        if getattr(self, "_copy_error", None) is not None:
            raise self._copy_error
        if isinstance(self._error, VideoOutputError):
            raise self._error
        if self._error is not None:
            raise RuntimeError(f"{self.owner}: encoder failed: {self._error} [{self.path}]") from self._error


class VideoSink(FrameSink):
    """Encode RGB frames to an H.264 file.

    Parameters
    ----------
    path : path
        Output file (``.mp4``, ``.mkv``, ``.mov``); its folder is created.
    preset : str
        libx264 preset (speed/size trade-off), one of ``PRESETS``.
    crf : int
        Constant rate factor 0–51 (lower = better quality).
    gop : int or None
        Keyframe interval in frames (``None``: one per second of the source). Fragments start
        at keyframes, so this is also the fragment length when fragmented.
    fragmented : bool
        Fragmented MP4 for streaming (see module notes).
    tune : str, optional
        libx264 tune, e.g. ``zerolatency`` (no lookahead or B-frames: each frame leaves the encoder
        at once, which is what a live pipeline's latency needs; files are somewhat larger).
    encode_threads : int
        x264 threads (0 = x264's choice).
    queue_size : int
        Frames buffered ahead of the encoder (≥ 1); :meth:`write` blocks when full.
    segment_s : float, optional
        Rotate the file every this many seconds (``path`` is then a ``%d`` pattern).
    copies : tuple of str
        Live addresses that get the same encoded packets (one encode for the file and the stream,
        where their settings agree). A copy that fails ends only itself; the next write says so.
    codec : {"libx264", "h264_nvenc", "auto"}
        ``auto``: NVENC where a GPU offers it, else libx264 (see ``encoders``); ``encoder`` says which.
    owner : str
        Prefix for error messages.

    Notes
    -----
    The encoder is opened at the first frame (its size and rate come from it). Errors on the
    encoder thread are re-raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        preset: str = "veryfast",
        crf: int = 23,
        gop: int | None = None,
        fragmented: bool = False,
        tune: str | None = None,
        encode_threads: int = 0,
        queue_size: int = 8,
        segment_s: float | None = None,
        codec: str = "libx264",
        copies: tuple[str, ...] = (),
        owner: str = "VideoSink",
    ):
        if preset not in PRESETS:
            raise ValueError(f"{owner}: expected preset in {PRESETS}; got {preset!r}")
        if not 0 <= int(crf) <= 51:
            raise ValueError(f"{owner}: expected crf in [0, 51]; got {crf}")
        if queue_size < 1 or (gop is not None and gop < 1):
            raise ValueError(f"{owner}: expected queue_size >= 1 and gop >= 1; got {queue_size}, {gop}")
        self.live = is_live(path)
        if str(path).lower().startswith("srt://"):
            raise ValueError(f"{owner}: expected a live output this FFmpeg build supports; got srt:// (PyAV's "
                             f"bundled FFmpeg has no libsrt) [{path}]")
        self.format = output_format(str(path), owner) if self.live else ("segment" if segment_s else None)
        if segment_s is not None and (segment_s <= 0 or "%" not in str(path) or self.live):
            raise ValueError(f"{owner}: expected segment_s > 0 with a file pattern like segment_%05d.mp4; got "
                             f"{segment_s}, {path}")
        self.segment_s = segment_s
        if codec not in ENCODERS:
            raise ValueError(f"{owner}: expected codec in {ENCODERS}; got {codec!r}")
        self.codec, self.encoder = codec, None  # the encoder is chosen (auto resolved) at the first frame
        self.path, self.owner = (str(path) if self.live else Path(path)), owner  # a URI is no Path
        self.preset, self.crf, self.gop, self.fragmented = preset, int(crf), gop, bool(fragmented)
        if tune is not None and tune not in TUNES:
            raise ValueError(f"{owner}: expected tune in {TUNES}; got {tune!r}")
        self.threads, self.tune = int(encode_threads), tune
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self.written = 0
        self.timeline: list[tuple[float, float, float]] = []  # (packet read, received, packet written)
        self.padded: tuple[int, int] | None = None  # (width, height) of the input when padded to even
        self.removed = False
        self.closed = False
        for url in copies:
            if not is_live(url) or str(url).lower().startswith("srt://"):
                raise ValueError(f"{owner}: expected live copies as udp:// tcp:// rtp:// rtsp:// URIs; got {url!r}")
            output_format(str(url), owner)
        self.copies = tuple(str(u) for u in copies)
        self._copies: list[tuple[str, Any, Any]] = []  # (url, container, stream), opened with the first packets
        self._copy_error: VideoOutputError | None = None

    @property
    def muxer_options(self) -> dict[str, str]:
        """The container options this sink writes with (a later remux keeps them)."""
        if self.format == "segment":
            return {"segment_time": f"{self.segment_s:g}", "segment_format": "mp4", "reset_timestamps": "1",
                    **({"segment_format_options": f"movflags={_FRAG}"} if self.fragmented else {})}
        if self.live:
            return live_muxer_options(str(self.path), self.format)
        return {"movflags": _FRAG} if self.fragmented else {}

    def _open_copies(self, stream: Any) -> None:
        """The live copies' containers, once the encoder has its parameters (SPS/PPS for MPEG-TS)."""
        import av

        for url in self.copies:
            fmt = output_format(url, self.owner)
            c = av.open(url, "w", format=fmt, options=live_muxer_options(url, fmt))
            st = c.add_stream_from_template(stream)
            st.codec_context.extradata = stream.codec_context.extradata  # the template leaves SPS/PPS out
            self._copies.append((url, c, st))

    def _open(self, width: int, height: int, info: FrameInfo) -> tuple[Any, Any]:
        import av

        if not self.live:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format=self.format, options=self.muxer_options)
        stream = container.add_stream(self.encoder or "libx264", rate=info.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        per_s = min(1.0, self.segment_s or 1.0)  # segments cut at keyframes: one at least per segment
        stream.gop_size = int(self.gop or max(1, round(per_s * info.rate)))
        stream.thread_count = self.threads
        stream.options = encoder_options(self.encoder or "libx264", preset=self.preset, crf=self.crf, tune=self.tune)
        return container, stream

    def _run(self, width: int, height: int, info0: FrameInfo) -> None:
        import av

        container, pending = None, {}
        try:
            container, stream = self._open(width, height, info0)
            while True:
                item = self._queue.get()
                if item is None:
                    break
                rgb, pts, tb, read_at, received_at = item
                frame = av.VideoFrame.from_ndarray(rgb_to_i420(rgb), format="yuv420p")
                frame.pts, frame.time_base = pts, tb
                pending[pts] = (read_at, received_at)
                self._mux(container, stream.encode(frame), pending)
            self._mux(container, stream.encode(None), pending)
            container.close()
            container = None
            for _, c, _ in self._copies:
                c.close()
            self._copies = []
        except BaseException as exc:  # surfaced to the producer by write()/close()
            self._error = self._describe(exc)
            while True:  # unblock a producer waiting on a full queue
                try:
                    if self._queue.get_nowait() is None:
                        break
                except queue.Empty:
                    break
        finally:
            self._close_copies()
            if container is not None:
                with contextlib.suppress(Exception):  # already failing: the error above is the one to report
                    container.close()
            if self._error is not None and isinstance(self._error, VideoOutputError) and not self.live \
                    and self.format != "segment" and self.path.exists():
                self.path.unlink()  # a file that could not be written is not left half-written
                self.removed = True

    def _mux(self, container: Any, packets: list[Any], pending: dict[int, tuple[float, float]]) -> None:
        stamps = [pending.pop(p.pts, None) for p in packets]  # before mux: the muxer rescales pts
        if self.copies and packets and self._copy_error is None:
            self._send_copies(packets)
        container.mux(packets)
        now = time.perf_counter()
        for st in stamps:
            if st is not None:
                self.timeline.append((st[0], st[1], now))
                self.written += 1

    def _send_copies(self, packets: list[Any]) -> None:
        """The live copies first (they are the latency-critical ones), as new packets: mux rescales in place."""
        import av

        url = self.copies[0]
        try:
            if not self._copies:
                self._open_copies(packets[0].stream)
            for url, c, st in self._copies:  # noqa: B007 (the error below names the one that failed)
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.time_base, q.is_keyframe, q.stream = p.pts, p.dts, p.time_base, p.is_keyframe, st
                    c.mux(q)
        except (av.FFmpegError, OSError) as exc:  # the file goes on; the next write() reports the copy
            why = getattr(exc, "strerror", None) or str(exc)
            self._copy_error = VideoOutputError(f"{self.owner}: expected to send the live stream; got {why} after "
                                                f"{self.written} frames [{url}]")
            self._close_copies()

    def _close_copies(self) -> None:
        for _, c, _ in self._copies:
            with contextlib.suppress(Exception):  # a copy already failing: its error is the one reported
                c.close()
        self._copies = []

    def _describe(self, exc: BaseException) -> BaseException:
        """A write failure (errno set: ENOSPC, EDQUOT, EIO…) becomes one clear VideoOutputError."""
        err = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and err is not None:
            why = getattr(exc, "strerror", None) or str(exc)
            out = VideoOutputError(
                f"{self.owner}: expected to write the output video; got {why} after {self.written} frames "
                f"{'' if self.live else '(the unfinished file is removed) '}[{self.path}]"
            )
            out.errno = err  # str() stays the one-line message
            return out
        return exc

    def write(self, rgb: np.ndarray, info: FrameInfo, read_at: float | None = None) -> None:
        """Queue one (H, W, 3) uint8 RGB frame for encoding (odd sizes are padded, see module notes).

        ``read_at``: when the frame's packet was read at the source (default: now).
        """
        received = self._accept(rgb)
        if self._thread is None:
            self.encoder = pick_encoder(self.codec, self.owner)  # refused here, in the caller, not on the thread
            self._size = rgb.shape[:2]
            if rgb.shape[0] % 2 or rgb.shape[1] % 2:
                self.padded = (rgb.shape[1], rgb.shape[0])
            self._thread = threading.Thread(
                target=self._run,
                args=(rgb.shape[1] + rgb.shape[1] % 2, rgb.shape[0] + rgb.shape[0] % 2, info),
                name=f"{self.owner}-encode",
                daemon=True,
            )
            self._thread.start()
        elif rgb.shape[:2] != self._size:
            raise ValueError(f"{self.owner}: expected frames of {self._size}; got {rgb.shape[:2]} [{self.path}]")
        if self._first_pts is None:
            self._first_pts = info.pts
        pts = info.pts - self._first_pts
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # keep strictly increasing timestamps (the muxer requires it)
        self._last_pts = pts
        while self._thread.is_alive():
            try:
                item = (pad_even(rgb), pts, info.time_base, received if read_at is None else read_at, received)
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        self._raise()

    def close(self) -> int:
        """Flush the encoder, finalise the file and return the number of frames written (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._thread is not None:
                while self._thread.is_alive():
                    try:
                        self._queue.put(None, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                self._thread.join()
        self._raise()
        return self.written

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
