"""V4L2 capture through the system FFmpeg (PyAV's own FFmpeg has no v4l2 input).

No capture device exists on these machines (no kernel modules: no vivid, no v4l2loopback), so the
device is stood in for twice, each time by something real: a character device node that is not a
capture device (the system FFmpeg's own v4l2 demuxer must refuse it, in one line), and FFmpeg's
``testsrc2`` in the camera's raw YUYV format at 30 fps behind the same relay (the frames must equal
FFmpeg's own rgb24 rendering of that source). What a real camera adds — its ioctls — is FFmpeg's."""

from __future__ import annotations

import os
import subprocess
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
    first = int(np.argmin(diffs[0]))  # the probe may take the camera's first frame or two, as a live join does
    assert first <= 2, diffs[0]
    for k, diff in enumerate(diffs):  # then every frame, in order, none dropped or repeated
        assert diff[first + k] < 3 and int(np.argmin(diff)) == first + k, (k, diff)
