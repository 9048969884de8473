"""video_detection_multi: N live streams (or files) batched into one inference, DeepStream nvstreammux style.

batcher ─frame_batch─▶ preprocess ─tensor (B,3,H,W)─▶ inference ─logits─▶ postprocess ─detections_batch─▶ outputs
   └──────────────────────────── frame_batch (queue 8) ─────────────────────────────────────────────────┘
outputs: per source k, ``stream_k/output.mp4`` (+ an optional live stream) and ``stream_k/kitti/``.

``clara-stream run video_detection_multi --input rtsp://cam1/live --input rtsp://cam2/live --output OUT``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clara_stream.operators.inference.inference_op import InferenceOp
from clara_stream.operators.video.batch_output_op import BatchOutputOp
from clara_stream.operators.video.batch_postprocess_op import DETECTIONS_BATCH_PORT, BatchPostprocessOp
from clara_stream.operators.video.batch_preprocess_op import BatchPreprocessOp
from clara_stream.operators.video.batch_source_op import FRAME_BATCH_PORT, BatchSourceOp

from clara_stream import ports as P
from clara_stream.errors import ConfigError
from clara_stream.runtime import Application

MODEL_DIR = Path(__file__).resolve().parent.parent / "video_detection" / "model"  # the same detector
DEFAULT_OUT = Path("video_detection_multi_output")


def _model_file(section: dict[str, Any], key: str) -> dict[str, Any]:
    """A relative model/labels path not found from the cwd resolves against video_detection's model/."""
    value = section.get(key)
    if value and not Path(value).is_absolute() and not Path(value).exists():
        section[key] = str(MODEL_DIR / Path(value).name)
    return section


class VideoDetectionMultiApp(Application):
    """Detect in N streams with one batched model call per tick; per-stream MP4, KITTI, latency."""

    def compose(self) -> None:
        out, inputs = self.output_path or DEFAULT_OUT, self.inputs()
        outputs_kw = self.kwargs("outputs")
        batcher = BatchSourceOp(self, name="batcher", inputs=inputs, **self.kwargs("batcher"))
        preprocess = BatchPreprocessOp(self, name="preprocess", **self.kwargs("preprocess"))
        inference = InferenceOp(self, name="inference", **_model_file(self.kwargs("inference"), "model"))
        postprocess = BatchPostprocessOp(self, name="postprocess", **_model_file(self.kwargs("postprocess"), "labels"))
        outputs = BatchOutputOp(self, name="outputs", folder=out, streams=max(1, len(inputs)), workers=batcher.workers,
                                **outputs_kw)
        self.add_flow(batcher, preprocess, {(FRAME_BATCH_PORT, FRAME_BATCH_PORT)})
        self.add_flow(batcher, outputs, {(FRAME_BATCH_PORT, FRAME_BATCH_PORT)})
        self.add_flow(preprocess, inference, {(P.TENSOR, P.TENSOR)})
        self.add_flow(inference, postprocess, {(P.LOGITS, P.LOGITS)})
        self.add_flow(postprocess, outputs, {(DETECTIONS_BATCH_PORT, DETECTIONS_BATCH_PORT)})
        self.parts = {"batcher": batcher, "outputs": outputs, "inference": inference}

    def inputs(self) -> list[str]:
        """``--input`` values (the CLI passes several one a line) or ``batcher.inputs`` from the YAML."""
        raw = self.config_value("app.input")
        return [s for s in str(raw).splitlines() if s.strip()] if raw else []

    def run(self) -> None:  # type: ignore[override]
        """Run, then write ``latency.json`` (also after a failure)."""
        if not self.inputs():
            raise ConfigError("video_detection_multi: expected --input A --input B … (streams or files); got none",
                              hint="clara-stream sample video --out DIR  writes a synthetic clip")
        start, error = time.perf_counter(), None
        try:
            super().run()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.summary = self._summary(time.perf_counter() - start, error)

    def _summary(self, wall_s: float, error: BaseException | None) -> dict[str, Any] | None:
        parts = getattr(self, "parts", None)
        if not parts:
            return None
        streams = [i | o for i, o in zip(parts["batcher"].stats, parts["outputs"].stats, strict=True)]
        frames = sum(s["frames"] for s in streams)
        written = [t[2] for timeline in parts["outputs"].timelines for t in timeline]  # encoded packet clocks
        span = max(written) - min(written) if len(written) > 1 else 0.0
        summary = {"streams": streams, "batches": parts["batcher"].emitted, "frames_written": frames,
                   "inference_calls": parts["inference"].calls, "wall_s": round(wall_s, 3),
                   "fps_total": round(frames / wall_s, 2) if wall_s > 0 else None,
                   # sustained: first to last frame written, all streams (start-up and opening left out)
                   "fps_sustained": round((len(written) - 1) / span, 2) if span > 0 else None,
                   "error": str(error) if error else None}
        out = self.output_path or DEFAULT_OUT
        out.mkdir(parents=True, exist_ok=True)
        (out / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")
        if error is None:
            lat = "; ".join(f"#{k} {s['frames']} frames p50 {s['latency'].get('p50_ms')} ms p99 "
                            f"{s['latency'].get('p99_ms')} ms dropped {s.get('dropped', 0)}"
                            for k, s in enumerate(streams))
            print(f"video_detection_multi: {len(streams)} streams, {summary['batches']} batches, "
                  f"{summary['fps_total']} fps total; {lat} → {out}", flush=True)
        return summary
