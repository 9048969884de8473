"""BatchOutputOp: a FrameBatch and its detections → per source: overlay, H.264 MP4 (+ live), KITTI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.video.batch_postprocess_op import DETECTIONS_BATCH_PORT
from clara_stream.operators.video.batch_source_op import FRAME_BATCH_PORT
from clara_stream.operators.video.contracts import DETECTIONS_BATCH, FRAME_BATCH
from clara_stream.operators.video.live_output import check_browser_addresses, shares_file_encode
from clara_stream.operators.video.sink import PRESETS
from clara_stream.operators.video.stats import latency_summary
from clara_stream.operators.video.stream_output import StreamOutput, prepare_stream, stream_sinks
from clara_stream.operators.video.stream_worker import CodecWorkers, live_result

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
    workers : CodecWorkers, optional
        The batching source's codec workers (``BatchSourceOp(processes=True).workers``): each
        source's outputs are then opened, drawn, written and encoded by its worker process, and
        ``compute`` sends it only the detections; the frames stay in the worker.

    Notes
    -----
    Without ``workers``, each source's overlay, KITTI file and encoder hand-off run on that
    source's own thread (:class:`StreamOutput`), in tick order per source; ``compute`` only hands
    the frames over.
    """

    inputs = (Port(FRAME_BATCH_PORT, FRAME_BATCH, queue_size=8), Port(DETECTIONS_BATCH_PORT, DETECTIONS_BATCH))

    def __init__(self, fragment: Any, *args: Any, folder: str | Path | None = None, streams: int = 1,
                 live_urls: list[str] | None = None, preset: str = "ultrafast", tune: str | None = "zerolatency",
                 crf: int = 23, encode_threads: int = 1, opencv_threads: int = 1, live_token: str | None = None,
                 workers: CodecWorkers | None = None, name: str = "outputs", **kwargs: Any) -> None:
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
        self.folder, self.streams, self.urls, self.tune = Path(folder), int(streams), urls, tune
        opts = {"preset": preset, "crf": int(crf), "encode_threads": int(encode_threads), "owner": "BatchOutputOp"}
        self.opencv_threads = int(opencv_threads)
        self.workers_ = workers
        self.sinks: list[Any] = []
        self.live: list[Any] = []
        if workers is not None:  # each stream's outputs are opened and written by its codec worker
            workers.set_outputs([{"opencv_threads": self.opencv_threads, "stream": {
                "folder": str(self.folder), "index": k, "url": urls[k] if urls else None, "tune": tune,
                "token": live_token, "opts": {**opts, "owner": f"BatchOutputOp[{k}]"}}} for k in range(int(streams))])
        else:
            pairs = [stream_sinks(self.folder, k, urls[k] if urls else None, tune=tune, token=live_token, opts=opts)
                     for k in range(int(streams))]
            self.sinks = [p[0] for p in pairs]
            self.live = [p[1] for p in pairs] if urls else []
        self.workers: list[StreamOutput] = []
        self._cv2_before: int | None = None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        import cv2

        if self.opencv_threads:  # this process's pool too: the batch's letterboxing runs here either way
            self._cv2_before = cv2.getNumThreads()
            cv2.setNumThreads(self.opencv_threads)
        if self.workers_ is not None:
            self.workers_.start()  # idempotent: the first of the source and this operator starts them
            return
        for k, sink in enumerate(self.sinks):
            live = [self.live[k]] if self.live and self.live[k] is not None else []
            kitti = prepare_stream(self.folder, k, sink, live[0] if live else None)
            self.workers.append(StreamOutput(kitti, [sink, *live], owner=f"BatchOutputOp[{k}]"))

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        batch = self.receive(op_input, FRAME_BATCH_PORT)
        dets = self.receive(op_input, DETECTIONS_BATCH_PORT)
        if len(dets) != len(batch.items):
            raise ValueError(f"BatchOutputOp: expected one Detections per batch item ({len(batch.items)}); "
                             f"got {len(dets)} (tick {batch.tick})")
        for item, det in zip(batch.items, dets, strict=True):
            if self.workers_ is not None:
                self.workers_.submit(item.source, item.info.index, det)
            else:
                self.workers[item.source].submit(item.rgb, item.info, item.read_at, det)

    def stop(self) -> None:
        import cv2

        if self.workers_ is not None:
            try:
                self.workers_.release("outputs")  # the last of source and outputs closes the workers
            finally:
                if self._cv2_before is not None:
                    cv2.setNumThreads(self._cv2_before)
            return

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
    def timelines(self) -> list[list[tuple[float, float, float]]]:
        """Per stream, (packet read, received, packet written) clocks of its MP4's frames."""
        if self.workers_ is not None:
            return [r.get("timeline", []) for r in self._results()]
        return [s.timeline for s in self.sinks]

    @property
    def stats(self) -> list[dict[str, Any]]:
        if self.workers_ is not None:
            return [{"output": r.get("output"), "frames": r.get("frames", 0), "kitti_files": r.get("kitti_files", 0),
                     "latency": latency_summary([d - r0 for r0, _, d in r.get("timeline", [])]),
                     **self._worker_live(k, r)} for k, r in enumerate(self._results())]
        kitti = [w.kitti_files for w in self.workers] or [0] * len(self.sinks)
        return [{"output": str(s.path), "frames": s.written, "kitti_files": kitti[k],
                 "latency": latency_summary([d - r for r, _, d in s.timeline]), **self._live_stats(k)}
                for k, s in enumerate(self.sinks)]

    def _worker_live(self, k: int, result: dict[str, Any]) -> dict[str, Any]:
        if result.get("live"):
            return {"live": result["live"][0]}
        if self.urls and shares_file_encode(self.urls[k], self.tune):
            return {"live": {"output": self.urls[k], "shared_encode": True}}
        return {}

    def _results(self) -> list[dict[str, Any]]:
        """Each worker's account of its outputs (empty before it finished, or when it never started)."""
        got = self.workers_.results if self.workers_ is not None else []
        return list(got) + [{}] * (self.streams - len(got))

    def _live_stats(self, k: int) -> dict[str, Any]:
        if not self.live:
            return {}
        own = self.live[k]
        if own is None:
            return {"live": {"output": self.sinks[k].copies[0], "shared_encode": True}}
        return {"live": live_result(own)}
