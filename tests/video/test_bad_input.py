"""Bad input: a clear error naming the file and the problem, a non-zero exit, and nothing lost.

A fault found when the app is built (missing file, not a video, no video stream, unsupported
codec, MP4 without its index) stops before anything runs. A fault found mid-stream (truncated or
corrupt data) stops the run, but the frames before it are in a playable output.mp4 and their
KITTI files stay.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest
from clara_stream.operators.video.source import VideoInputError, VideoSource

from clara_stream.runtime import load_app

EXPECTED = {
    "missing": "expected an existing video file; got missing path",
    "text": "expected a readable video container",
    "empty": "expected a video file; got an empty file",
    "truncated_moov_last": "moov atom",
    "audio_only": "expected a video stream; got none (audio aac)",
    "mpeg4": "expected a video codec in ('h264', 'hevc'); got 'mpeg4'",
    "truncated": "expected 40 frames (container index); got",
    "corrupt": "after frame",  # the frame reached is named
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_library_names_file_and_problem(bad_files: dict[str, Path], kind: str) -> None:
    with pytest.raises(VideoInputError) as err:
        with VideoSource(bad_files[kind]) as src:
            for _ in src:
                pass
    msg = str(err.value)
    assert EXPECTED[kind] in msg and str(bad_files[kind]) in msg


@pytest.mark.parametrize("kind", ["text", "audio_only", "mpeg4", "truncated", "corrupt"])
def test_cli_exits_non_zero_with_one_clear_line(bad_files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    """Refused files and mid-stream faults alike: one error line (+ hint), no stack, no success summary."""
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", str(bad_files[kind]),
           "--output", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert EXPECTED[kind] in done.stderr and bad_files[kind].name in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "video_detection:" not in done.stdout and "done:" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_mid_stream_fault_keeps_a_playable_mp4_and_kitti(bad_files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    app = load_app("video_detection", input=bad_files[kind], output=out, overrides=["app.scheduler=greedy"])
    with pytest.raises(VideoInputError, match=str(bad_files[kind].name)):
        app.run()
    with av.open(str(out / "output.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        decoded = sum(1 for _ in c.decode(video=0))
    kitti = sorted((out / "kitti").glob("*.txt"))
    assert 0 < decoded < 40 and len(kitti) >= decoded
    assert [p.name for p in kitti[:decoded]] == [f"{i:06d}.txt" for i in range(decoded)]
    assert app.summary["error"] and app.summary["frames_written"] == decoded and app.summary["partial"] is True
