"""V4L2 capture through the system FFmpeg (PyAV's own FFmpeg has no v4l2 input).

No capture device exists on these machines (no kernel modules: no vivid, no v4l2loopback), so the
device is stood in for twice, each time by something real: a character device node that is not a
capture device (the system FFmpeg's own v4l2 demuxer must refuse it, in one line), and FFmpeg's
``testsrc2`` in the camera's raw YUYV format at 30 fps behind the same relay (the frames must equal
FFmpeg's own rgb24 rendering of that source). What a real camera adds — its ioctls — is FFmpeg's."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video import live as live_mod
from clara_stream.operators.video.live import LiveInputError, LiveSource
from clara_stream.operators.video.testing_streams import FFMPEG
from clara_stream.operators.video.v4l2_relay import v4l2_input_args

from conftest import missing_peer

SOURCE = "testsrc2=size=320x240:rate=30"


@pytest.fixture
def device_node(peer) -> Path:  # type: ignore[no-untyped-def]
    """``/dev/video<N>``: a character device that is not a capture device (the null device's numbers)."""
    peer(FFMPEG, ["-version"], "ffmpeg version")
    node = Path(f"/dev/video{90 + os.getpid() % 9}")
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(1, 3))
    except (PermissionError, FileExistsError) as exc:
        missing_peer(f"a device node to stand in for a camera ({exc})")
    yield node
    node.unlink(missing_ok=True)


def test_v4l2_options_become_the_v4l2_inputs_own_and_unknown_ones_are_refused() -> None:
    assert v4l2_input_args("/dev/video0", {"video_size": "1280x720", "framerate": 30, "input_format": "mjpeg",
                                           "probesize": "300000"}) == [
        "-f", "v4l2", "-video_size", "1280x720", "-framerate", "30", "-input_format", "mjpeg", "-i", "/dev/video0"]
    with pytest.raises(ValueError, match=r"expected options among .*; got \['rtsp_transport'\]"):
        v4l2_input_args("/dev/video0", {"rtsp_transport": "tcp"})


def test_a_device_that_is_not_a_camera_is_refused_by_the_v4l2_input_in_one_line(device_node: Path) -> None:
    """The system FFmpeg's v4l2 demuxer asks the node for its capabilities (VIDIOC_QUERYCAP) and is
    refused: the error names the device and FFmpeg's reason, and no relay is left running."""
    src = LiveSource(str(device_node), retries=0, timeout_s=5)
    why = rf"expected a V4L2 capture device; got .*VIDIOC_QUERYCAP.*\[{device_node}\]"
    with pytest.raises(LiveInputError, match=why):
        src.open()
    assert src._relay is None


