"""Inputs nobody here wrote: clips made by the ffmpeg CLI, outputs checked by ffprobe / ffmpeg.

The producer and the oracle are FFmpeg's own command-line tools (not our PyAV code), so a test
cannot pass by reading back what our writer wrote with the same library call.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video.kitti import read_kitti
from clara_stream.operators.video.sink import VideoSink
from clara_stream.operators.video.source import VideoInputError, VideoSource

from clara_stream.geometry import FrameInfo
from clara_stream.runtime import load_app

FFMPEG, FFPROBE = "/usr/bin/ffmpeg", "/usr/bin/ffprobe"


@pytest.fixture(scope="module")
def ff(peer) -> dict[str, Path]:  # noqa: ANN001
    return {"ffmpeg": peer(FFMPEG, ["-version"], "ffmpeg version"),
            "ffprobe": peer(FFPROBE, ["-version"], "ffprobe version")}


def _make(ff: dict[str, Path], out: Path, *args: str) -> Path:
    cmd = [str(ff["ffmpeg"]), "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def _testsrc(size: str, rate: int, frames: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-frames:v", str(frames)]


def _probe(ff: dict[str, Path], path: Path) -> dict:
    """ffprobe's view: first video stream (frames counted by decoding) and its side data."""
    cmd = [str(ff["ffprobe"]), "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_streams",
           "-show_format", "-of", "json", str(path)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout)
    return {**out["streams"][0], "format": out["format"]}


