"""BatchOutputOp: a FrameBatch and its detections → per source: overlay, H.264 MP4 (+ live), KITTI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.video.batch_postprocess_op import DETECTIONS_BATCH_PORT
from clara_stream.operators.video.batch_source_op import FRAME_BATCH_PORT
from clara_stream.operators.video.contracts import DETECTIONS_BATCH, FRAME_BATCH
from clara_stream.operators.video.kitti import clear_kitti
from clara_stream.operators.video.live_output import check_browser_addresses, live_sink, shares_file_encode
from clara_stream.operators.video.mse_live import MseLiveSink
from clara_stream.operators.video.sink import PRESETS, VideoSink
from clara_stream.operators.video.stats import latency_summary
from clara_stream.operators.video.stream_output import StreamOutput

from clara_stream.runtime import Operator, Port


class BatchOutputOp(Operator):
    """Split a batch back into its sources: draw each frame's boxes, encode it, write its KITTI file.

    Ports
    -----
    frame_batch : FrameBatch (the frames, from BatchSourceOp; queued while inference runs)
    detections_batch : list of Detections, one per batch item (paired by arrival order)

    Parameters
    ----------
    folder : path
        Output root: ``stream_<k>/output.mp4`` and ``stream_<k>/kitti/<index>.txt`` per source k.
    streams : int
        Number of sources (≥ 1).
    live_urls : list of str, optional
        One live output per source, or none: ``udp://``/``tcp://``/``rtp://``/``rtsp://`` (the file's
        zerolatency packets sent there too: one encode), or ``ws://HOST:PORT/PATH``, a page per
        stream for browsers (see ``mse_live``: loopback by default, a token beyond it; each page
        on its own host:port). Sources and addresses pair by position.
    live_token : str, optional
        The browser pages' token (needed beyond loopback; default ``$CLARA_STREAM_LIVE_TOKEN``).
    preset, tune, crf : libx264 settings (as VideoEncoderOp's).
    encode_threads : int
        x264 threads per stream (0 = x264's choice). N streams already encode on N threads: one
        each (the default) keeps N encoders from spawning 1.5 × cores threads apiece.
    opencv_threads : int
        OpenCV's worker threads for this run (process-wide; restored at stop). N output threads and
        N decoders already run side by side: OpenCV's own pool on top only spins (sched_yield),
        measured at ≈ 6 % of the CPU with its default. 0 = OpenCV's default.

    Notes
    -----
    Each source's overlay, KITTI file and encoder hand-off run on that source's own thread
    (:class:`StreamOutput`), in tick order per source; ``compute`` only hands the frames over.
    """

    inputs = (Port(FRAME_BATCH_PORT, FRAME_BATCH, queue_size=8), Port(DETECTIONS_BATCH_PORT, DETECTIONS_BATCH))

    def __init__(self, fragment: Any, *args: Any, folder: str | Path | None = None, streams: int = 1,
                 live_urls: list[str] | None = None, preset: str = "ultrafast", tune: str | None = "zerolatency",
                 crf: int = 23, encode_threads: int = 1, opencv_threads: int = 1, live_token: str | None = None,
                 name: str = "outputs", **kwargs: Any) -> None:
        if folder is None or str(folder) == "" or int(streams) < 1:
            raise ValueError(f"BatchOutputOp: expected folder=<output folder> and streams >= 1; got {folder!r}, "
                             f"{streams}")
        if live_urls and len(live_urls) != int(streams):
            raise ValueError(f"BatchOutputOp: expected one live URL per stream ({streams}); got {len(live_urls)}")
        if preset not in PRESETS:
            raise ValueError(f"BatchOutputOp: expected preset in {PRESETS}; got {preset!r}")
        if int(encode_threads) < 0 or int(opencv_threads) < 0:
            raise ValueError(f"BatchOutputOp: expected encode_threads >= 0 and opencv_threads >= 0; got "
                             f"{encode_threads}, {opencv_threads}")
        urls = [str(u) for u in (live_urls or [])]
        check_browser_addresses(urls, "BatchOutputOp")
        self.folder = Path(folder)
        opts = {"preset": preset, "crf": int(crf), "encode_threads": int(encode_threads), "owner": "BatchOutputOp"}
        shared = [shares_file_encode(u, tune) for u in urls] or [False] * int(streams)
        self.sinks = [VideoSink(self.folder / f"stream_{k}" / "output.mp4", tune=tune or None,
                                copies=(urls[k],) if shared[k] else (), **opts) for k in range(int(streams))]
        self.live: list[Any] = [None if shared[k] else live_sink(u, token=live_token, codec="libx264", **opts)
                                for k, u in enumerate(urls)]
        self.opencv_threads = int(opencv_threads)
        self.workers: list[StreamOutput] = []
        self._cv2_before: int | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        import cv2

        if self.opencv_threads:
            self._cv2_before = cv2.getNumThreads()
            cv2.setNumThreads(self.opencv_threads)
        for k, sink in enumerate(self.sinks):  # the run owns its outputs
            sink.path.unlink(missing_ok=True)
            kitti = self.folder / f"stream_{k}" / "kitti"
            kitti.mkdir(parents=True, exist_ok=True)
            clear_kitti(kitti)
            live = [self.live[k]] if self.live and self.live[k] is not None else []
            if live and isinstance(live[0], MseLiveSink):
                live[0].open()  # browsers can load the page before the first frame
            self.workers.append(StreamOutput(kitti, [sink, *live], owner=f"BatchOutputOp[{k}]"))

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        batch = self.receive(op_input, FRAME_BATCH_PORT)
        dets = self.receive(op_input, DETECTIONS_BATCH_PORT)
        if len(dets) != len(batch.items):
            raise ValueError(f"BatchOutputOp: expected one Detections per batch item ({len(batch.items)}); "
                             f"got {len(dets)} (tick {batch.tick})")
        for item, det in zip(batch.items, dets, strict=True):
            self.workers[item.source].submit(item.rgb, item.info, item.read_at, det)

    def stop(self) -> None:
        import cv2

        errors: list[Exception] = []
        for closer in [w.close for w in self.workers] + [s.close for s in self.sinks + self.live if s is not None]:
            try:
                closer()
            except Exception as exc:  # any type: every worker stopped, every MP4 finalised; the first is the run's
                errors.append(exc)
        if self._cv2_before is not None:
            cv2.setNumThreads(self._cv2_before)
        if errors:
            raise errors[0]

    @property
    def stats(self) -> list[dict[str, Any]]:
        kitti = [w.kitti_files for w in self.workers] or [0] * len(self.sinks)
        return [{"output": str(s.path), "frames": s.written, "kitti_files": kitti[k],
                 "latency": latency_summary([d - r for r, _, d in s.timeline]), **self._live_stats(k)}
                for k, s in enumerate(self.sinks)]

    def _live_stats(self, k: int) -> dict[str, Any]:
        if not self.live:
            return {}
        own = self.live[k]
        if own is None:
            return {"live": {"output": self.sinks[k].copies[0], "shared_encode": True}}
        return {"live": {"output": str(own.path), "frames": own.written,
                         **({"viewers": own.viewers, "dropped": own.dropped} if isinstance(own, MseLiveSink) else {})}}
