"""video_detection: DeepStream-style batch detection — MP4 in, annotated MP4 + KITTI files out.

decoder ─frame─▶ preprocess ─tensor─▶ inference ─logits─▶ postprocess ─detections─┬▶ overlay ─▶ encoder
   └───────────────────────────── frame (queue 8) ─────────────────────────────────┘   └▶ kitti
 ╰──── fragment "device" ────╯  ╰────────────────── fragment "server" ──────────────────────────╯

With ``app.fragments: true`` (implied by ``--driver`` / ``--worker``) the two fragments run as
Holoscan fragments over UCX, e.g. on an IGX device and a GPU server; otherwise in one process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clara_stream.operators.inference.inference_op import InferenceOp
from clara_stream.operators.video.decoder_op import VideoDecoderOp
from clara_stream.operators.video.encoder_op import VideoEncoderOp
from clara_stream.operators.video.kitti import clear_kitti
from clara_stream.operators.video.kitti_op import KittiWriterOp
from clara_stream.operators.video.overlay_op import OverlayOp
from clara_stream.operators.video.postprocess_op import DetectionPostprocessOp
from clara_stream.operators.video.preprocess_op import PreprocessOp
from clara_stream.operators.video.remux import AudioCopy, copy_audio

from clara_stream import ports as P
from clara_stream.errors import ConfigError
from clara_stream.runtime import Application

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = Path("video_detection_output")


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
        out = self.output_path or DEFAULT_OUT
        device, server = self.fragment("device"), self.fragment("server")  # the app itself unless app.fragments
        decoder = VideoDecoderOp(device, name="decoder", path=self.config_value("app.input"), **self.kwargs("decoder"))
        preprocess = PreprocessOp(device, name="preprocess", **self.kwargs("preprocess"))
        inference = InferenceOp(server, name="inference", **_local(self.kwargs("inference"), "model"))
        postprocess = DetectionPostprocessOp(server, name="postprocess", **_local(self.kwargs("postprocess"), "labels"))
        overlay = OverlayOp(server, name="overlay", **self.kwargs("overlay"))
        encoder = VideoEncoderOp(server, name="encoder", path=out / "output.mp4", **self.kwargs("encoder"))
        kitti = KittiWriterOp(server, name="kitti", folder=out / "kitti", **self.kwargs("kitti"))
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
        if self.input_path is None and self.runs_here("device"):
            raise ConfigError(
                "video_detection: expected --input <video file>; got none",
                hint="clara-stream sample video --out DIR  writes a synthetic one",
            )
        start = time.perf_counter()
        error: BaseException | None = None
        self._audio: AudioCopy | None = None
        if self.runs_here("server"):  # the run owns its outputs, even if it fails before the graph starts
            self._stale = self._clear_previous(self.output_path or DEFAULT_OUT)
        try:
            super().run()
            parts = getattr(self, "parts", {})
            if self.input_path is not None and parts and self.runs_here(parts["encoder"]) and not parts["decoder"].live:
                sink = parts["encoder"].sink
                opts = sink.muxer_options
                self._audio = copy_audio(sink.path, self.input_path, options=opts, owner="video_detection")
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.summary = self._summary(time.perf_counter() - start, error)

    def _clear_previous(self, out: Path) -> int:
        """Remove an earlier run's output.mp4 and KITTI files; return how many KITTI files went.

        The operators' start() does the same, but a decoder failing at start stops the graph
        before theirs runs.
        """
        (out / "output.mp4").unlink(missing_ok=True)
        if not (out / "kitti").is_dir():
            return 0
        k = self.kwargs("kitti")
        return clear_kitti(out / "kitti", digits=int(k.get("digits", 6)), prefix=str(k.get("prefix", "")))

    def _summary(self, wall_s: float, error: BaseException | None) -> dict[str, Any] | None:
        parts = getattr(self, "parts", None)
        if not parts or not self.runs_here(parts["encoder"]):  # the server fragment writes the summary
            return None
        enc, dec = parts["encoder"].stats, parts["decoder"].stats
        audio = self._audio.describe() if getattr(self, "_audio", None) else None
        if audio is None and dec.get("audio_streams"):  # a failed run: its partial output gets no audio
            audio = f"not copied to the output: {', '.join(dec['audio_streams'])} (the run failed)"
        summary = {
            "input": dec,
            "output": enc["output"],
            "output_removed": enc["removed"],
            "partial": error is not None,  # a failed run: the outputs hold the frames before the fault
            "frames_written": enc["frames"],
            "kitti_files": parts["kitti"].written,
            "stale_kitti_removed": getattr(self, "_stale", 0) + parts["kitti"].cleared,
            "padded_from": enc["padded_from"],
            "audio": audio,
            "backend": parts["inference"].backend.describe() if parts["inference"].backend else None,
            "wall_s": round(wall_s, 3),
            "fps": round(enc["frames"] / wall_s, 2) if wall_s > 0 else None,
            "output_fps": enc["fps"],
            "output_clock_s": enc["written_clock_s"],  # first/last frame written (perf_counter): runs side by side
            "latency_ms": enc["latency"],  # glass to glass: packet read → encoded packet written
            "scheduler": self.config_value("app.scheduler"),
            "error": str(error) if error else None,
        }
        out = Path(enc["output"]).parent
        out.mkdir(parents=True, exist_ok=True)
        try:
            (out / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:  # e.g. the disk that failed the run is still full: keep the run's own error
            if error is None:
                raise
            error.add_note(f"latency.json not written: {exc.strerror or exc} [{out}]")
        lat = enc["latency"]
        if error is None and lat.get("frames"):  # a failed run gets the error line only, never this one
            notes = "".join(f"; {n}" for n in (summary["audio"] and f"audio {summary['audio']}",
                                                enc["padded_from"] and "odd size padded right/bottom to even") if n)
            print(
                f"video_detection: {enc['frames']} frames, {summary['fps']} fps, glass-to-glass latency "
                f"p50 {lat['p50_ms']} ms p90 {lat['p90_ms']} ms p99 {lat['p99_ms']} ms max {lat['max_ms']} ms, "
                f"dropped {dec.get('dropped', 0)}{notes} → {out}",
                flush=True,
            )
        return summary
