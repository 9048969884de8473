"""RTSP/RTP at low delay: whole NAL units joined from FFmpeg's depacketiser output, frame by frame.

Oracles: a closed-form packet sequence for the assembler (what FFmpeg's RTP H.264 depacketiser
hands out: start-coded NALs and STAP-A aggregates, FU-A fragments of which only the first carries
a start code); and, through a real RTSP server (rtsp-server-perl), the pixels sent against the
pixels decoded. Nothing is timed: a frame that does not come fails a wait on state.
"""

from __future__ import annotations

import socket
import threading
from fractions import Fraction

import numpy as np
from clara_stream.operators.video.live import LiveInputError, LiveSource
from clara_stream.operators.video.rtp_nal import NalAssembler
from clara_stream.operators.video.testing_streams import (
    RTSP_SERVER,
    free_port,
    listening,
    rtsp_server,
    stop,
    wait_until,
)

from clara_stream.geometry import FrameInfo

SC = b"\x00\x00\x00\x01"


def _fu(nal_header: int, body: bytes, size: int) -> list[bytes]:
    """A NAL split as FFmpeg's depacketiser hands FU-A out: start code + header + first part, then bare parts."""
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return [SC + bytes([nal_header]) + parts[0], *parts[1:]]


def test_assembler_hands_out_whole_nal_units_at_their_last_fragment() -> None:
    """Fails if a fragment reaches the decoder alone (FFmpeg: "Invalid data"), if a NAL is cut or
    joined with the next, or if the last NAL of a frame waits for the next frame (the parser's
    delay, which this exists to remove)."""
    rng = np.random.default_rng(1)
    big1, big2 = rng.bytes(3000), rng.bytes(2000)
    a = NalAssembler()
    out: list[tuple[bytes, int]] = []
    frame0 = [SC + b"\x06" + b"sei", *_fu(0x65, big1, 1000), SC + b"\x65" + b"tail-slice"]
    for p in frame0:
        out += a.push(p, 0)
    # the frame's last NAL is out with its own packet, before anything of frame 1 arrives
    assert out == [(SC + b"\x06sei", 0), (SC + b"\x65" + big1, 0), (SC + b"\x65tail-slice", 0)]
    out.clear()
    for p in _fu(0x41, big2, 1000):  # 1000 + 1000 (full, open) + ... the last part is 0 long: not sent
        out += a.push(p, 3000)
    assert out == []  # the last continuation was full-size: only the next NAL can end it (the certain rule)
    out += a.push(SC + b"\x41" + b"x" * 5, 6000)  # the timestamp moves on: frame 1's NAL is whole now
    assert out == [(SC + b"\x41" + big2, 3000), (SC + b"\x41xxxxx", 6000)]
    assert a.early and a.misjudged == 0


def test_assembler_switches_the_early_rule_off_when_a_sender_breaks_it() -> None:
    """A sender whose fragments vary in size: a short middle fragment looked like a NAL's end. Its
    next fragment finds no NAL open: counted, and from then on only the certain rule is used.
    Fails if the stray fragment reaches the decoder or the early rule stays on."""
    a = NalAssembler()
    for p in _fu(0x65, b"a" * 2500, 1200):
        a.push(p, 0)  # learns 1200-byte continuations
    got = a.push(SC + b"\x41" + b"b" * 1200, 10)  # a full-size start packet: an FU-A start, the NAL opens
    got += a.push(b"c" * 600, 10)  # a short continuation: taken as the end (rule)
    got += a.push(b"d" * 700, 10)  # …but the NAL went on: the rule is wrong for this sender
    assert [len(n) for n, _ in got] == [len(SC) + 1 + 1200 + 600] and a.misjudged == 1 and not a.early
    assert a.push(SC + b"\x41" + b"e" * 10, 20) == [] and a.flush() == [(SC + b"\x41" + b"e" * 10, 20)]


def test_assembler_drops_a_fragment_whose_start_was_lost_and_keeps_the_early_rule() -> None:
    """UDP loses an FU-A start packet: its continuations have no NAL to join. They are dropped and
    counted, the next NAL is handed out whole, and the early rule stays on (a loss is not a sender
    breaking the rule). Fails if the orphans reach the decoder or a loss turns the rule off."""
    a = NalAssembler()
    for p in _fu(0x65, b"a" * 2500, 1200):
        a.push(p, 0)
    lost = _fu(0x41, b"b" * 3000, 1200)[1:]  # frame 1's NAL without its start packet
    got = [n for p in lost for n in a.push(p, 10)]
    got += a.push(SC + b"\x41" + b"c" * 50, 20)  # frame 2: a small whole NAL, out at once
    assert got == [(SC + b"\x41" + b"c" * 50, 20)] and a.orphans == 2 and a.misjudged == 0 and a.early


