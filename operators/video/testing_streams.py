"""Real stream peers for the live-video tests and benchmark: ffmpeg as sender/receiver, rtsp-server-perl.

Everything binds 127.0.0.1 on free ports and is stopped by pid. Waits are on state (a port
listening, a process gone), never fixed sleeps.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

FFMPEG, FFPROBE, RTSP_SERVER = "/usr/bin/ffmpeg", "/usr/bin/ffprobe", "/usr/bin/rtsp-server-perl"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``cond`` until true; fail naming ``what`` (a state, not a duration, is what we wait for)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def listening(port: int) -> bool:
    """A TCP listener on 127.0.0.1:port (read from /proc: connecting would consume a one-client server)."""
    hexport = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(r.split()[1].endswith(hexport) and r.split()[3] == "0A" for r in rows):
            return True
    return False


def _connected(port: int) -> bool:
    """An established TCP connection to 127.0.0.1:port (a listener that already took its one client)."""
    hexport = f":{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1].endswith(hexport) and r.split()[3] == "01" for r in rows)


def ffmpeg(ffmpeg_exe: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(ffmpeg_exe), "-hide_banner", "-loglevel", "error", "-nostdin", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rtsp_server(server_exe: Path) -> tuple[subprocess.Popen, int, int]:
    """rtsp-server-perl on loopback: (process, client port, source port); wait on ``listening``."""
    client, source = free_port(), free_port()
    proc = subprocess.Popen([str(server_exe), "--clientport", str(client), "--serverport", str(source),
                             "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                             "--rtp_start_port", str(20000 + client % 20000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, client, source


def send_tcp(ffmpeg_exe: Path, video: Path, port: int, *, extra: Sequence[str] = (), loop: bool = False,
             codec: Sequence[str] = ("-c", "copy")) -> subprocess.Popen:
    """ffmpeg serving ``video`` as MPEG-TS at its own rate on tcp://127.0.0.1:port (one client), listening."""
    loop_args = ["-stream_loop", "-1"] if loop else []
    proc = ffmpeg(ffmpeg_exe, "-re", *loop_args, "-i", str(video), *codec, *extra, "-f", "mpegts",
                  f"tcp://127.0.0.1:{port}?listen=1")
    # listening, or already past it: a client waiting to reconnect may be accepted at once
    wait_until(lambda: listening(port) or proc.poll() is not None or _connected(port), f"ffmpeg on {port}")
    return proc


def receive_tcp(ffmpeg_exe: Path, port: int, out: Path) -> subprocess.Popen:
    """ffmpeg listening on tcp://127.0.0.1:port for one MPEG-TS sender, copying what comes to ``out``."""
    proc = ffmpeg(ffmpeg_exe, "-y", "-i", f"tcp://127.0.0.1:{port}?listen=1", "-c", "copy", str(out))
    wait_until(lambda: listening(port) or proc.poll() is not None, f"ffmpeg receiver on {port}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def probe_stream(ffprobe_exe: Path, path: Path) -> dict[str, str]:
    """ffprobe's own count of decoded frames and its rates (the oracle for a live output)."""
    out = subprocess.run([str(ffprobe_exe), "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,nb_read_frames,r_frame_rate,avg_frame_rate,width,height",
                          "-of", "default=noprint_wrappers=1", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def udp_bound(port: int) -> bool:
    """A UDP socket bound to 127.0.0.1:port (or any address) — the receiver is ready."""
    hexport = f":{port:04X}"
    return any(r.split()[1].endswith(hexport) for r in Path("/proc/net/udp").read_text().splitlines()[1:])
