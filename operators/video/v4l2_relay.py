"""V4L2 capture through the system FFmpeg when PyAV's own FFmpeg has no v4l2 input.

PyAV's wheels bundle an FFmpeg without libavdevice's v4l2 demuxer, so ``av.open("/dev/video0")``
cannot work on the capture cards and endoscope dongles of AGX/IGX kits. Debian's ``ffmpeg`` has
it: :class:`FfmpegRelay` runs ``/usr/bin/ffmpeg -f v4l2 … -i /dev/videoN`` and copies the device's
own frames (raw YUYV/NV12, or MJPEG: no re-encode) into NUT on a pipe, flushed per packet, which
PyAV opens as ``pipe:<fd>`` and decodes with the same live loop as any stream. The relay's exit
text (no such device, busy, not a capture device, format refused) becomes the error.
"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

FFMPEG = Path("/usr/bin/ffmpeg")
V4L2_OPTIONS = ("video_size", "framerate", "input_format", "pixel_format", "standard", "timestamps", "ts")
V4L2_CODECS = ("rawvideo", "mjpeg")  # what V4L2 capture devices deliver
_STDERR_KEEP = 4096


class RelayError(OSError):
    """The relay could not start or stopped: its own words."""


def v4l2_input_args(device: str, options: dict[str, Any]) -> list[str]:
    """``-f v4l2`` with the device options FFmpeg's v4l2 input takes (``video_size=1280x720``,
    ``framerate=30``, ``input_format=mjpeg``…), then ``-i device``. Other keys are refused."""
    unknown = sorted(set(options) - set(V4L2_OPTIONS) - {"fflags", "probesize", "analyzeduration"})
    if unknown:
        raise ValueError(f"v4l2: expected options among {V4L2_OPTIONS}; got {unknown} [{device}]")
    args = ["-f", "v4l2"]
    for key in V4L2_OPTIONS:
        if options.get(key) not in (None, ""):
            args += [f"-{key}", str(options[key])]
    return [*args, "-i", str(device)]


def lists_v4l2(demuxers: str) -> bool:
    """Whether ``ffmpeg -demuxers`` lists the v4l2 input: `` D  video4linux2,v4l2 …`` (FFmpeg 5) or
    `` D d video4linux2,v4l2 …`` (FFmpeg 6.1 on, with a device column)."""
    return any("video4linux2,v4l2" in line.split()[1:3] for line in demuxers.splitlines())


def system_ffmpeg_has_v4l2(exe: Path = FFMPEG) -> bool:
    """Whether the pinned system FFmpeg runs and has the v4l2 input."""
    try:
        out = subprocess.run([str(exe), "-hide_banner", "-demuxers"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and lists_v4l2(out.stdout)


def check_device(device: str, *, pyav_has_v4l2: bool, system_has_v4l2: Any) -> bool:
    """A V4L2 device must exist and be a character device, and an FFmpeg must have the v4l2 input:
    True for PyAV's own, False for the system FFmpeg's (through :class:`FfmpegRelay`); otherwise
    RelayError with what was found. ``system_has_v4l2``: a callable, asked only when needed."""
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise RelayError(exc.strerror or str(exc)) from exc
    if not stat.S_ISCHR(mode):
        raise RelayError("a non-device file")
    if pyav_has_v4l2:
        return True
    if not system_has_v4l2():
        raise RelayError(f"PyAV's bundled FFmpeg without the v4l2 input and no {FFMPEG} with it "
                         "(apt-get install ffmpeg)")
    return False


class FfmpegRelay:
    """``ffmpeg <input args> -c:v copy -an -f nut pipe:1``: the input's frames, as they are, on a pipe.

    ``fd`` is the read end for ``av.open(f"pipe:{fd}", format="nut")``; :meth:`close` stops the
    process (SIGTERM, then SIGKILL) and closes the pipe; :meth:`why` is its last stderr text.
    A pipe is not interrupted by PyAV's timeout, so a watchdog ends the relay after ``silence_s``
    without data (a camera with no signal): the reader then sees the pipe end, and the live loop
    reconnects or fails, as for a network stream that went quiet. The relay runs in a session of its
    own: Ctrl-C reaches the app, which stops it in order.
    """

    def __init__(self, input_args: list[str], *, silence_s: float = 5.0, exe: Path = FFMPEG,
                 owner: str = "FfmpegRelay"):
        if silence_s <= 0:
            raise ValueError(f"{owner}: expected silence_s > 0; got {silence_s}")
        self.owner, self.silence_s, self.silent = owner, float(silence_s), False
        cmd = [str(exe), "-hide_banner", "-nostdin", "-loglevel", "error", *input_args,
               "-map", "0:v:0", "-c:v", "copy", "-an", "-f", "nut", "-flush_packets", "1", "pipe:1"]
        try:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise RelayError(f"{owner}: expected {exe} to start; got {exc.strerror}") from exc
        self.fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        self._stderr = b""
        self._reader = threading.Thread(target=self._drain, name=f"{owner}-stderr", daemon=True)
        self._reader.start()
        self._closing = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"{owner}-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """End the relay after ``silence_s`` with nothing to read (data waiting unread is not silence)."""
        while not self._closing.is_set() and self.process.poll() is None:
            try:
                ready, _, _ = select.select([self.fd], [], [], self.silence_s)
            except (OSError, ValueError):  # the pipe was closed: the relay is done
                return
            if not ready:
                if not self._closing.is_set() and self.process.poll() is None:
                    self.silent = True
                    self.process.terminate()
                    try:  # FFmpeg blocked in a device read only notices SIGTERM once the read returns
                        self.process.wait(timeout=1.0)
                    except subprocess.TimeoutExpired:
                        self.process.kill()
                return
            self._closing.wait(0.02)  # readable until read: look again shortly, do not spin

    def _drain(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self._stderr = (self._stderr + line)[-_STDERR_KEEP:]

    def why(self, wait_s: float = 2.0) -> str:
        """The relay's own last error line(s), once it has exited (waits up to ``wait_s``)."""
        if self.silent:
            return f"no data from the device for {self.silence_s:g} s (no signal?)"
        try:
            self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return f"no answer from {FFMPEG} within {wait_s:g} s"
        self._reader.join(timeout=wait_s)
        text = self._stderr.decode("utf-8", "replace").strip()
        lines = [ln.split("] ", 1)[-1] for ln in text.splitlines() if ln.strip()]
        if lines:
            return "; ".join(dict.fromkeys(lines[-3:]))
        return ("the device ended without a frame" if self.process.returncode == 0 else
                f"{FFMPEG} exited with code {self.process.returncode}")

    def terminate(self) -> None:
        """Stop the process only (the reader then sees the pipe end); :meth:`close` after the reader is done."""
        if self.process.poll() is None:
            self.process.terminate()

    def close(self) -> None:
        """Stop the process, then close the pipes once the stderr reader and the watchdog are done."""
        self._closing.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._reader.join(timeout=2)
        self._watchdog.join(timeout=2)
        for f in (self.process.stdout, self.process.stderr):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def __del__(self) -> None:  # a relay is never left running by a dropped source
        try:
            if self.process.poll() is None:
                self.process.kill()
        except Exception:  # noqa: S110 - interpreter shutdown
            pass


__all__ = ["FFMPEG", "V4L2_CODECS", "V4L2_OPTIONS", "FfmpegRelay", "RelayError", "check_device", "lists_v4l2",
           "system_ffmpeg_has_v4l2", "v4l2_input_args"]
