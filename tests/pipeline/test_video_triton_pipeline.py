"""apps/video_detection/pipeline.yaml starts the real tritonserver itself and reaches the Python app's KITTI output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from clara_stream.operators.video.kitti import read_kitti

from clara_stream.runtime import load_app
from clara_stream.samples.video import write_sample

PIPELINE = Path(__file__).resolve().parents[2] / "apps" / "video_detection" / "pipeline.yaml"


def _tritons_of_pipelines() -> list[int]:
    """Pids of tritonservers serving a repository a pipeline service wrote (others' servers are not counted)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and "tritonserver" in cmd and "service-triton-repo-" in cmd:
            pids.append(int(proc.name))
    return pids


def test_yaml_pipeline_with_triton_service_matches_python_app(
    tmp_path: Path, require_peers: Callable[[str], None]
) -> None:
    """Same boxes per frame as the Python app on onnxruntime; tritonserver started by the file, gone afterwards.

    Catches the service's URL not reaching InferenceOp (connection refused), operators starting before
    Triton is ready (the first request fails), a flow wired differently from app.py (KITTI differs),
    and a server left running after the run.
    """
    from clara_stream.inference.triton_server import ensure_stub_site, pytriton_root

    try:
        pytriton_root()
        ensure_stub_site()
    except FileNotFoundError as exc:
        require_peers(f"tritonserver not available: {exc}")
    clip = write_sample(tmp_path / "clip", seed=4, width=320, height=180, frames=24, fps=25, faststart=True)
    before = set(_tritons_of_pipelines())
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", str(PIPELINE), "--input", str(clip["video"]),
           "--output", str(tmp_path / "yaml")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(_tritons_of_pipelines()) <= before
    load_app("video_detection", input=clip["video"], output=tmp_path / "py").run()
    ref = sorted((tmp_path / "py" / "kitti").glob("*.txt"))
    got = sorted((tmp_path / "yaml" / "kitti").glob("*.txt"))
    assert [p.name for p in got] == [p.name for p in ref] and len(ref) == 24
    assert any(len(read_kitti(p)) for p in ref)  # the clip has objects: an all-empty output would pass trivially
    for a in ref:
        da, db = read_kitti(a), read_kitti(tmp_path / "yaml" / "kitti" / a.name)
        assert da.names() == db.names()
        np.testing.assert_allclose(da.boxes, db.boxes, atol=0.02)
    assert (tmp_path / "yaml" / "output.mp4").stat().st_size > 0
