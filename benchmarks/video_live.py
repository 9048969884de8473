"""Live video benchmark: glass-to-glass latency on a loopback stream, and 4 streams batched vs 4 processes.

**Glass to glass.** A sender process plays a live 720p30 camera: every frame carries its capture
time (``time.perf_counter()``, CLOCK_MONOTONIC, shared by all processes) as a 40-bit barcode in
a bottom strip, is encoded (libx264 ultrafast/zerolatency) and sent as MPEG-TS over TCP at 30 fps.
The app (``video_detection --input tcp://…`` with ``encoder.live_url=tcp://…``) detects, draws and
sends its annotated stream to a receiver in this process, which stamps each encoded packet on
arrival, decodes it and reads the barcode: latency = arrival − capture, every hop, both codecs
and the network included. The anchor, in the same rounds: a relay with no model (LiveSource →
VideoSink, the same codecs and settings), and the transport floor with no decode (``copy``).
With ``--rtsp`` the same over RTSP (RTP/UDP through rtsp-server-perl): app, relay, and a one-hop
floor (the receiver reads the sender's stream from the server). Every receiver reads unparsed,
as the app's source does (MPEG-TS: one PES per frame; RTSP: whole NAL units joined by
``rtp_nal``), so no hop is charged a frame of parser delay. Rounds alternate app / anchors.

**Multi-stream.** N (``--streams 1,2,4``) different 640×360 clips, looped to ``--multi-frames``
each, unpaced: one ``video_detection_multi`` run (one batched inference per tick; its codec worker
processes, one per stream, counted in its CPU: their forkserver is reaped at the end) against N
concurrent ``video_detection`` processes, each with its app's shipped settings and the same
outputs (an MP4 and a KITTI file per frame per stream); aggregate fps = all frames / wall time
from launch to the last exit (process start included, the same for both), the CPU time per frame
of the process tree, and each stream's glass-to-glass p50/p99 from the runs' own
``latency.json`` (``_video_live_multi.py``). Rounds alternate.

    python benchmarks/video_live.py [--frames 300] [--repeats 2] [--multi-frames 300] [--streams 1,2,4]
                                    [--rtsp] [--skip-glass] [--skip-multi] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BITS, BLOCK, STRIP = 40, 32, 32  # barcode: 40 blocks of 32×32 px in the bottom strip
WARMUP = 15  # frames left out (first inference, encoder start, connection)
LOW_DELAY = {"probesize": "200000", "analyzeduration": "200000"}  # a probe's backlog would be charged to all
# MPEG-TS hops: the sender writes each frame's PES length, the receiver takes packets unparsed — as
# the app's source and live output do (live_uri.input_options): FFmpeg's parser would hold each frame
# until the next one starts, a frame interval per hop charged to the measurement itself.
TS_OUT = {"flush_packets": "1", "max_delay": "0", "omit_video_pes_length": "0"}
TS_IN = {**LOW_DELAY, "fflags": "+noparse", "fpsprobesize": "3"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stamp(rgb: np.ndarray, us: int) -> None:
    """Write ``us`` (40 bits) as black/white blocks into the bottom strip, in place."""
    rgb[-STRIP:] = 0
    for b in range(BITS):
        if (us >> b) & 1:
            rgb[-STRIP:, b * BLOCK:(b + 1) * BLOCK] = 255


def read_stamp(luma: np.ndarray) -> int:
    """The barcode back: the median of each block's centre, so a drawn box line cannot flip a bit."""
    q = BLOCK // 4
    return sum(1 << b for b in range(BITS)
               if np.median(luma[-STRIP + q:-q, b * BLOCK + q:(b + 1) * BLOCK - q]) > 127)