def _rgb(ff: dict[str, Path], path: Path, w: int, h: int) -> np.ndarray:
    """The first frame as FFmpeg's CLI displays it (autorotate on), decoded to RGB by FFmpeg."""
    cmd = [str(ff["ffmpeg"]), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def _run(video: Path, out: Path, *overrides: str):  # noqa: ANN202
    app = load_app("video_detection", input=video, output=out, overrides=list(overrides))
    app.run()
    return app.summary


def test_truncated_mkv_fails_names_frame_and_keeps_playable_partial(ff: dict, tmp_path: Path) -> None:
    """An MKV cut in half (no frame index; its duration promises 90 frames) is a failed run.

    Fails if the end of stream is taken as success (rc 0, 45 of 90 frames, error null), if the
    message lacks the file or the frame reached, if the CLI prints the success summary line, or
    if the partial output is not playable or not marked partial in latency.json.
    """
    full = _make(ff, tmp_path / "full.mkv", *_testsrc("640x360", 30, 90), "-c:v", "libx264", "-preset", "ultrafast",
                 "-g", "30")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", str(cut), "--output",
           str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    assert "expected media up to 3.000 s (container duration); got 1." in done.stderr  # cut in half: ~1.5 s
    assert "the stream ends after frame" in done.stderr
    assert str(cut) in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert "video_detection:" not in done.stdout and "done:" not in done.stdout  # no success summary
    summary = json.loads((tmp_path / "out" / "latency.json").read_text())
    assert summary["partial"] is True and "truncated" in summary["error"]
    got = _probe(ff, tmp_path / "out" / "output.mp4")
    assert got["codec_name"] == "h264" and 0 < int(got["nb_read_frames"]) == summary["frames_written"] < 90
    assert len(list((tmp_path / "out" / "kitti").glob("*.txt"))) >= summary["frames_written"]


def test_complete_vfr_and_long_audio_mkvs_are_not_called_truncated(ff: dict, tmp_path: Path) -> None:
    """An MKV promises a duration, not a frame count: a VFR video (90 frames over 4.2 s at a
    nominal 30 fps) and a 1 s video muxed with 2 s of audio are complete and must run.

    Fails if truncation is judged by duration × nominal rate (126 and 60 frames "expected") or by
    the video stream alone against a container duration set by the audio.
    """
    vfr = _make(ff, tmp_path / "vfr.mkv", *_testsrc("320x180", 30, 90), "-vf", "select='lt(mod(n\\,10)\\,7)'",
                "-vsync", "vfr", "-c:v", "libx264", "-preset", "ultrafast")
    video = _make(ff, tmp_path / "v.mkv", *_testsrc("320x180", 30, 30), "-c:v", "libx264", "-preset", "ultrafast")
    audio = _make(ff, tmp_path / "a.m4a", "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:a", "aac")
    long_audio = _make(ff, tmp_path / "long_audio.mkv", "-i", str(video), "-i", str(audio), "-c", "copy")
    for path in (vfr, long_audio):
        got = _probe(ff, path)
        s = _run(path, tmp_path / path.stem)
        assert s["error"] is None and s["frames_written"] == int(got["nb_read_frames"]), path.name
    assert float(_probe(ff, long_audio)["format"]["duration"]) > 1.9  # the container's duration is the audio's


def test_raw_streams_take_their_rate_from_vui_or_decoder_rate(ff: dict, tmp_path: Path) -> None:
    """Raw H.264 at 24 fps keeps 24 fps (FFmpeg's raw demuxer says 25); HEVC without VUI needs decoder.rate.

    Fails if the demuxer's 25 fps default is used, or if a stream without timing gets a guessed rate.
    """
    h264 = _make(ff, tmp_path / "a.h264", *_testsrc("320x180", 24, 48), "-c:v", "libx264", "-preset", "ultrafast")
    s = _run(h264, tmp_path / "o264")
    got = _probe(ff, tmp_path / "o264" / "output.mp4")
    assert got["avg_frame_rate"] == "24/1" and int(got["nb_read_frames"]) == 48
    assert s["input"]["rate_from"] == "VUI timing"
    assert abs(float(got["format"]["duration"]) - 2.0) <= 1 / 24
    novui = _make(ff, tmp_path / "b.h265", *_testsrc("320x180", 24, 48), "-c:v", "libx265", "-x265-params",
                  "vui-timing-info=0:log-level=error")
    no_rate = r"expected a frame rate for a raw hevc stream.*set decoder\.rate.*b\.h265"
    with pytest.raises(VideoInputError, match=no_rate):
        _run(novui, tmp_path / "ohevc")
    _run(novui, tmp_path / "ohevc2", "decoder.rate=24")
    assert _probe(ff, tmp_path / "ohevc2" / "output.mp4")["avg_frame_rate"] == "24/1"
    with pytest.raises(VideoInputError, match="expected decoder.rate only for raw"):
        _run(tmp_path / "o264" / "output.mp4", tmp_path / "o3", "decoder.rate=24")
    with VideoSource(h264, loop=True) as src:  # a raw stream cannot seek: looping reopens it
        it = iter(src)
        frames = [next(it) for _ in range(100)]
    assert [f.info.pts for f in frames] == list(range(100)) and np.array_equal(frames[48].rgb, frames[0].rgb)


def test_odd_size_is_padded_right_bottom_and_kitti_stays_in_input_pixels(ff: dict, tmp_path: Path) -> None:
    """641×359 4:4:4 → 642×360 H.264 (ffprobe) whose top-left 641×359 is the input (ffmpeg-decoded).

    Fails if the encoder refuses odd sizes, if the frame is scaled or centred instead of padded
    (pixels would move), or if KITTI boxes leave the input's 641×359 pixel space.
    """
    video = _make(ff, tmp_path / "odd.mp4", *_testsrc("642x360", 30, 20), "-vf", "format=yuv444p,crop=641:359:0:0",
                  "-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast")
    s = _run(video, tmp_path / "out")
    got = _probe(ff, tmp_path / "out" / "output.mp4")
    assert (got["width"], got["height"], int(got["nb_read_frames"])) == (642, 360, 20)
    assert s["padded_from"] == [641, 359]
    yy, xx = np.mgrid[:359, :641]
    board = np.repeat((((xx // 3 + yy // 5) % 2) * 200 + 28).astype(np.uint8)[..., None], 3, 2)  # grey: no chroma loss
    with VideoSink(tmp_path / "board.mp4", crf=0, preset="ultrafast") as sink:
        sink.write(board, FrameInfo(0, Fraction(1, 30), 0, Fraction(30)))
    dst = _rgb(ff, tmp_path / "board.mp4", 642, 360).astype(int)
    assert np.abs(dst[:359, :641] - board).max() <= 3  # same pixel, same place
    assert np.abs(dst[:359, 1:641] - board[:, :640]).mean() > 50  # what a one-pixel shift would look like
    assert (np.abs(dst[359, :641] - dst[358, :641]).max(), np.abs(dst[:359, 641] - dst[:359, 640]).max()) <= (3, 3)
    for p in (tmp_path / "out" / "kitti").glob("*.txt"):
        b = read_kitti(p).boxes
        assert (b[:, 2] <= 641).all() and (b[:, 3] <= 359).all()


def test_display_rotation_is_applied_like_ffmpeg_autorotate(ff: dict, tmp_path: Path) -> None:
    """A 640×360 stream with a 90° display matrix decodes to what ffmpeg displays: 360×640.

    Fails if the matrix is ignored (640×360 output) or applied the wrong way (mirror/180°).
    """
    plain = _make(ff, tmp_path / "p.mp4", *_testsrc("640x360", 30, 15), "-c:v", "libx264", "-preset", "ultrafast")
    rot = _make(ff, tmp_path / "r.mp4", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90")
    expected = _rgb(ff, rot, 360, 640).astype(int)  # ffmpeg applies the display matrix itself
    with VideoSource(rot) as src:
        first = next(iter(src))
    assert src.info.rotation in (90, 270) and first.rgb.shape == (640, 360, 3)
    err = np.abs(first.rgb.astype(int) - expected).mean()
    assert err < 3 and np.abs(first.rgb[::-1, ::-1].astype(int) - expected).mean() > 10 * err + 5
    _run(rot, tmp_path / "out")
    got = _probe(ff, tmp_path / "out" / "output.mp4")
    assert (got["width"], got["height"]) == (360, 640) and not got.get("side_data_list")


def test_run_owns_its_kitti_folder(small_clip: dict[str, Path], tmp_path: Path) -> None:
    """250 KITTI files of an earlier run are removed; files the writer does not name are kept.

    Fails if stale frame files survive (the folder would claim 250 frames for a 40-frame run), or
    if a later run that fails at once leaves the earlier run's output.mp4 and KITTI files.
    """
    kitti = tmp_path / "out" / "kitti"
    kitti.mkdir(parents=True)
    for i in range(250):
        (kitti / f"{i:06d}.txt").write_text("polyp 0.0 0 0.0 1 1 2 2 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.9\n")
    (kitti / "000007.tmp").write_text("half")
    (kitti / "notes.md").write_text("mine")
    s = _run(small_clip["video"], tmp_path / "out")
    names = sorted(p.name for p in kitti.iterdir())
    assert names == [f"{i:06d}.txt" for i in range(40)] + ["notes.md"] and s["stale_kitti_removed"] == 251
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video\n" * 50)
    with pytest.raises(VideoInputError):  # fails before its first frame: the earlier run's video must not stay
        _run(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "output.mp4").exists() and not list(kitti.glob("*.txt"))


def _audio_packets(ff: dict[str, Path], path: Path) -> list[str]:
    """Per-packet "pts,size,md5" of the first audio stream, by ffmpeg's framemd5 muxer (stream copy)."""
    cmd = [str(ff["ffmpeg"]), "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "framemd5", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    cols = [[c.strip() for c in line.split(",")] for line in out.splitlines() if not line.startswith("#")]
    return [f"{c[2]},{c[4]},{c[5]}" for c in cols]  # stream, dts, pts, duration, size, hash: keep pts, size, hash


def _with_audio(ff: dict[str, Path], out: Path, codec: str) -> Path:
    return _make(ff, out, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i",
                 "sine=frequency=440:sample_rate=48000", "-frames:v", "30", "-t", "1", "-c:v", "libx264",
                 "-preset", "ultrafast", "-c:a", codec)


def test_audio_is_copied_packet_for_packet_or_the_reason_stated(ff: dict, tmp_path: Path) -> None:
    """AAC audio reaches output.mp4 bit-exact (ffmpeg's per-packet MD5s); Vorbis, which MP4 cannot hold, is stated.

    Fails if the audio is dropped silently, re-encoded (hashes differ), shifted (pts differ), or
    if a failed remux leaves a temporary file or damages the video-only output.
    """
    aac = _with_audio(ff, tmp_path / "aac.mp4", "aac")
    s = _run(aac, tmp_path / "o1")
    assert s["audio"] == "copied to the output (no re-encode): aac"
    src, dst = _audio_packets(ff, aac), _audio_packets(ff, tmp_path / "o1" / "output.mp4")
    assert len(dst) >= len(src) - 1 and set(dst) <= set(src)  # AAC priming (pts < 0) may be left out
    assert int(_probe(ff, tmp_path / "o1" / "output.mp4")["nb_read_frames"]) == 30
    vorbis = _with_audio(ff, tmp_path / "v.mkv", "libvorbis")
    s = _run(vorbis, tmp_path / "o2")
    assert s["audio"].startswith("not copied to the output:") and "vorbis" in s["audio"]
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["kitti", "latency.json", "output.mp4"]
    got = _probe(ff, tmp_path / "o2" / "output.mp4")
    assert got["codec_name"] == "h264" and int(got["nb_read_frames"]) == 30


def test_disk_full_is_one_clear_error_without_temp_files(small_clip: dict[str, Path], ff: dict, tmp_path: Path) -> None:
    """Output on a 192 KiB tmpfs: a clear error naming the cause; no .tmp left; the MP4 removed or playable.

    Fails if a traceback-only failure, a left ``.tmp`` or an unplayable MP4 remains.
    """
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("needs root to mount a tiny tmpfs (a full disk)")
    try:
        with pytest.raises(OSError, match="No space left on device") as err:
            _run(small_clip["video"], mnt / "out", "encoder.crf=0")
        assert "Traceback" not in str(err.value) and str(mnt / "out") in str(err.value)
        assert not list(mnt.rglob("*.tmp"))
        mp4 = mnt / "out" / "output.mp4"
        if mp4.exists():
            probe = subprocess.run([str(ff["ffprobe"]), "-v", "error", "-count_frames", "-show_streams", str(mp4)],
                                   capture_output=True, text=True)
            assert probe.returncode == 0 and "nb_read_frames=" in probe.stdout
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_file_size_limit_is_one_clear_cli_error(small_clip: dict[str, Path], ff: dict, tmp_path: Path) -> None:
    """The CLI under a 150 KiB file-size limit (any user, no mount): EFBIG instead of ENOSPC, same handling.

    Fails if the write failure surfaces as a traceback, exits 0, prints the success summary,
    leaves a ``.tmp``, or leaves an MP4 that FFmpeg cannot read.
    """
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (150 << 10, 150 << 10))

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", str(small_clip["video"]),
           "--output", str(out), "--set", "encoder.crf=0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, preexec_fn=limit)
    assert done.returncode != 0, done.stdout
    assert "expected to write the output video; got File too large" in done.stderr and str(out) in done.stderr
    assert "Traceback" not in done.stderr and "video_detection:" not in done.stdout
    assert not list(out.rglob("*.tmp"))
    mp4 = out / "output.mp4"
    if mp4.exists():
        probe = subprocess.run([str(ff["ffprobe"]), "-v", "error", "-count_frames", "-show_streams", str(mp4)],
                               capture_output=True, text=True)
        assert probe.returncode == 0 and "nb_read_frames=" in probe.stdout
