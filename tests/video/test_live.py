"""Live video on real loopback streams: ffmpeg sends and receives, rtsp-server-perl serves RTSP.

Oracles: the sample's ground truth (detections), ffprobe (what a live output and the segments
hold), the sender's own frame count; nothing here times anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from clara_stream.operators.video.evaluate import evaluate_kitti
from clara_stream.operators.video.live import LiveInputError, LiveSource
from clara_stream.operators.video.testing_streams import (
    FFMPEG,
    FFPROBE,
    RTSP_SERVER,
    ffmpeg,
    free_port,
    listening,
    probe_stream,
    receive_tcp,
    rtsp_server,
    send_tcp,
    stop,
    wait_until,
)

from clara_stream.runtime import load_app


@pytest.fixture(scope="module")
def ff(peer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return {"ffmpeg": peer(FFMPEG, ["-version"], "ffmpeg version"), "ffprobe": peer(FFPROBE, ["-version"], "ffprobe")}


def test_tcp_mpegts_detects_like_the_file_and_serves_a_live_output(ff: dict, small_clip: dict, tmp_path: Path) -> None:
    """A live MPEG-TS stream in, annotated MPEG-TS out, segments recorded: all checked by outsiders.

    Fails if frames are lost or renumbered (KITTI vs ground truth by frame index), if the live
    output has another rate or frame count than ffprobe finds, or if segments do not rotate.
    """
    src_port, out_port = free_port(), free_port()
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], src_port)
    rx = receive_tcp(ff["ffmpeg"], out_port, tmp_path / "live.ts")
    try:
        app = load_app("video_detection", input=f"tcp://127.0.0.1:{src_port}", output=tmp_path / "out",
                       overrides=["decoder.queue_size=64", "decoder.max_frames=40",
                                  f"encoder.live_url=tcp://127.0.0.1:{out_port}", "encoder.segment_s=0.5"])
        app.run()
        rx.wait(timeout=60)  # the sink closed its connection: the receiver finishes its file
    finally:
        stop(sender), stop(rx)
    s = app.summary
    assert s["input"]["live"] is True and s["input"]["dropped"] == 0 and s["frames_written"] == 40
    score = evaluate_kitti(tmp_path / "out" / "kitti", small_clip["ground_truth"], iou_threshold=0.5)
    assert score.recall >= 0.75 and score.precision >= 0.9, score  # the file path's bar (test_app)
    live = probe_stream(ff["ffprobe"], tmp_path / "live.ts")
    assert live["codec_name"] == "h264" and int(live["nb_read_frames"]) == 40
    assert live["r_frame_rate"] == "25/1" and (live["width"], live["height"]) == ("320", "180")
    segments = sorted((tmp_path / "out" / "segments").glob("segment_*.mp4"))
    counts = [int(probe_stream(ff["ffprobe"], p)["nb_read_frames"]) for p in segments]
    # rotation at the first keyframe (every 12 frames) past each 0.5 s mark; each file decodes alone
    assert len(segments) >= 3 and sum(counts) == 40 and all(0 < c <= 25 for c in counts), counts


def test_cli_runs_rtsp_input_from_an_rtsp_server(ff: dict, peer, small_clip: dict, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`clara-stream run video_detection --input rtsp://127.0.0.1:PORT/live`: ffmpeg publishes to a real server.

    rtsp-server-perl relays RTP over UDP only, so this is the UDP transport; fails if the CLI
    mangles the URI (a Path turns rtsp:// into rtsp:/) or refuses it as a missing file.
    """
    server_exe = peer(RTSP_SERVER, ["--help"], "clientport")
    server, client, source = rtsp_server(server_exe)
    try:
        wait_until(lambda: listening(client) and listening(source), "rtsp-server-perl")
        pub = ffmpeg(ff["ffmpeg"], "-re", "-stream_loop", "-1", "-i", str(small_clip["video"]), "-c", "copy",
                     "-f", "rtsp", "-rtsp_transport", "udp", f"rtsp://127.0.0.1:{source}/live")
        try:
            cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input",
                   f"rtsp://127.0.0.1:{client}/live", "--output", str(tmp_path / "out"), "--set",
                   "decoder.transport=udp", "--set", "decoder.max_frames=30", "--set", "decoder.retries=20"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        finally:
            stop(pub)
    finally:
        stop(server)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "latency.json").read_text())
    assert summary["frames_written"] == 30 and summary["input"]["codec"] == "h264"
    assert summary["input"]["input"] == f"rtsp://127.0.0.1:{client}/live"