def _luma(frame: Any) -> np.ndarray:
    """The Y plane as (H, W) without a colour conversion (the receiver must not fall behind)."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]


def sender(target: str, frames: int, fps: int, scene: Path) -> None:
    """The camera: scene frames (looped), capture-stamped, encoded and sent in real time.

    ``target``: a TCP port (MPEG-TS, listening for one client) or an ``rtsp://`` URL to publish to.
    """
    import av
    from clara_stream.operators.video.source import VideoSource

    with VideoSource(scene) as src:
        pictures = [f.rgb.copy() for f in src]
    if target.startswith("rtsp://"):
        out = av.open(target, "w", format="rtsp", options={"rtsp_transport": "udp"})
    else:
        out = av.open(f"tcp://127.0.0.1:{target}?listen=1&tcp_nodelay=1", "w", format="mpegts", options=TS_OUT)
    st = out.add_stream("libx264", rate=fps)
    st.width, st.height, st.pix_fmt = pictures[0].shape[1], pictures[0].shape[0], "yuv420p"
    st.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"}
    st.gop_size = fps
    t0 = time.perf_counter()
    try:
        for i in range(frames):
            due = t0 + i / fps
            time.sleep(max(0.0, due - time.perf_counter()))
            rgb = pictures[i % len(pictures)].copy()
            stamp(rgb, int(time.perf_counter() * 1e6) & ((1 << BITS) - 1))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
    except av.error.BrokenPipeError:  # the round took its frames and closed the connection: done
        pass
    finally:
        out.close()


def _play_rtsp(url: str) -> Any:
    """Open an RTSP stream once its publisher is in (the server refuses it before): retry until then.

    Unparsed, as the app's source reads it (``rtp_nal``): FFmpeg's parser would hold each frame
    until the next one's first packet, a frame interval charged to the measurement itself.
    """
    import av

    deadline = time.monotonic() + 120
    while True:
        try:
            return av.open(url, "r", timeout=30, options={**LOW_DELAY, "rtsp_transport": "udp", "fflags": "+noparse"})
        except av.FFmpegError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def receiver(source: int | str, result: list[float], ready: threading.Event, limit: int = 0) -> None:
    """Receive the annotated stream (TCP port listened on, or an RTSP URL); per frame: arrival − capture (s).

    ``limit``: stop after this many frames (0: at the stream's end)."""
    import av

    ready.set()
    if isinstance(source, str):
        c = _play_rtsp(source)
    else:
        c = av.open(f"tcp://127.0.0.1:{source}?listen=1", "r", format="mpegts", timeout=120, options=TS_IN)
    stream = c.streams.video[0]
    nal = None
    if isinstance(source, str):  # whole NAL units to a decoder that ends a picture at its last slice
        from clara_stream.operators.video.rtp_nal import NalAssembler

        nal = NalAssembler()
        stream.codec_context.flags2 |= av.codec.context.Flags2.chunks
        stream.thread_count = 1
    else:
        stream.thread_type = "AUTO"  # frame threads delay the output, not the arrival stamp
    arrivals: dict[int, float] = {}  # by pts (the last packet's): a frame-threaded decoder outputs late

    def frames(packet: Any) -> list[Any]:
        if nal is None:
            return packet.decode()
        out = []
        for data, pts in nal.push(bytes(packet), packet.pts) if packet.size else nal.flush():
            p = av.Packet(data)
            p.pts = p.dts = pts
            p.time_base = packet.time_base
            out += stream.codec_context.decode(p)
        return out

    try:
        for packet in c.demux(stream):
            if packet.pts is not None:
                arrivals[packet.pts] = time.perf_counter()
            for frame in frames(packet):
                arrived = arrivals.pop(frame.pts, None)
                if arrived is None:
                    continue
                sent_us = read_stamp(_luma(frame))
                now_us = int(arrived * 1e6) & ((1 << BITS) - 1)
                result.append(((now_us - sent_us) % (1 << BITS)) / 1e6)
            if limit and len(result) >= limit:
                break
    except av.FFmpegError:  # the stream's end: over RTSP the server goes away with its publisher
        pass
    finally:
        c.close()


def _start_sender(port: int | str, frames: int, scene: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--_send", str(port), "--frames", str(frames),
                             "--scene", str(scene)])


