"""BatchOutputOp: a FrameBatch and its detections → per source: overlay, H.264 MP4 (+ live), KITTI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.video.batch_postprocess_op import DETECTIONS_BATCH_PORT
from clara_stream.operators.video.batch_source_op import FRAME_BATCH_PORT
from clara_stream.operators.video.contracts import DETECTIONS_BATCH, FRAME_BATCH
from clara_stream.operators.video.kitti import clear_kitti, write_kitti
from clara_stream.operators.video.overlay import clock_text, draw_clock, draw_detections
from clara_stream.operators.video.sink import PRESETS, VideoSink
from clara_stream.operators.video.stats import latency_summary

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
        One live output per source (``udp://``/``tcp://``/``rtp://``/``rtsp://``), or none.
    preset, tune, crf : libx264 settings (as VideoEncoderOp's).
    """

    inputs = (Port(FRAME_BATCH_PORT, FRAME_BATCH, queue_size=8), Port(DETECTIONS_BATCH_PORT, DETECTIONS_BATCH))

    def __init__(self, fragment: Any, *args: Any, folder: str | Path | None = None, streams: int = 1,
                 live_urls: list[str] | None = None, preset: str = "ultrafast", tune: str | None = "zerolatency",
                 crf: int = 23, name: str = "outputs", **kwargs: Any) -> None:
        if folder is None or str(folder) == "" or int(streams) < 1:
            raise ValueError(f"BatchOutputOp: expected folder=<output folder> and streams >= 1; got {folder!r}, "
                             f"{streams}")
        if live_urls and len(live_urls) != int(streams):
            raise ValueError(f"BatchOutputOp: expected one live URL per stream ({streams}); got {len(live_urls)}")
        if preset not in PRESETS:
            raise ValueError(f"BatchOutputOp: expected preset in {PRESETS}; got {preset!r}")
        self.folder = Path(folder)
        opts = {"preset": preset, "tune": tune or None, "crf": int(crf), "owner": "BatchOutputOp"}
        self.sinks = [VideoSink(self.folder / f"stream_{k}" / "output.mp4", **opts) for k in range(int(streams))]
        self.live = [VideoSink(u, **(opts | {"tune": "zerolatency"})) for u in (live_urls or [])]
        self.kitti = [0] * int(streams)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        for k, sink in enumerate(self.sinks):  # the run owns its outputs
            sink.path.unlink(missing_ok=True)
            (self.folder / f"stream_{k}" / "kitti").mkdir(parents=True, exist_ok=True)
            clear_kitti(self.folder / f"stream_{k}" / "kitti")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        batch = self.receive(op_input, FRAME_BATCH_PORT)
        dets = self.receive(op_input, DETECTIONS_BATCH_PORT)
        if len(dets) != len(batch.items):
            raise ValueError(f"BatchOutputOp: expected one Detections per batch item ({len(batch.items)}); "
                             f"got {len(dets)} (tick {batch.tick})")
        for item, det in zip(batch.items, dets, strict=True):
            frame = item.rgb if item.rgb.flags.writeable else item.rgb.copy()
            draw_detections(frame, det)
            draw_clock(frame, clock_text(item.info.time_s, item.info.index))
            write_kitti(self.folder / f"stream_{item.source}" / "kitti", item.info.index, det)
            self.kitti[item.source] += 1
            self.sinks[item.source].write(frame, item.info, read_at=item.read_at)
            if self.live:
                self.live[item.source].write(frame, item.info, read_at=item.read_at)

    def stop(self) -> None:
        errors = []
        for sink in self.sinks + self.live:
            try:
                sink.close()
            except (OSError, RuntimeError) as exc:  # close every sink; the first failure is the run's
                errors.append(exc)
        if errors:
            raise errors[0]

    @property
    def stats(self) -> list[dict[str, Any]]:
        return [{"output": str(s.path), "frames": s.written, "kitti_files": self.kitti[k],
                 "latency": latency_summary([d - r for r, _, d in s.timeline])} for k, s in enumerate(self.sinks)]
