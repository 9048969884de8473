"""video_detection end to end on the real Holoscan engine: counts, timing, H.264, KITTI, accuracy, Triton."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from clara_stream.operators.video.evaluate import Score, evaluate_kitti
from clara_stream.operators.video.kitti import read_kitti
from clara_stream.operators.video.source import probe

from clara_stream.runtime import load_app
from clara_stream.samples.video import write_sample

APP_DIR = Path(__file__).resolve().parents[2] / "apps" / "video_detection"
MODEL = APP_DIR / "model" / "model.onnx"


def _check_outputs(video: Path, out: Path) -> None:
    """Same frame count, rate and duration as the input; valid H.264; one 16-column KITTI file per frame."""
    src, dst = probe(video), probe(out / "output.mp4")
    assert dst.codec == "h264" and (dst.width, dst.height) == (src.width, src.height)
    assert dst.frames == src.frames and dst.rate == src.rate
    assert abs(dst.duration_s - src.duration_s) <= 1.0 / float(src.rate)
    with av.open(str(out / "output.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == src.frames
    kitti = sorted((out / "kitti").glob("*.txt"))
    assert [p.name for p in kitti] == [f"{i:06d}.txt" for i in range(src.frames)]
    for p in kitti:
        lines = p.read_text().splitlines()
        assert all(len(line.split()) == 16 for line in lines)
        det = read_kitti(p)
        if len(det):
            b = det.boxes
            assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= src.width).all()
            assert (b[:, 3] <= src.height).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


def test_app_on_synthetic_clip_meets_accuracy(clip: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    app = load_app("video_detection", input=clip["video"], output=out)
    app.run()
    _check_outputs(clip["video"], out)
    score = evaluate_kitti(out / "kitti", clip["ground_truth"], iou_threshold=0.5)
    assert score.recall >= 0.75 and score.precision >= 0.9, score  # the hardest of the test scenes
    summary = app.summary
    assert summary["frames_written"] == summary["kitti_files"] == 90 and summary["error"] is None
    assert summary["latency_ms"]["frames"] == 90 and (out / "latency.json").is_file()


def test_recall_over_held_out_test_videos(clip: dict[str, Path], tmp_path: Path) -> None:
    """Recall ≥ 0.9 and precision ≥ 0.9 at IoU 0.5 over four held-out scenes (seeds 0–3; training uses ≥ 10000)."""
    total = Score()
    for seed in range(3):
        sample = write_sample(tmp_path / f"in{seed}", seed=seed, width=640, height=360, frames=90, fps=30)
        load_app("video_detection", input=sample["video"], output=tmp_path / f"out{seed}").run()
        total.add(evaluate_kitti(tmp_path / f"out{seed}" / "kitti", sample["ground_truth"], iou_threshold=0.5))
    load_app("video_detection", input=clip["video"], output=tmp_path / "out3").run()  # seed 3
    total.add(evaluate_kitti(tmp_path / "out3" / "kitti", clip["ground_truth"], iou_threshold=0.5))
    assert total.recall >= 0.9 and total.precision >= 0.9, total


def test_app_realtime_mode_accounts_for_every_frame(small_clip: dict[str, Path], tmp_path: Path) -> None:
    app = load_app(
        "video_detection",
        input=small_clip["video"],
        output=tmp_path / "rt",
        overrides=["decoder.realtime=true", "decoder.drop_policy=drop_late"],
    )
    app.run()
    s = app.summary
    assert s["input"]["realtime"] is True
    assert s["frames_written"] + s["input"]["dropped"] == 40 and s["kitti_files"] == s["frames_written"]


@pytest.fixture(scope="module")
def triton_detector(tmp_path_factory: pytest.TempPathFactory, require_peers: Callable[[str], None]):  # noqa: ANN201
    """The real tritonserver binary serving the app's detector (Python backend running onnxruntime)."""
    from clara_stream.inference.triton_server import (
        TritonServer,
        ensure_stub_site,
        pytriton_root,
        write_onnx_python_model,
    )

    try:
        pytriton_root()
        stub = ensure_stub_site()
    except FileNotFoundError as exc:
        require_peers(f"tritonserver not available: {exc}")
    repo = tmp_path_factory.mktemp("repo")
    write_onnx_python_model(repo, "detector", MODEL, max_batch_size=4, stub_site=stub)
    with TritonServer(repo) as server:
        yield server
    shutil.rmtree(repo, ignore_errors=True)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_app_through_triton_matches_onnxruntime(
    small_clip: dict[str, Path], tmp_path: Path, triton_detector: Any, protocol: str
) -> None:
    """The whole app against the real tritonserver over each protocol; boxes equal onnxruntime's.

    Fails if the HTTP client made on the building thread is used on the engine's worker
    (the process died with SIGSEGV), or if either protocol's outputs differ from local inference.
    """
    url = triton_detector.grpc_url if protocol == "grpc" else triton_detector.http_url
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", str(small_clip["video"]),
           "--output", str(tmp_path / "triton"), "--set", "inference.backend=triton", "--set", f"inference.url={url}",
           "--set", "inference.model_name=detector", "--set", f"inference.protocol={protocol}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    local = load_app("video_detection", input=small_clip["video"], output=tmp_path / "ort")
    local.run()
    summary = json.loads((tmp_path / "triton" / "latency.json").read_text())
    assert summary["backend"].startswith("triton(") and summary["error"] is None
    _check_outputs(small_clip["video"], tmp_path / "triton")
    for a in sorted((tmp_path / "ort" / "kitti").glob("*.txt")):
        da, db = read_kitti(a), read_kitti(tmp_path / "triton" / "kitti" / a.name)
        assert da.names() == db.names()
        np.testing.assert_allclose(da.boxes, db.boxes, atol=0.02)


@pytest.mark.slow
def test_app_on_real_endoscopy_video(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "video_endoscopy_rvimlab" / "data" / "endo.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not present")
    out = tmp_path / "endo"
    load_app("video_detection", input=video, output=out).run()
    _check_outputs(video, out)  # 250 frames, 25 fps, 10 s, B-frames in the source


def test_cli_run_writes_outputs_and_summary(small_clip: dict[str, Path], tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "clara_stream.cli",
        "run",
        "video_detection",
        "--input",
        str(small_clip["video"]),
        "--output",
        str(tmp_path / "cli"),
        "--set",
        "encoder.fragmented=true",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "video_detection: 40 frames" in done.stdout and "p99" in done.stdout
    assert b"moof" in (tmp_path / "cli" / "output.mp4").read_bytes()
    _check_outputs(small_clip["video"], tmp_path / "cli")


def test_training_script_runs_one_step(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(APP_DIR / "model" / "train.py"),
        "--steps",
        "1",
        "--scenes",
        "2",
        "--per-scene",
        "2",
        "--batch",
        "2",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from clara_stream.inference import create_backend

    b = create_backend("onnxruntime", tmp_path / "model.onnx")
    assert [(s.name, s.shape) for s in b.outputs] == [("boxes", (None, 960, 4)), ("scores", (None, 960, 2))]
    assert (tmp_path / "labels.txt").read_text().split() == ["instrument", "polyp"]


def test_validate_opens_and_creates_nothing(tmp_path: Path) -> None:
    """`clara-stream validate` builds the graph only: a missing input is not probed, no output folder appears.

    Fails if the decoder probes its file or the KITTI writer creates its folder while the app is built.
    """
    from clara_stream.cli import main

    out = tmp_path / "out"
    assert main(["validate", "video_detection", "--input", str(tmp_path / "absent.mp4"), "--output", str(out)]) == 0
    assert not out.exists()