def test_a_camera_through_the_relay_decodes_live_with_its_options(device_node: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The camera is testsrc2 in YUYV at its own 30 fps clock (``-re``), behind the real relay and
    the live loop: rawvideo accepted, the device options handed to the v4l2 input, each frame equal
    to FFmpeg's own rgb24 of the same source, the frame rate read, and the relay stopped at close."""
    asked: list[dict] = []

    def camera(device: str, options: dict) -> list[str]:
        asked.append({"device": device, **options})
        return ["-re", "-f", "lavfi", "-i", f"{SOURCE},format=yuyv422"]

    monkeypatch.setattr(live_mod, "v4l2_input_args", camera)
    src = LiveSource(str(device_node), retries=0, timeout_s=10, queue_size=64,
                     options={"video_size": "320x240", "framerate": "30", "input_format": "yuyv422"})
    try:
        src.open()
        frames = [src.read(timeout_s=10) for _ in range(6)]
        relay = src._relay
        assert relay is not None and relay.process.poll() is None
    finally:
        src.close()
    assert relay.process.poll() is not None
    assert asked == [{"device": str(device_node), "video_size": "320x240", "framerate": "30",
                      "input_format": "yuyv422"}]
    assert src.info.codec == "rawvideo" and (src.info.width, src.info.height) == (320, 240) and src.info.rate == 30
    raw = subprocess.run([str(FFMPEG), "-v", "error", "-f", "lavfi", "-i", f"{SOURCE},format=yuyv422", "-frames:v",
                          "12", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(12, 240, 320, 3).astype(np.int16)
    diffs = [np.abs(f.rgb.astype(np.int16) - ref).mean(axis=(1, 2, 3)) for f in frames]
    for k, diff in enumerate(diffs):  # every frame from the first, in order: none dropped (no nobuffer probe loss)
        assert diff[k] < 3 and int(np.argmin(diff)) == k, (k, diff)


def test_the_v4l2_input_is_found_in_both_demuxer_listings() -> None:
    """FFmpeg 5 lists `` D  video4linux2,v4l2``; 6.1 on adds a device column: `` D d video4linux2,v4l2``."""
    from clara_stream.operators.video.v4l2_relay import lists_v4l2

    assert lists_v4l2(" D  video4linux2,v4l2    Video4Linux2 device grab\n")
    assert lists_v4l2(" D d video4linux2,v4l2    Video4Linux2 device grab\n")
    assert not lists_v4l2(" D  vobsub          VobSub subtitle format\n D d lavfi   Libavfilter virtual input device\n")


def _fifo_camera(monkeypatch, fifo: Path) -> None:  # type: ignore[no-untyped-def]
    """The device's frames come from a FIFO the test writes: raw YUYV 320×240 at 30 fps."""
    os.mkfifo(fifo)
    monkeypatch.setattr(live_mod, "v4l2_input_args", lambda device, options: [
        "-f", "rawvideo", "-video_size", "320x240", "-pixel_format", "yuyv422", "-framerate", "30", "-i", str(fifo)])


def test_a_device_without_signal_fails_the_open_after_the_timeout(device_node: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Nothing ever comes from the device: PyAV's timeout does not cover a pipe, so without the
    relay's watchdog open() would wait forever. It fails naming the silence, and no relay remains."""
    _fifo_camera(monkeypatch, tmp_path / "cam")
    src = LiveSource(str(device_node), retries=0, timeout_s=1.5)
    done = threading.Event()

    def silent_camera() -> None:
        with open(tmp_path / "cam", "wb"):
            done.wait(30)  # open, and nothing written

    threading.Thread(target=silent_camera, daemon=True).start()
    try:
        with pytest.raises(LiveInputError, match=rf"got no data from the device for 1.5 s .*\[{device_node}\]"):
            src.open()
    finally:
        done.set()
    assert src._relay is None


def test_a_device_that_goes_quiet_mid_stream_ends_the_stream_named_after_its_frames(
        device_node: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Eight frames, then the writer holds the FIFO open and sends nothing: after timeout_s the
    stream counts as lost (as a network stream's silence does) and, with no retries left, the run
    gets one error naming the silence, after the frames that came."""
    _fifo_camera(monkeypatch, tmp_path / "cam")
    frame = np.full((240, 320, 2), 128, np.uint8).tobytes()
    done = threading.Event()

    def camera() -> None:
        with open(tmp_path / "cam", "wb") as f:
            for _ in range(8):
                f.write(frame)
                f.flush()
            done.wait(30)  # quiet, with the device still open

    threading.Thread(target=camera, daemon=True).start()
    src = LiveSource(str(device_node), retries=0, timeout_s=1.5, queue_size=16)
    got = 0
    try:
        src.open()
        with pytest.raises(LiveInputError, match=r"expected the stream to come back within 0 retries; got no data "
                                                 r"from the device for 1.5 s"):
            while src.read(timeout_s=20) is not None:
                got += 1
    finally:
        done.set()
        src.close()
    assert got == 8 and src._relay is None  # every frame that came, then the error


@pytest.mark.parametrize("processes", ["true", "false"])
def test_the_multi_stream_app_hands_its_options_to_each_v4l2_input(device_node: Path, tmp_path: Path,
                                                                    processes: str) -> None:
    """``batcher.options`` of ``video_detection_multi`` reach every device's v4l2 input, in the codec
    workers and on threads: an option the v4l2 input does not take is refused by name, and device
    options it takes get as far as the device (which, not being a camera, is refused by FFmpeg)."""
    import subprocess
    import sys

    def run(options: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection_multi",
               "--input", str(device_node), "--input", str(device_node), "--output", str(tmp_path / "out"),
               "--set", f"batcher.processes={processes}", "--set", "batcher.retries=0",
               "--set", f"batcher.options={options}"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    unknown = run("{rtsp_transport: tcp}")
    assert unknown.returncode != 0 and "expected options for a V4L2 device among" in unknown.stderr \
        and "['rtsp_transport']" in unknown.stderr, unknown.stderr[-2000:]
    bad = run("{video_size: notasize}")  # FFmpeg's v4l2 input refuses the value before it asks the device
    assert bad.returncode != 0 and "notasize" in bad.stderr and "VIDIOC_QUERYCAP" not in bad.stderr, bad.stderr[-2000:]
    good = run("{video_size: 320x240, framerate: 30}")
    assert good.returncode != 0 and "VIDIOC_QUERYCAP" in good.stderr, good.stderr[-2000:]
    assert not list((tmp_path / "out").rglob("*.mp4"))  # refused before any output
