"""``clara-stream bench APP --input URI``: a live stream is benchmarked like a file (issue 19).

Oracle: the sender (ffmpeg on loopback) and the app's own summary; nothing is timed here.
"""

from __future__ import annotations

import json
from pathlib import Path

from clara_stream.operators.video.testing_streams import FFMPEG, free_port, send_tcp, stop

from clara_stream.bench.harness import BenchOptions, app_overrides
from clara_stream.cli import main


def test_bench_keeps_a_live_uri_and_resolves_a_file(tmp_path: Path) -> None:
    """Fails if the URI goes through Path (``tcp://h:1`` → ``<cwd>/tcp:/h:1``) or a file is left relative."""
    live = app_overrides(BenchOptions(app="video_detection", out=tmp_path, input="tcp://127.0.0.1:9/x?a=b"))
    assert "app.input=tcp://127.0.0.1:9/x?a=b" in live
    (tmp_path / "clip.mp4").write_bytes(b"")
    local = app_overrides(BenchOptions(app="video_detection", out=tmp_path, input=str(tmp_path / "clip.mp4")))
    assert f"app.input={(tmp_path / 'clip.mp4').resolve()}" in local


def test_cli_bench_runs_a_live_tcp_stream(peer, small_clip: dict, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The real CLI benchmarks video_detection on a live MPEG-TS stream; a missing file is still refused.

    Fails if --input refuses a URI as a missing file (it was a Path), or mangles it on the way to the app.
    """
    ffmpeg = peer(FFMPEG, ["-version"], "ffmpeg version")
    assert main(["bench", "video_detection", "--input", str(tmp_path / "nope.mp4"), "--out", str(tmp_path)]) == 2
    port = free_port()
    sender = send_tcp(ffmpeg, small_clip["video"], port, loop=True)
    out = tmp_path / "bench"
    try:
        code = main(["bench", "video_detection", "--input", f"tcp://127.0.0.1:{port}", "--frames", "40", "--runs",
                     "1", "--out", str(out)])
    finally:
        stop(sender)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert f"app.input=tcp://127.0.0.1:{port}" in results["options"]["effective_overrides"]
    assert results["runs"][0]["messages"] == 40 - 10 - 10 and results["dropped_frames"] == 0  # 10 skipped, 10 discarded
