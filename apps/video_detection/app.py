"""video_detection: DeepStream-style batch detection — MP4 in, annotated MP4 + KITTI files out.

decoder ─frame─▶ preprocess ─tensor─▶ inference ─logits─▶ postprocess ─detections─┬▶ overlay ─▶ encoder
   └───────────────────────────── frame (queue 8) ─────────────────────────────────┘   └▶ kitti
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clara_stream.operators.inference.inference_op import InferenceOp
from clara_stream.operators.video.decoder_op import VideoDecoderOp
from clara_stream.operators.video.encoder_op import VideoEncoderOp
from clara_stream.operators.video.kitti_op import KittiWriterOp
from clara_stream.operators.video.overlay_op import OverlayOp
from clara_stream.operators.video.postprocess_op import DetectionPostprocessOp
from clara_stream.operators.video.preprocess_op import PreprocessOp

from clara_stream import ports as P
from clara_stream.errors import ConfigError
from clara_stream.runtime import Application

HERE = Path(__file__).resolve().parent


def _local(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Resolve relative file keys (model, labels) against the app folder when not found from the cwd."""
    for key in keys:
        value = section.get(key)
        if value and not Path(value).is_absolute() and not Path(value).exists():
            section[key] = str(HERE / value)
    return section


class VideoDetectionApp(Application):
    """Detect instruments and polyps in a video; write ``output.mp4``, ``kitti/`` and ``latency.json``."""

    def compose(self) -> None:
        out = self.output_path or Path("video_detection_output")
        decoder = VideoDecoderOp(self, name="decoder", path=self.input_path, **self.kwargs("decoder"))
        preprocess = PreprocessOp(self, name="preprocess", **self.kwargs("preprocess"))
        inference = InferenceOp(self, name="inference", **_local(self.kwargs("inference"), "model"))
        postprocess = DetectionPostprocessOp(self, name="postprocess", **_local(self.kwargs("postprocess"), "labels"))
        overlay = OverlayOp(self, name="overlay", **self.kwargs("overlay"))
        encoder = VideoEncoderOp(self, name="encoder", path=out / "output.mp4", **self.kwargs("encoder"))
        kitti = KittiWriterOp(self, name="kitti", folder=out / "kitti", **self.kwargs("kitti"))
        self.add_flow(decoder, preprocess, {(P.FRAME, P.FRAME_IN)})
        self.add_flow(decoder, overlay, {(P.FRAME, P.FRAME)})
        self.add_flow(preprocess, inference, {(P.TENSOR, P.TENSOR)})
        self.add_flow(inference, postprocess, {(P.LOGITS, P.LOGITS)})
        self.add_flow(postprocess, overlay, {(P.DETECTIONS, P.DETECTIONS)})
        self.add_flow(postprocess, kitti, {(P.DETECTIONS, P.DETECTIONS)})
        self.add_flow(overlay, encoder, {(P.OVERLAY, P.FRAME)})
        self.parts = {"decoder": decoder, "encoder": encoder, "kitti": kitti, "inference": inference}

    def run(self) -> None:  # type: ignore[override]
        """Run, then write ``latency.json`` (also after a failure: what was done is reported)."""
        if self.input_path is None:
            raise ConfigError(
                "video_detection: expected --input <video file>; got none",
                hint="clara-stream sample video --out DIR  writes a synthetic one",
            )
        start = time.perf_counter()
        error: BaseException | None = None
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
        enc, dec = parts["encoder"].stats, parts["decoder"].stats
        summary = {
            "input": dec,
            "output": enc["output"],
            "frames_written": enc["frames"],
            "kitti_files": parts["kitti"].written,
            "backend": parts["inference"].backend.describe(),
            "wall_s": round(wall_s, 3),
            "fps": round(enc["frames"] / wall_s, 2) if wall_s > 0 else None,
            "output_fps": enc["fps"],
            "latency_ms": enc["latency"],
            "scheduler": self.config_value("app.scheduler"),
            "error": str(error) if error else None,
        }
        out = Path(enc["output"]).parent
        out.mkdir(parents=True, exist_ok=True)
        (out / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")
        lat = enc["latency"]
        if lat.get("frames"):
            print(
                f"video_detection: {enc['frames']} frames, {summary['fps']} fps, latency p50 {lat['p50_ms']} ms "
                f"p90 {lat['p90_ms']} ms p99 {lat['p99_ms']} ms max {lat['max_ms']} ms, "
                f"dropped {dec.get('dropped', 0)} → {out}",
                flush=True,
            )
        return summary