def test_reconnects_after_the_sender_is_killed_and_restarted(ff: dict, small_clip: dict) -> None:
    """SIGKILL the sender mid-stream, start a new one: frames go on, the reconnection is reported.

    Fails if a lost stream ends the source, if reconnection is not retried with backoff until the
    sender is back, or if frame indices go backwards after it.
    """
    port = free_port()
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], port, loop=True)
    src = LiveSource(f"tcp://127.0.0.1:{port}", queue_size=256, retries=50, backoff_s=0.05, backoff_max_s=0.2,
                     timeout_s=10)  # the kill is seen as the end of the stream: a short timeout only adds stalls
    frames, restarted = [], None
    try:
        src.open()
        while len(frames) < 10:
            frames.append(src.read(timeout_s=30))
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=10)
        wait_until(lambda: src.status == "reconnecting", "the source to notice the loss")
        restarted = send_tcp(ff["ffmpeg"], small_clip["video"], port, loop=True)
        wait_until(lambda: src.status == "connected", "the source to reconnect")
        while len(frames) < 10 + 20:
            frames.append(src.read(timeout_s=30))
    finally:
        src.close()
        stop(sender)
        if restarted is not None:
            stop(restarted)
    events = src.describe()["reconnects"]
    assert len(events) == 1 and events[0]["recovered"] is True and events[0]["attempts"] >= 1
    idx = [f.info.index for f in frames]
    assert all(b > a for a, b in zip(idx, idx[1:], strict=False))  # strictly increasing across the gap
    assert all(f.read_at <= f.decoded_at for f in frames)  # glass-to-glass starts no later than arrival


def test_a_source_gone_for_good_ends_with_a_clear_error_after_its_retries(ff: dict, small_clip: dict) -> None:
    port = free_port()
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], port)
    src = LiveSource(f"tcp://127.0.0.1:{port}", queue_size=256, retries=2, backoff_s=0.05, timeout_s=2)
    got = 0
    try:
        src.open()
        sender.wait(timeout=60)  # the sender sends its 40 frames and exits: nobody listens any more
        with pytest.raises(LiveInputError) as err:
            while src.read(timeout_s=30) is not None:
                got += 1
    finally:
        src.close(), stop(sender)
    assert got == 40  # every frame sent before the loss is delivered first
    msg = str(err.value)
    assert "expected the stream to come back within 2 retries" in msg and "Connection refused" in msg
    assert f"tcp://127.0.0.1:{port}" in msg and src.status == "failed"


def test_a_slow_consumer_drops_counted_frames_and_latency_stays_bounded(ff: dict, small_clip: dict) -> None:
    """A consumer slower than the stream (an injected 0.1 s per frame vs 25 fps): oldest frames go.

    Fails if the queue grows past its size (latency building up), if drops are not counted, or if
    a frame read late is an old one: with drop_oldest each read frame is among the newest decoded.
    """
    import time

    port = free_port()
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], port)
    src = LiveSource(f"tcp://127.0.0.1:{port}", queue_size=3, drop_policy="drop_oldest", retries=0, timeout_s=10)
    lag = []
    try:
        src.open()
        with pytest.raises(LiveInputError):
            while (f := src.read(timeout_s=30)) is not None:
                lag.append(src.decoded - 1 - f.info.index)  # frames decoded after this one when it is read
                time.sleep(0.1)  # the slowed model
    finally:
        src.close(), stop(sender)
    d = src.describe()
    assert d["decoded"] == 40 and d["dropped"] > 0 and d["queue_high_water"] <= 3
    assert d["decoded"] == d["dropped"] + len(lag)  # every frame either read or dropped, none lost silently
    assert max(lag) <= 3 + 1  # never more than the queue (+ a frame decoded meanwhile) behind the stream


