"""``clara-stream render serve --demo`` serves the real CT and slides (synthetic data when absent);
``render list/register/snapshot`` talk to it over gRPC."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from clara_stream.render.client import decode

from clara_stream.cli import main


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, serve_process):
    state = tmp_path_factory.mktemp("cli_state")
    ready = state / "ready.json"
    exe = shutil.which("clara-stream", path=os.path.dirname(sys.executable))
    cmd = [
        exe,
        "render",
        "serve",
        "--demo",
        "--state-dir",
        str(state),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--ready-file",
        str(ready),
    ]
    return serve_process(cmd, ready), state


def test_demo_serves_real_data_and_cli_snapshots(demo_server, tmp_path, capsys):
    ready, state = demo_server
    addr = ready["grpc"]
    assert main(["render", "list", "--address", addr]) == 0
    listing = capsys.readouterr().out
    real = "ct" in ready["datasets"]
    volume_id, slide_id = ("ct", "slide1") if real else ("phantom", "slide")
    assert volume_id in listing and slide_id in listing
    out = tmp_path / "mip.png"
    assert main(["render", "snapshot", volume_id, str(out), "--mode", "mip", "--address", addr]) == 0
    img = decode(out.read_bytes())
    assert img.shape == (512, 512, 3) and img.std() > 10
    assert "mm/px" in capsys.readouterr().out
    out2 = tmp_path / "slide.jpg"
    assert main(["render", "snapshot", slide_id, str(out2), "--zoom", "4", "--address", addr]) == 0
    assert decode(out2.read_bytes()).std() > 5
    # registering outside the roots is refused with a clear message and a non-zero status
    assert main(["render", "register", "/etc", "--address", addr]) != 0
    captured = capsys.readouterr()
    assert "PERMISSION_DENIED" in captured.err + captured.out