def test_assembler_keeps_the_early_rule_when_a_keyframes_start_after_its_parameter_sets_is_lost() -> None:
    """SPS, PPS and SEI are small: the rule hands each out with its own packet. If the IDR slice's
    FU-A start packet that follows (same timestamp) is lost, its continuations find no NAL open:
    a loss (orphans), not the rule misjudging the sender. Fails if one lost packet switches the
    early rule off for the rest of the stream, or a stray fragment reaches the decoder."""
    a = NalAssembler()
    for p in _fu(0x65, b"a" * 2500, 1200):
        a.push(p, 0)  # learns the sender's fragment sizes
    got = [n for p in (SC + b"\x67sps", SC + b"\x68pps", SC + b"\x06sei") for n in a.push(p, 10)]
    assert [n for n, _ in got] == [SC + b"\x67sps", SC + b"\x68pps", SC + b"\x06sei"]  # out at once
    got = [n for p in _fu(0x65, b"i" * 3000, 1200)[1:] for n in a.push(p, 10)]  # the IDR's start packet lost
    assert got == [] and a.orphans == 2 and a.misjudged == 0 and a.early
    got = [n for p in _fu(0x41, b"p" * 2500, 1200) for n in a.push(p, 20)]  # the next frame: early as before
    assert got == [(SC + b"\x41" + b"p" * 2500, 20)]


def test_assembler_drops_a_nal_that_grows_past_its_limit_and_counts_it() -> None:
    """A sender that never ends a NAL (continuations at one timestamp, no start code): the buffer
    is bounded. The NAL past ``max_nal`` is dropped with its remaining fragments and counted; the
    next NAL is handed out whole. Fails if the buffer grows without limit, the oversize NAL (or a
    part of it) reaches the decoder, or its later fragments are miscounted as losses or misjudgements."""
    a = NalAssembler(max_nal=5000)
    got = a.push(SC + b"\x65" + b"a" * 1200, 0)
    for _ in range(20):  # 24 KB at one timestamp, every fragment full-size: never ends by the rule
        got += a.push(b"b" * 1200, 0)
        assert len(a._buf) <= 5000
    got += a.push(b"c" * 100, 0)  # its short last fragment: still part of the dropped NAL
    got += [n for p in _fu(0x41, b"d" * 2000, 1200) for n in a.push(p, 10)]
    assert got == [(SC + b"\x41" + b"d" * 2000, 10)]
    assert a.oversized == 1 and a.orphans == 0 and a.misjudged == 0 and a.early


def test_each_frame_is_decoded_before_the_next_is_sent_over_rtsp(peer) -> None:  # type: ignore[no-untyped-def]
    """Our RTSP output → rtsp-server-perl (RTP/UDP) → our live source, in lockstep.

    After each frame is published, the source must decode it with no further frame sent, and
    decode the right picture (each frame a different grey level under noise, so every NAL is
    fragmented). Fails with FFmpeg's parser in the path (it holds each frame until the next one's
    first packet) or with fragments handed to the decoder unjoined (nothing decodes).
    """
    from clara_stream.operators.video.sink import VideoSink

    server_exe = peer(RTSP_SERVER, ["--help"], "clientport")
    server, client, source = rtsp_server(server_exe)
    rng = np.random.default_rng(0)
    levels = [40 + 14 * (i % 12) for i in range(64)]
    sink = VideoSink(f"rtsp://127.0.0.1:{source}/in", preset="ultrafast", tune="zerolatency", gop=4)
    src = LiveSource(f"rtsp://127.0.0.1:{client}/in", transport="udp", retries=0, timeout_s=20, queue_size=64)
    means: list[float] = []

    def send(i: int) -> None:
        noise = rng.integers(-25, 26, (144, 240, 3))
        sink.write(np.clip(levels[i] + noise, 0, 255).astype(np.uint8), FrameInfo(i, Fraction(1, 30), i, Fraction(30)))
        wait_until(lambda: sink.written == i + 1, f"frame {i} to be published")

    try:
        wait_until(lambda: listening(client) and listening(source), "rtsp-server-perl")
        send(0)  # the publisher's ANNOUNCE: the server knows /in from now on
        opened: list[BaseException | None] = []

        def open_source() -> None:
            try:
                src.open()
                opened.append(None)
            except BaseException as exc:  # reported to the test thread
                opened.append(exc)

        t = threading.Thread(target=open_source, daemon=True)
        t.start()
        i = 1
        while t.is_alive():  # the probe reads a few frames before open() returns
            send(i)
            i += 1
            t.join(0.2)
        assert opened == [None], opened
        assert src.nal is not None  # the low-delay path is the one under test
        for _ in range(8):  # joined mid-GOP: nothing decodes before the next keyframe (gop=4)
            if src.decoded:
                break
            send(i)
            i += 1
            try:
                wait_until(lambda: src.decoded > 0, "a keyframe", timeout_s=1)
            except AssertionError:
                continue
        while len(src.queue):
            src.read(timeout_s=1)
        base = src.decoded
        for k in range(i, i + 14):
            send(k)
            wait_until(lambda k=k: src.decoded == base + k - i + 1, f"frame {k} decoded before frame {k + 1} is sent",
                       timeout_s=10)
            means.append((k, float(src.read(timeout_s=1).rgb.astype(float).mean())))
    finally:
        src.close()
        sink.close()
        stop(server)
    assert all(abs(m - levels[k]) < 6 for k, m in means), means  # frame k itself, not k - 1 held back
    assert src.nal.misjudged == 0 and src.nal.max_cont > 0  # fragmented, and the rule held