@pytest.mark.parametrize("kind", ["wrong_port", "unreachable", "refused_codec", "not_video"])
def test_bad_live_input_is_one_clear_line_before_any_output(ff: dict, small_clip: dict, tmp_path: Path,
                                                            kind: str) -> None:
    port, sender = free_port(), None
    uri = f"tcp://127.0.0.1:{port}"
    if kind == "unreachable":
        uri = "tcp://192.0.2.1:9"  # TEST-NET-1: routed nowhere
    elif kind == "refused_codec":
        sender = send_tcp(ff["ffmpeg"], small_clip["video"], port, codec=("-c:v", "mpeg4"))
    elif kind == "not_video":
        # AAC (ADTS): named the same with or without FFmpeg's parser (low_delay turns it off for
        # MPEG-TS; unparsed, MPEG-1 layer II audio would be probed as mp3)
        sender = send_tcp(ff["ffmpeg"], small_clip["video"], port, codec=("-f", "lavfi", "-i", "sine=d=30",
                                                                          "-map", "1:a", "-c:a", "aac"))
    expected = {"wrong_port": "expected a reachable live video stream; got Connection refused",
                "unreachable": "expected a reachable live video stream; got",
                "refused_codec": "expected a video codec in ('h264', 'hevc'); got 'mpeg4'",
                "not_video": "expected a video stream; got none (audio aac)"}[kind]
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", uri,
           "--output", str(tmp_path / "out"), "--set", "decoder.timeout_s=2"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        if sender is not None:
            stop(sender)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and len(errors) == 1 and expected in errors[0] and uri in errors[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out" / "output.mp4").exists() and not list((tmp_path / "out").glob("kitti/*.txt"))


def test_srt_is_refused_with_the_reason() -> None:
    """PyAV's bundled FFmpeg has no libsrt: say so, instead of FFmpeg's bare 'Protocol not found'."""
    with pytest.raises(LiveInputError, match=r"got srt:// \(PyAV's bundled FFmpeg has no libsrt\)"):
        LiveSource("srt://127.0.0.1:9000").open()


def test_a_missing_v4l2_device_is_refused_naming_it(tmp_path: Path) -> None:
    """No capture device exists here (v4l2loopback needs a kernel module): the refusal is what runs."""
    with pytest.raises(LiveInputError, match=r"expected a V4L2 capture device; got No such file or directory "
                                             r"\[/dev/video97\]"):
        LiveSource("/dev/video97").open()
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", "/dev/video97",
           "--output", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "/dev/video97" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("muxer", ["mpegts", "rtp_mpegts"])
def test_udp_and_rtp_streams_are_received_in_order(ff: dict, small_clip: dict, muxer: str) -> None:
    """ffmpeg sends (looping) to a bound UDP port, plain MPEG-TS or MPEG-TS in RTP: 30 frames in order.

    Fails if the udp/rtp options are wrong (FFmpeg's UDP input without a timeout blocks for ever)
    or the RTP payload is not unpacked. FFmpeg's rtp:// input without an SDP loses the stream's
    first second (it reopens the socket once it has seen the payload type), so only order and
    count are checked here, not ground truth.
    """
    import threading

    from clara_stream.operators.video.testing_streams import udp_bound

    port = free_port(socket.SOCK_DGRAM)
    scheme = "udp" if muxer == "mpegts" else "rtp"
    src = LiveSource(f"{scheme}://127.0.0.1:{port}", queue_size=256, retries=0, timeout_s=5)
    opened: list[BaseException | None] = []
    t = threading.Thread(target=lambda: opened.append(_try(src.open)), daemon=True)
    t.start()
    wait_until(lambda: udp_bound(port), f"the source to bind udp {port}")
    sender = ffmpeg(ff["ffmpeg"], "-re", "-stream_loop", "-1", "-i", str(small_clip["video"]), "-c", "copy",
                    "-f", muxer, f"{scheme}://127.0.0.1:{port}?pkt_size=1316")
    idx = []
    try:
        t.join(timeout=60)
        assert opened == [None], opened
        while len(idx) < 30:
            idx.append(src.read(timeout_s=30).info.index)
    finally:
        src.close(), stop(sender)
    assert src.info.codec == "h264" and (src.info.width, src.info.height) == (320, 180)
    assert idx == sorted(set(idx)) and src.describe()["reconnects"] == []


def _try(fn) -> BaseException | None:  # type: ignore[no-untyped-def]
    try:
        fn()
    except BaseException as exc:  # reported to the test thread
        return exc
    return None


@pytest.mark.slow
def test_real_endoscopy_clip_live_detects_exactly_as_from_the_file(ff: dict, shared_data: Path, tmp_path: Path) -> None:
    """The real clip (B-frames, 25 fps) sent live as MPEG-TS: the same KITTI files as the file run.

    The stream is a copy (no re-encode), so every decoded frame is the file's: fails if a live
    frame is lost, renumbered or decoded differently.
    """
    video = shared_data / "video_endoscopy_rvimlab" / "data" / "endo.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not present")
    load_app("video_detection", input=video, output=tmp_path / "file").run()
    port = free_port()
    sender = send_tcp(ff["ffmpeg"], video, port)
    try:
        app = load_app("video_detection", input=f"tcp://127.0.0.1:{port}", output=tmp_path / "live",
                       overrides=["decoder.queue_size=300", "decoder.max_frames=250"])
        app.run()
    finally:
        stop(sender)
    assert app.summary["input"]["dropped"] == 0
    names = sorted(p.name for p in (tmp_path / "file" / "kitti").glob("*.txt"))
    assert len(names) == 250 and names == sorted(p.name for p in (tmp_path / "live" / "kitti").glob("*.txt"))
    for n in names:
        assert (tmp_path / "live" / "kitti" / n).read_text() == (tmp_path / "file" / "kitti" / n).read_text(), n


def _paced_writes(sink, frames: int, stop_when) -> None:  # type: ignore[no-untyped-def]
    """A 25 fps camera into ``sink`` (distinct grey levels), until ``stop_when()`` or ``frames``."""
    import time
    from fractions import Fraction

    import numpy as np

    from clara_stream.geometry import FrameInfo

    t0 = time.perf_counter()
    for i in range(frames):
        if stop_when():
            break
        time.sleep(max(0.0, t0 + i / 25 - time.perf_counter()))  # the camera's clock, not a barrier
        sink.write(np.full((144, 256, 3), (i * 7) % 256, np.uint8), FrameInfo(i * 3600, Fraction(1, 90000), i, 25))
    sink.close()


def test_rtsp_and_udp_live_outputs_are_decoded_by_ffmpeg(ff: dict, peer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Our sink publishes RTSP to rtsp-server-perl and sends UDP MPEG-TS; ffmpeg plays both back.

    Fails if the output muxer or its options are wrong for either (no SDP for RTSP, no in-band
    SPS/PPS for MPEG-TS); ffprobe is the judge of codec, size and frame count.
    """
    import threading

    from clara_stream.operators.video.sink import VideoSink
    from clara_stream.operators.video.testing_streams import udp_bound

    server_exe = peer(RTSP_SERVER, ["--help"], "clientport")
    server, client, source = rtsp_server(server_exe)
    udp_port = free_port(socket.SOCK_DGRAM)
    udp_rx = ffmpeg(ff["ffmpeg"], "-y", "-i", f"udp://127.0.0.1:{udp_port}", "-frames:v", "20", "-c", "copy",
                    str(tmp_path / "udp.ts"))
    done = threading.Event()
    try:
        wait_until(lambda: listening(client) and listening(source) and udp_bound(udp_port), "server and receiver")
        sinks = [VideoSink(f"rtsp://127.0.0.1:{source}/live", preset="ultrafast", tune="zerolatency", gop=5),
                 VideoSink(f"udp://127.0.0.1:{udp_port}", preset="ultrafast", tune="zerolatency", gop=5)]
        writers = [threading.Thread(target=_paced_writes, args=(s, 2000, done.is_set), daemon=True) for s in sinks]
        for w in writers:
            w.start()
        wait_until(lambda: sinks[0].written > 0, "the RTSP publisher's first frame")
        rx = None
        for _ in range(20):  # the server knows the stream once the publisher's ANNOUNCE is in: retry on refusal
            rx = subprocess.run([str(ff["ffmpeg"]), "-v", "error", "-y", "-rtsp_transport", "udp", "-i",
                                 f"rtsp://127.0.0.1:{client}/live", "-frames:v", "20", "-c", "copy",
                                 str(tmp_path / "rtsp.mkv")], capture_output=True, text=True, timeout=60)
            if rx.returncode == 0:
                break
        assert rx is not None and rx.returncode == 0, rx.stderr
        udp_rx.wait(timeout=60)
    finally:
        done.set()
        for w in writers:
            w.join(timeout=30)
        stop(udp_rx), stop(server)
    for name in ("rtsp.mkv", "udp.ts"):
        got = probe_stream(ff["ffprobe"], tmp_path / name)
        assert got["codec_name"] == "h264" and (got["width"], got["height"]) == ("256", "144"), (name, got)
        assert int(got["nb_read_frames"]) >= 15, (name, got)  # a late joiner may start at a keyframe


def test_srt_output_is_refused_with_the_reason() -> None:
    from clara_stream.operators.video.sink import VideoSink

    with pytest.raises(ValueError, match=r"got srt:// \(PyAV's bundled FFmpeg has no libsrt\)"):
        VideoSink("srt://127.0.0.1:9000")


def test_rtsp_over_tcp_interleaved(ff: dict, small_clip: dict) -> None:
    """RTSP with TCP transport (rtsp-server-perl relays UDP only): ffmpeg publishes to our source listening.

    ``rtsp_flags=listen`` makes FFmpeg's RTSP demuxer the server side for one publisher; the
    interleaved-TCP receive path is the same as a camera's. Fails if the tcp transport option is lost.
    """
    import threading

    port = free_port()
    src = LiveSource(f"rtsp://127.0.0.1:{port}/live", transport="tcp", options={"rtsp_flags": "listen"},
                     queue_size=256, retries=0, timeout_s=20)
    opened: list[BaseException | None] = []
    t = threading.Thread(target=lambda: opened.append(_try(src.open)), daemon=True)
    t.start()
    wait_until(lambda: listening(port), "the source's RTSP listener")
    pub = ffmpeg(ff["ffmpeg"], "-re", "-stream_loop", "-1", "-i", str(small_clip["video"]), "-c", "copy", "-f",
                 "rtsp", "-rtsp_transport", "tcp", f"rtsp://127.0.0.1:{port}/live")
    idx = []
    try:
        t.join(timeout=60)
        assert opened == [None], opened
        while len(idx) < 20:
            idx.append(src.read(timeout_s=30).info.index)
    finally:
        src.close(), stop(pub)
    assert src.info.codec == "h264" and (src.info.width, src.info.height) == (320, 180)
    assert idx == sorted(set(idx)) and src.options["rtsp_transport"] == "tcp"


def test_auto_encoder_is_libx264_without_nvenc_and_nvenc_refused_clearly(tmp_path: Path) -> None:
    """CPU box: ``codec=auto`` writes with libx264 (its 'x264 - core' SEI is in the bitstream);
    ``codec=h264_nvenc`` is refused at the first frame, naming the need. Not run on a GPU here."""
    from fractions import Fraction

    import numpy as np
    from clara_stream.operators.video.encoders import pick_encoder
    from clara_stream.operators.video.sink import VideoSink

    from clara_stream.geometry import FrameInfo

    try:
        pick_encoder("h264_nvenc", "test")
        pytest.skip("NVENC is usable on this machine: the CPU fallback does not apply")
    except ValueError:
        pass
    frame, info = np.zeros((144, 256, 3), np.uint8), FrameInfo(0, Fraction(1, 25), 0, 25)
    with VideoSink(tmp_path / "auto.mp4", codec="auto") as sink:
        sink.write(frame, info)
    assert sink.encoder == "libx264" and b"x264 - core" in (tmp_path / "auto.mp4").read_bytes()
    with pytest.raises(ValueError, match="expected a usable h264_nvenc encoder"):
        VideoSink(tmp_path / "n.mp4", codec="h264_nvenc").write(frame, info)
    assert not (tmp_path / "n.mp4").exists()


def test_hls_playlist_over_http(ff: dict, small_clip: dict, tmp_path: Path) -> None:
    """ffmpeg segments the clip into HLS; a loopback HTTP server serves it; the source plays the playlist.

    Fails if http(s) .m3u8 is not taken as a live input or its options break the HLS demuxer.
    """
    import functools
    import http.server
    import threading

    hls = tmp_path / "hls"
    hls.mkdir()
    made = subprocess.run([str(ff["ffmpeg"]), "-v", "error", "-i", str(small_clip["video"]), "-c", "copy", "-f",
                           "hls", "-hls_time", "0.5", "-hls_list_size", "0", str(hls / "live.m3u8")],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hls))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    src = LiveSource(f"http://127.0.0.1:{server.server_address[1]}/live.m3u8", queue_size=256, retries=0,
                     timeout_s=10)
    idx = []
    try:
        src.open()
        with pytest.raises(LiveInputError, match="expected the stream to come back within 0 retries"):
            while (f := src.read(timeout_s=30)) is not None:
                idx.append(f.info.index)
    finally:
        src.close()
        server.shutdown()
    assert src.info.codec == "h264" and idx == list(range(40))  # a finished playlist: every frame, then the end


def test_each_frame_arrives_before_the_next_is_sent() -> None:
    """Low delay over MPEG-TS: our live output → our live source, in lockstep, frame by frame.

    After each frame is written, the source must decode it with no further frame sent. Fails if
    the sink omits the PES length (the demuxer then waits for the next frame's start) or if the
    source lets FFmpeg's H.264 parser hold each frame until the next one begins — each a frame
    interval of latency per hop. Nothing is timed: a frame that does not come fails the wait.
    """
    import threading
    from fractions import Fraction

    import numpy as np
    from clara_stream.operators.video.sink import VideoSink

    from clara_stream.geometry import FrameInfo

    port = free_port()
    src = LiveSource(f"tcp://127.0.0.1:{port}?listen=1", retries=0, timeout_s=20, queue_size=64)
    sink = VideoSink(f"tcp://127.0.0.1:{port}", preset="ultrafast", tune="zerolatency", gop=15)
    rng = np.random.default_rng(0)
    opened = threading.Thread(target=src.open, daemon=True)

    def send(i: int) -> None:
        sink.write(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8), FrameInfo(i, Fraction(1, 30), i, Fraction(30)))
        wait_until(lambda: sink.written == i + 1, f"frame {i} to be muxed")

    try:
        opened.start()  # the source listens (PyAV holds the GIL while an output waits for its client)
        wait_until(lambda: listening(port), "the source to listen")
        i = 0
        while opened.is_alive():  # the probe reads a few frames before open() returns
            send(i)
            i += 1
            opened.join(0.2)
        for k in range(i, i + 12):
            send(k)
            wait_until(lambda k=k: src.decoded == k + 1, f"frame {k} decoded before frame {k + 1} is sent",
                       timeout_s=10)
    finally:
        src.close()
        sink.close()


def test_a_live_copy_that_fails_ends_alone_and_the_file_stays_whole(ff: dict, tmp_path: Path) -> None:
    """One encode feeds the file and the live stream; the receiver hangs up mid-stream.

    Fails if the copy's failure is silent (no error naming the live address), or if it takes the
    file with it (removed or unplayable: ffprobe must count every frame the sink wrote).
    """
    import threading
    from fractions import Fraction

    import numpy as np
    from clara_stream.operators.video.sink import VideoOutputError, VideoSink

    from clara_stream.geometry import FrameInfo

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = bytearray()

    def receive_then_hang_up() -> None:
        conn, _ = server.accept()
        while len(got) < 20_000 and (chunk := conn.recv(65536)):
            got.extend(chunk)
        conn.close()

    rx = threading.Thread(target=receive_then_hang_up, daemon=True)
    rx.start()
    out = tmp_path / "out.mp4"
    sink = VideoSink(out, preset="ultrafast", tune="zerolatency", gop=10, copies=(f"tcp://127.0.0.1:{port}",))
    rng = np.random.default_rng(1)
    try:
        with pytest.raises(VideoOutputError, match=f"expected to send the live stream; got .*tcp://127.0.0.1:{port}"):
            for i in range(3000):
                sink.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
                           FrameInfo(i, Fraction(1, 30), i, Fraction(30)))
    finally:
        written = _close_quiet(sink)
        server.close()
    assert written and out.exists() and len(got) >= 20_000
    assert int(probe_stream(ff["ffprobe"], out)["nb_read_frames"]) == written


def _close_quiet(sink) -> int:  # type: ignore[no-untyped-def]
    """Close a sink whose live copy failed (close re-raises that error): the count of frames written."""
    with contextlib.suppress(OSError):
        sink.close()
    return sink.written
