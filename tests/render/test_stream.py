"""The H.264 fragmented-MP4 stream against FFmpeg's own tools (``/usr/bin/ffprobe``,
``/usr/bin/ffmpeg``): our boxes, not FFmpeg's muxer, must parse and decode to the frames sent."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from clara_stream.render.stream import H264Stream, nal_units

W, H = 101, 63  # odd on purpose: 4:2:0 needs even sizes, so the encoder pads


def _frames(n: int) -> list[np.ndarray]:
    """A bright square moving right over a smooth gradient (compresses well, easy to compare)."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for k in range(n):
        img = np.stack([xx * 2, yy * 3, np.full_like(xx, 60)], axis=-1).astype(np.uint8)
        img[20:40, 10 + 6 * k : 30 + 6 * k] = 250
        out.append(img)
    return out


@pytest.fixture(scope="module")
def ffmpeg_tools(peer):
    return peer("/usr/bin/ffprobe", ["-version"], "ffprobe"), peer("/usr/bin/ffmpeg", ["-version"], "ffmpeg")


def _probe(ffprobe, path) -> list[dict]:
    out = subprocess.run(
        [str(ffprobe), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=key_frame,width,height:stream=codec_name,profile", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def _decode(ffmpeg, path, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(
        [str(ffmpeg), "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def test_stream_parses_and_decodes_to_the_frames_sent(ffmpeg_tools, tmp_path):
    """Fails if a box is malformed (ffprobe refuses it), samples lose their NAL lengths, or a frame
    is dropped or reordered."""
    ffprobe, ffmpeg = ffmpeg_tools
    s = H264Stream(W, H, bitrate_kbps=2000, codec="libx264")
    frames = _frames(8)
    frags = [s.encode(f) for f in frames]
    (tmp_path / "s.mp4").write_bytes(s.init_segment() + b"".join(frags))
    info = _probe(ffprobe, tmp_path / "s.mp4")
    assert info["streams"][0]["codec_name"] == "h264" and "Baseline" in info["streams"][0]["profile"]
    assert len(info["frames"]) == 8 and info["frames"][0]["key_frame"] == 1
    assert {(f["width"], f["height"]) for f in info["frames"]} == {(W + 1, H + 1)}
    decoded = _decode(ffmpeg, tmp_path / "s.mp4", W + 1, H + 1)[:, :H, :W]
    for got, sent in zip(decoded, frames, strict=True):
        mse = np.mean((got.astype(float) - sent) ** 2)
        assert 10 * np.log10(255**2 / mse) > 30  # the picture, not just a valid file
    assert s.codecs.startswith("avc1.42")  # Baseline profile in the MSE codecs string


def test_each_frame_is_a_complete_fragment_at_once(ffmpeg_tools, tmp_path):
    """The stream cut after k fragments decodes to exactly k frames (fails with FFmpeg's mp4 muxer,
    which writes a frame's fragment only when the next frame arrives)."""
    ffprobe, _ = ffmpeg_tools
    s = H264Stream(W, H, codec="libx264")
    data = b""
    for k, f in enumerate(_frames(5), start=1):
        frag = s.encode(f)
        assert frag[4:8] == b"moof" and frag.count(b"mdat") >= 1
        data = (data or s.init_segment()) + frag
        (tmp_path / f"cut{k}.mp4").write_bytes(data)
        assert len(_probe(ffprobe, tmp_path / f"cut{k}.mp4")["frames"]) == k


def test_forced_keyframe_and_bad_arguments():
    s = H264Stream(64, 48, codec="libx264")
    f = _frames(1)[0][:48, :64]
    s.encode(f)
    assert not any(u[0] & 0x1F == 5 for u in nal_units(_mdat(s.encode(f))))
    assert any(u[0] & 0x1F == 5 for u in nal_units(_mdat(s.encode(f, keyframe=True))))
    with pytest.raises(ValueError, match=r"expected \(48, 64, 3\) uint8"):
        s.encode(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="expected bitrate_kbps in 100..100000"):
        H264Stream(64, 48, bitrate_kbps=5)
    with pytest.raises(ValueError, match="expected codec auto, libx264 or h264_nvenc"):
        H264Stream(64, 48, codec="vp9")


def _mdat(frag: bytes) -> bytes:
    """The sample of a one-sample fragment, back in Annex B form (lengths → start codes)."""
    body = frag[frag.index(b"mdat") + 4 :]
    out, i = b"", 0
    while i < len(body):
        n = int.from_bytes(body[i : i + 4], "big")
        out += b"\x00\x00\x00\x01" + body[i + 4 : i + 4 + n]
        i += 4 + n
    return out
