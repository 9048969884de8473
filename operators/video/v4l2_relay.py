"""V4L2 capture through the system FFmpeg when PyAV's own FFmpeg has no v4l2 input.

PyAV's wheels bundle an FFmpeg without libavdevice's v4l2 demuxer, so ``av.open("/dev/video0")``
cannot work on the capture cards and endoscope dongles of AGX/IGX kits. Debian's ``ffmpeg`` has
it: :class:`FfmpegRelay` runs ``/usr/bin/ffmpeg -f v4l2 … -i /dev/videoN`` and copies the device's
own frames (raw YUYV/NV12, or MJPEG: no re-encode) into NUT on a pipe, flushed per packet, which
PyAV opens as ``pipe:<fd>`` and decodes with the same live loop as any stream. The relay's exit
text (no such device, busy, not a capture device, format refused) becomes the error.
"""

from __future__ import annotations

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


def system_ffmpeg_has_v4l2(exe: Path = FFMPEG) -> bool:
    """Whether the pinned system FFmpeg is FFmpeg and has the v4l2 input."""
    try:
        out = subprocess.run([str(exe), "-hide_banner", "-demuxers"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(line.split()[1:2] == ["video4linux2,v4l2"] for line in out.stdout.splitlines())


class FfmpegRelay:
    """``ffmpeg <input args> -c:v copy -an -f nut pipe:1``: the input's frames, as they are, on a pipe.

    ``fd`` is the read end for ``av.open(f"pipe:{fd}", format="nut")``; :meth:`close` stops the
    process (SIGTERM, then SIGKILL) and closes the pipe; :meth:`why` is its last stderr text.
    """

    def __init__(self, input_args: list[str], *, exe: Path = FFMPEG, owner: str = "FfmpegRelay"):
        self.owner = owner
        cmd = [str(exe), "-hide_banner", "-nostdin", "-loglevel", "error", "-fflags", "+nobuffer", *input_args,
               "-map", "0:v:0", "-c:v", "copy", "-an", "-f", "nut", "-flush_packets", "1", "pipe:1"]
        try:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)
        except OSError as exc:
            raise RelayError(f"{owner}: expected {exe} to start; got {exc.strerror}") from exc
        self.fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        self._stderr = b""
        self._reader = threading.Thread(target=self._drain, name=f"{owner}-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self._stderr = (self._stderr + line)[-_STDERR_KEEP:]

    def why(self, wait_s: float = 2.0) -> str:
        """The relay's own last error line(s), once it has exited (waits up to ``wait_s``)."""
        try:
            self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return "the relay is still running"
        self._reader.join(timeout=wait_s)
        text = self._stderr.decode("utf-8", "replace").strip()
        lines = [ln.split("] ", 1)[-1] for ln in text.splitlines() if ln.strip()]
        return "; ".join(dict.fromkeys(lines[-3:])) or f"the relay exited with code {self.process.returncode}"

    def terminate(self) -> None:
        """Stop the process only (the reader then sees the pipe end); :meth:`close` after the reader is done."""
        if self.process.poll() is None:
            self.process.terminate()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for f in (self.process.stdout, self.process.stderr):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        self._reader.join(timeout=2)

    def __del__(self) -> None:  # a relay is never left running by a dropped source
        try:
            if self.process.poll() is None:
                self.process.kill()
        except Exception:  # noqa: S110 - interpreter shutdown
            pass


__all__ = ["FFMPEG", "V4L2_CODECS", "FfmpegRelay", "RelayError", "system_ffmpeg_has_v4l2", "v4l2_input_args"]