def test_hevc_over_rtsp_falls_back_to_the_parser_and_decodes(peer, small_clip) -> None:  # type: ignore[no-untyped-def]
    """The assembler is for H.264 only: an HEVC RTSP stream (ffmpeg publishing libx265 to
    rtsp-server-perl) is opened again with FFmpeg's parser and decodes in order at its size.

    Fails if the unparsed open is kept for HEVC (fragments reach the decoder: nothing decodes) or
    if the reopen loses the stream.
    """
    from clara_stream.operators.video.testing_streams import FFMPEG, ffmpeg

    ffmpeg_exe = peer(FFMPEG, ["-version"], "ffmpeg version")
    server_exe = peer(RTSP_SERVER, ["--help"], "clientport")
    server, client, source = rtsp_server(server_exe)
    pub = None
    src = LiveSource(f"rtsp://127.0.0.1:{client}/h", transport="udp", retries=40, backoff_s=0.1, backoff_max_s=0.2,
                     timeout_s=20, queue_size=64)
    try:
        wait_until(lambda: listening(client) and listening(source), "rtsp-server-perl")
        pub = ffmpeg(ffmpeg_exe, "-re", "-stream_loop", "-1", "-i", str(small_clip["video"]), "-c:v", "libx265",
                     "-preset", "ultrafast", "-x265-params", "log-level=error", "-f", "rtsp", "-rtsp_transport", "udp",
                     f"rtsp://127.0.0.1:{source}/h")
        def opened() -> bool:  # the server offers /h once ffmpeg's ANNOUNCE is in; refused before
            try:
                src.open()
            except LiveInputError:
                return False
            return True

        wait_until(opened, "the server to offer the HEVC stream", timeout_s=60)
        idx = [src.read(timeout_s=30).info.index for _ in range(12)]
    finally:
        src.close()
        if pub is not None:
            stop(pub)
        stop(server)
    assert src.info.codec == "hevc" and src.nal is None and (src.info.width, src.info.height) == (320, 180)
    assert "noparse" not in src.options.get("fflags", "") and idx == sorted(set(idx))


def test_h264_over_rtp_from_an_sdp_file_is_joined_and_decodes_in_order(peer, small_clip, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`.sdp` input (ffmpeg sending RTP/UDP with `-sdp_file`): the same depacketiser as RTSP, so the
    same NAL joining; frames decode in order at the clip's size.

    Fails if the SDP path keeps fragments apart (nothing decodes) or loses the parameter sets.
    """
    from clara_stream.operators.video.testing_streams import FFMPEG, ffmpeg

    ffmpeg_exe = peer(FFMPEG, ["-version"], "ffmpeg version")
    sdp, port = tmp_path / "cam.sdp", free_port(socket.SOCK_DGRAM)
    pub = ffmpeg(ffmpeg_exe, "-re", "-stream_loop", "-1", "-i", str(small_clip["video"]), "-an", "-c:v", "copy",
                 "-f", "rtp", "-sdp_file", str(sdp), f"rtp://127.0.0.1:{port}")
    src = LiveSource(str(sdp), retries=0, timeout_s=20, queue_size=64)
    try:
        wait_until(lambda: sdp.is_file() and b"sprop-parameter-sets" in sdp.read_bytes(), "ffmpeg's SDP file")
        src.open()
        idx = [src.read(timeout_s=30).info.index for _ in range(15)]
    finally:
        src.close()
        stop(pub)
    assert src.info.codec == "h264" and (src.info.width, src.info.height) == (320, 180)
    assert src.nal is not None and src.nal.misjudged == 0 and idx == sorted(set(idx)), idx


def test_nal_losses_are_reported_in_the_sources_account_over_reconnections() -> None:
    """The summary and status say how many NAL units were lost (a fragment without its start) or
    dropped for size, summed over connections (a reconnection makes a new assembler). Fails if the
    counters stay internal, or if a reconnection forgets the earlier connection's losses."""
    src = LiveSource("rtsp://127.0.0.1:9/in", retries=0)  # not opened: the account alone
    assert "rtp_nal" not in src.describe()  # no assembler, nothing lost: nothing to report
    src.nal, src._nal_lost = NalAssembler(), (3, 1)  # two earlier connections lost 3 and dropped 1
    src.nal.orphans, src.nal.oversized = 2, 0
    assert src.describe()["rtp_nal"] == {"orphans": 5, "oversized": 1}