def _wait_listening(port: int) -> None:
    hexport = f":{port:04X}"
    while not any(r.split()[1].endswith(hexport) and r.split()[3] == "0A"
                  for r in Path("/proc/net/tcp").read_text().splitlines()[1:]):
        time.sleep(0.01)


def glass_round(kind: str, frames: int, scene: Path, work: Path) -> dict[str, Any]:
    """One round: sender → (app | relay) → receiver; latency percentiles after the warm-up."""
    from clara_stream.operators.video.stats import latency_summary

    src_port, out_port, lat, ready = _port(), _port(), [], threading.Event()
    rx = threading.Thread(target=receiver, args=(out_port, lat, ready), daemon=True)
    rx.start()
    ready.wait()
    _wait_listening(out_port)
    snd = _start_sender(src_port, frames + 90, scene)  # slack: the run stops at `frames`, drops or not
    _wait_listening(src_port)
    extra: dict[str, Any] = {}
    try:
        if kind == "app":
            cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input",
                   f"tcp://127.0.0.1:{src_port}", "--output", str(work / "app"), "--set",
                   f"decoder.max_frames={frames}", "--set", f"encoder.live_url=tcp://127.0.0.1:{out_port}"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise RuntimeError(done.stderr)
            summary = json.loads((work / "app" / "latency.json").read_text())
            extra = {"app_own_p50_ms": summary["latency_ms"].get("p50_ms"),
                     "app_own_p99_ms": summary["latency_ms"].get("p99_ms"),
                     "dropped": summary["input"].get("dropped")}
        elif kind == "copy":  # the floor: sender's encode, both sockets, receiver's demux; no decode here
            import av

            with av.open(f"tcp://127.0.0.1:{src_port}", "r", options=TS_IN) as i, \
                    av.open(f"tcp://127.0.0.1:{out_port}?tcp_nodelay=1", "w", format="mpegts", options=TS_OUT) as o:
                st = o.add_stream_from_template(i.streams.video[0])
                n = 0
                for pkt in i.demux(i.streams.video[0]):
                    if pkt.dts is None:
                        continue
                    pkt.stream = st
                    o.mux(pkt)
                    n += 1
                    if n >= frames:
                        break
        else:
            from clara_stream.operators.video.live import LiveSource
            from clara_stream.operators.video.sink import VideoSink

            with LiveSource(f"tcp://127.0.0.1:{src_port}", retries=0) as s, \
                    VideoSink(f"tcp://127.0.0.1:{out_port}", preset="ultrafast", tune="zerolatency") as sink:
                for _ in range(frames):
                    f = s.read(timeout_s=30)
                    sink.write(f.rgb, f.info, read_at=f.read_at)
                extra = {"dropped": s.dropped}
    finally:
        snd.kill()  # it may still be sending its slack
        snd.wait(timeout=60)
        rx.join(timeout=60)
    return {**latency_summary(lat[WARMUP:]), **extra}


