"""Video pipeline benchmark: the video_detection app against a naive sequential loop, same frames, same run.

For each input (synthetic 720p and 1080p H.264, and the real endoscopy clip when present):

* **app, throughput mode** — ``clara-stream``'s video_detection graph as fast as possible
  (decode, inference and encode overlap on worker and background threads, bounded queues);
* **app, realtime mode** — paced at the source rate (a live source), drop policy ``drop_late``:
  per-frame latency decode → encoded, and frames dropped;
* **naive anchor** — one Python loop: PyAV decode → ``to_ndarray("rgb24")`` (swscale) →
  the same preprocessing → onnxruntime (default threads) → the same NMS and overlay →
  ``VideoFrame.from_ndarray("rgb24")`` → libx264 (same preset and tune as the app) → mux.

Prints fps, latency p50/p90/p99/max and the app/naive throughput ratio; ``--json`` saves them.
Usage::

    python benchmarks/video_pipeline.py [--frames 150] [--json out.json] [--skip-1080p]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "apps" / "video_detection"
REAL = REPO.parent / "shared" / "data" / "video_endoscopy_rvimlab" / "data" / "endo.mp4"


def naive_loop(video: Path, out: Path, *, preset: str = "ultrafast", crf: int = 23) -> dict[str, Any]:
    """The anchor: a straightforward sequential PyAV + onnxruntime + PyAV loop doing the same work."""
    import av
    from clara_stream.operators.video.detections import load_labels, postprocess
    from clara_stream.operators.video.overlay import clock_text, draw_clock, draw_detections
    from clara_stream.operators.video.preprocess import letterbox_image, to_tensor
    from clara_stream.operators.video.stats import latency_summary

    from clara_stream.inference import create_backend

    model = create_backend("onnxruntime", APP_DIR / "model" / "model.onnx")
    labels = load_labels(APP_DIR / "model" / "labels.txt")
    lat: list[float] = []
    start = time.perf_counter()
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        s_in = src.streams.video[0]
        rate = s_in.average_rate or Fraction(30)
        s_out = dst.add_stream("libx264", rate=rate)
        s_out.width, s_out.height, s_out.pix_fmt = s_in.codec_context.width, s_in.codec_context.height, "yuv420p"
        s_out.options = {"preset": preset, "crf": str(crf), "tune": "zerolatency"}
        for i, frame in enumerate(src.decode(s_in)):
            t0 = time.perf_counter()
            rgb = frame.to_ndarray(format="rgb24")
            image, lb = letterbox_image(rgb, (320, 192))
            outs = model.infer({"images": to_tensor(image)[None]})
            det = postprocess(outs["boxes"][0], outs["scores"][0], lb, labels)
            draw_detections(rgb, det)
            draw_clock(rgb, clock_text(float(frame.pts * frame.time_base) if frame.pts is not None else 0.0, i))
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            dst.mux(s_out.encode(vf))
            lat.append(time.perf_counter() - t0)
        dst.mux(s_out.encode(None))
    wall = time.perf_counter() - start
    return {"fps": round(len(lat) / wall, 2), "frames": len(lat), "latency_ms": latency_summary(lat)}


def run_app(video: Path, out: Path, *, realtime: bool) -> dict[str, Any]:
    from clara_stream.runtime import load_app

    overrides = ["decoder.realtime=true", "decoder.drop_policy=drop_late"] if realtime else []
    app = load_app("video_detection", input=video, output=out, overrides=overrides)
    app.run()
    s = app.summary
    # throughput over the stream itself (first frame emitted → last frame encoded), not graph start-up
    return {
        "fps": s["output_fps"],
        "frames": s["frames_written"],
        "dropped": s["input"]["dropped"],
        "latency_ms": s["latency_ms"],
        "wall_fps": s["fps"],
    }


def make_inputs(work: Path, frames: int, skip_1080p: bool) -> list[tuple[str, Path]]:
    from clara_stream.samples.video import write_sample

    sizes = [("synthetic 720p", 1280, 720)] + ([] if skip_1080p else [("synthetic 1080p", 1920, 1080)])
    inputs = []
    for label, w, h in sizes:
        p = write_sample(
            work, seed=21, width=w, height=h, frames=frames, fps=30, preset="veryfast", name=f"bench_{h}p.mp4"
        )["video"]
        inputs.append((label, p))
    if REAL.is_file():
        inputs.append(("real endoscopy 720p (25 fps, B-frames)", REAL))
    return inputs


def rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The benchmarks/run_all.py protocol: one row per figure, each against the naive loop of the same run."""
    out = []
    anchor = "naive PyAV+onnxruntime+PyAV loop"
    for r in results:
        n, f, rt = r["naive"], r["app"], r["app_realtime"]
        out.append(
            {
                "case": f"{r['input']} / app as fast as possible",
                "metric": "fps",
                "value": f["fps"],
                "anchor": anchor,
                "anchor_value": n["fps"],
                "ratio": r["ratio"],
            }
        )
        for key in ("p50_ms", "p99_ms", "max_ms"):
            out.append(
                {
                    "case": f"{r['input']} / app realtime (source rate, drop_late; {rt['dropped']} dropped)",
                    "metric": f"latency {key[:-3]} ms",
                    "value": rt["latency_ms"][key],
                    "anchor": anchor,
                    "anchor_value": n["latency_ms"][key],
                    "ratio": round(rt["latency_ms"][key] / n["latency_ms"][key], 2),
                }
            )
    return out


def fmt_lat(lat: dict[str, Any]) -> str:
    return f"{lat['p50_ms']:.1f} / {lat['p90_ms']:.1f} / {lat['p99_ms']:.1f} / {lat['max_ms']:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per synthetic clip")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--skip-1080p", action="store_true")
    ap.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temp folder)")
    a = ap.parse_args(argv)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="video_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.system()}"
    print(f"video pipeline benchmark — {machine} — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    results = []
    for label, video in make_inputs(work, a.frames, a.skip_1080p):
        tag = video.stem
        naive = naive_loop(video, work / f"{tag}_naive.mp4")
        fast = run_app(video, work / f"{tag}_app", realtime=False)
        rt = run_app(video, work / f"{tag}_rt", realtime=True)
        ratio = round(fast["fps"] / naive["fps"], 2) if naive["fps"] else None
        results.append({"input": label, "app": fast, "app_realtime": rt, "naive": naive, "ratio": ratio})
        print(f"\n{label}: {naive['frames']} frames", flush=True)
        print(f"  naive loop     {naive['fps']:7.1f} fps   latency p50/p90/p99/max {fmt_lat(naive['latency_ms'])} ms")
        print(
            f"  app (fast)     {fast['fps']:7.1f} fps   latency p50/p90/p99/max {fmt_lat(fast['latency_ms'])} ms"
            f"   (queueing included)"
        )
        print(
            f"  app (realtime) {rt['fps']:7.1f} fps   latency p50/p90/p99/max {fmt_lat(rt['latency_ms'])} ms"
            f"   dropped {rt['dropped']}"
        )
        print(f"  ratio app/naive throughput: {ratio}x", flush=True)
    if a.json:
        a.json.write_text(
            json.dumps(
                {"benchmark": "video_pipeline", "rows": rows(results), "machine": machine, "details": results}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=2)
    raise SystemExit(main())
