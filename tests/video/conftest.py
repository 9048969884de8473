"""Fixtures for the video tests: synthetic clips with ground truth, and broken files of each kind."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clara_stream.samples.video import write_sample


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """640×360, 90 frames at 30 fps, held-out seed (training uses seeds >= 10000)."""
    return write_sample(tmp_path_factory.mktemp("clip"), seed=3, width=640, height=360, frames=90, fps=30)


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sample(
        tmp_path_factory.mktemp("small"), seed=4, width=320, height=180, frames=40, fps=25, faststart=True
    )


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, small_clip: dict[str, Path]) -> dict[str, Path]:
    """One file per failure: missing, text, empty, truncated (moov first / moov last), corrupt, audio only, mpeg4."""
    d = tmp_path_factory.mktemp("bad")
    data = small_clip["video"].read_bytes()
    files = {"missing": d / "missing.mp4", "text": d / "notes.mp4", "empty": d / "empty.mp4"}
    files["text"].write_text("this is not a video\n" * 100)
    files["empty"].write_bytes(b"")
    files["truncated"] = d / "truncated.mp4"
    files["truncated"].write_bytes(data[: int(len(data) * 0.6)])
    tail = write_sample(d, seed=4, width=320, height=180, frames=40, fps=25, name="moov_last.mp4")["video"]
    files["truncated_moov_last"] = d / "truncated_moov_last.mp4"
    files["truncated_moov_last"].write_bytes(tail.read_bytes()[: int(tail.stat().st_size * 0.6)])
    corrupt = bytearray(data)
    mid = len(corrupt) // 2
    corrupt[mid : mid + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    files["corrupt"] = d / "corrupt.mp4"
    files["corrupt"].write_bytes(bytes(corrupt))
    files["audio_only"] = d / "audio_only.m4a"
    with av.open(str(files["audio_only"]), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        for i in range(10):
            frame.pts = i * 1024
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    files["mpeg4"] = write_sample(d, seed=4, width=320, height=180, frames=10, codec="mpeg4", name="mpeg4.mp4")["video"]
    return files