def glass_round_rtsp(kind: str, frames: int, scene: Path, work: Path) -> dict[str, Any]:
    """As glass_round, over RTSP (RTP/UDP through rtsp-server-perl); ``floor``: the receiver reads the
    sender's stream from the server itself (one RTSP hop; the app and the relay have two)."""
    from clara_stream.operators.video.stats import latency_summary

    client, source = _port(), _port()
    server = subprocess.Popen(["/usr/bin/rtsp-server-perl", "--clientport", str(client), "--serverport", str(source),
                               "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                               "--rtp_start_port", str(20000 + client % 20000)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lat: list[float] = []
    try:
        _wait_listening(client), _wait_listening(source)
        snd = _start_sender(f"rtsp://127.0.0.1:{source}/in", frames + 90, scene)
        rx = threading.Thread(target=receiver, args=(f"rtsp://127.0.0.1:{client}/{'in' if kind == 'floor' else 'out'}",
                                                     lat, threading.Event(), frames if kind == "floor" else 0),
                              daemon=True)
        rx.start()
        src_url, out_url = f"rtsp://127.0.0.1:{client}/in", f"rtsp://127.0.0.1:{source}/out"
        extra: dict[str, Any] = {}
        if kind == "floor":
            rx.join(timeout=120)
        elif kind == "app":
            cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", src_url,
                   "--output", str(work / "app_rtsp"), "--set", "decoder.transport=udp", "--set",
                   "decoder.retries=40", "--set", f"decoder.max_frames={frames}", "--set",
                   f"encoder.live_url={out_url}"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise RuntimeError(done.stderr)
            extra = {"dropped": json.loads((work / "app_rtsp" / "latency.json").read_text())["input"]["dropped"]}
        else:
            from clara_stream.operators.video.live import LiveSource
            from clara_stream.operators.video.sink import VideoSink

            src = LiveSource(src_url, transport="udp", retries=40, backoff_s=0.05, backoff_max_s=0.2)
            for _ in range(200):  # the server knows /in once the sender's ANNOUNCE is in
                try:
                    src.open()
                    break
                except ValueError:
                    time.sleep(0.05)
            with src, VideoSink(out_url, preset="ultrafast", tune="zerolatency") as sink:
                for _ in range(frames):
                    f = src.read(timeout_s=30)
                    sink.write(f.rgb, f.info, read_at=f.read_at)
                extra = {"dropped": src.dropped}
        snd.kill()
        snd.wait(timeout=60)
        rx.join(timeout=60)
    finally:
        server.kill()
        server.wait(timeout=30)
    return {**latency_summary(lat[WARMUP:]), **extra}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="live frames per glass-to-glass round")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--multi-frames", type=int, default=300, help="frames per stream in the multi-stream rounds")
    ap.add_argument("--skip-multi", action="store_true")
    ap.add_argument("--skip-glass", action="store_true")
    ap.add_argument("--streams", default="4", help="comma-separated stream counts for the multi rounds, e.g. 1,2,4")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_send", help=argparse.SUPPRESS)
    ap.add_argument("--rtsp", action="store_true", help="also glass-to-glass over RTSP/RTP (rtsp-server-perl)")
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._send:
        sender(a._send, a.frames, 30, a.scene)
        return
    from _video_live_multi import multi_round, spread

    from clara_stream.samples.video import write_sample

    work = Path(tempfile.mkdtemp(prefix="video_live_"))
    scene = write_sample(work / "scene", seed=1, width=1280, height=720, frames=60, fps=30)["video"]
    clips = [write_sample(work / f"c{k}", seed=k, width=640, height=360, frames=90, fps=30)["video"]
             for k in range(max(int(n) for n in a.streams.split(",")))]
    counts = [int(n) for n in a.streams.split(",")]
    rounds: dict[str, list[dict[str, Any]]] = {"app": [], "relay": [], "copy": [], "app_rtsp": [], "relay_rtsp": [],
                                             "floor_rtsp": []}
    for n in counts:
        rounds[f"batched{n}"], rounds[f"separate{n}"] = [], []
    for r in range(a.repeats):
        for kind in (() if a.skip_glass else ("app", "relay", "copy") if r % 2 == 0 else ("copy", "relay", "app")):
            rounds[kind].append(glass_round(kind, a.frames, scene, work))
            print(kind, rounds[kind][-1], flush=True)
        for kind in (() if a.skip_glass or not a.rtsp else ("app", "relay", "floor") if r % 2 else
                     ("floor", "relay", "app")):
            rounds[f"{kind}_rtsp"].append(glass_round_rtsp(kind, a.frames, scene, work))
            print(f"{kind}_rtsp", rounds[f"{kind}_rtsp"][-1], flush=True)
        for n in ([] if a.skip_multi else counts):
            for kind in (("batched", "separate") if r % 2 == 0 else ("separate", "batched")):
                rounds[f"{kind}{n}"].append(multi_round(kind, clips[:n], a.multi_frames, work))
                print(f"{kind}{n}", rounds[f"{kind}{n}"][-1], flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{a.repeats} rounds, median [min–max]")
    rtsp = ["app_rtsp", "relay_rtsp", "floor_rtsp"] if a.rtsp else []
    for kind in ([] if a.skip_glass else ["app", "relay", "copy", *rtsp]):
        rs = rounds[kind]
        print(f"glass-to-glass 720p30 {kind:5s}: p50 {spread([x.get('p50_ms') for x in rs])} ms, "
              f"p99 {spread([x.get('p99_ms') for x in rs])} ms, dropped {[x.get('dropped') for x in rs]}")
    if not a.skip_glass:
        ratio = [x["p50_ms"] / y["p50_ms"] for x, y in zip(rounds["app"], rounds["relay"], strict=True)
                 if y.get("p50_ms")]
        print(f"app / no-model relay p50: {spread(ratio)}×  (target p99 ≤ 50 ms)")
        floor = [x["p50_ms"] / y["p50_ms"] for x, y in zip(rounds["app"], rounds["copy"], strict=True)
                 if y.get("p50_ms")]
        print(f"app / transport floor (copy) p50: {spread(floor)}×")
        if a.rtsp:
            rr = [x["p50_ms"] / y["p50_ms"] for x, y in zip(rounds["app_rtsp"], rounds["relay_rtsp"], strict=True)
                  if y.get("p50_ms")]
            print(f"rtsp app / no-model relay p50: {spread(rr)}×  (target p99 ≤ 50 ms)")
            rf = [x["p50_ms"] / y["p50_ms"] for x, y in zip(rounds["app_rtsp"], rounds["floor_rtsp"], strict=True)
                  if y.get("p50_ms")]
            print(f"rtsp app / one-hop floor (sender → server → receiver) p50: {spread(rf)}×")
    for n in ([] if a.skip_multi else counts):
        b, s = rounds[f"batched{n}"], rounds[f"separate{n}"]
        sp = [x["fps"] / y["fps"] for x, y in zip(b, s, strict=True)]
        ss = [x["sustained_fps"] / y["sustained_fps"] for x, y in zip(b, s, strict=True)]
        cp = [y["cpu_ms_per_frame"] / x["cpu_ms_per_frame"] for x, y in zip(b, s, strict=True)]
        print(f"{n} stream(s) 640x360: batched {spread([x['fps'] for x in b])} fps (stream p50 "
              f"{spread([x['stream_p50_ms'] for x in b])} ms, p99 max {spread([x['stream_p99_ms'] for x in b])} ms, "
              f"CPU {spread([x['cpu_ms_per_frame'] for x in b])} ms/frame on {spread([x['cores'] for x in b])} cores), "
              f"{n} process(es) {spread([x['fps'] for x in s])} fps (p50 {spread([x['stream_p50_ms'] for x in s])} "
              f"ms, p99 max {spread([x['stream_p99_ms'] for x in s])} ms, CPU "
              f"{spread([x['cpu_ms_per_frame'] for x in s])} ms/frame on {spread([x['cores'] for x in s])} cores); "
              f"batched / separate fps {spread(sp)}×" + (" (target ≥ 1.3×)" if n == 4 else "")
              + f", sustained (start-up left out) {spread([x['sustained_fps'] for x in b])} / "
              f"{spread([x['sustained_fps'] for x in s])} fps = {spread(ss)}×"
              + f", CPU per frame separate / batched {spread(cp)}×")
    if a.json:
        a.json.write_text(json.dumps(rounds, indent=2))


if __name__ == "__main__":
    main()
