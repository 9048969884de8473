"""Live video addresses: which inputs are streams (not files), and FFmpeg options for each.

A live input is named by URI: ``rtsp://`` (TCP or UDP transport), ``rtp://`` or an ``.sdp``
file, ``udp://`` / ``tcp://`` / ``srt://`` MPEG-TS, HLS ``http(s)://….m3u8``, or a V4L2 device
``/dev/videoN``. Everything else is a file for :class:`~.source.VideoSource`.

SRT: PyAV's bundled FFmpeg is built without libsrt (checked: ``Protocol not found``), so
``srt://`` is refused with that reason rather than failing obscurely; Debian's ``/usr/bin/ffmpeg``
has it, so a PyAV built against the system FFmpeg would take it unchanged.
"""

from __future__ import annotations

from pathlib import Path

LIVE_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "rtp", "udp", "tcp", "srt", "http", "https")
RTSP_TRANSPORTS: tuple[str, ...] = ("tcp", "udp")
# Output muxers by scheme: MPEG-TS carries H.264 in-band (no SDP needed by the receiver).
OUTPUT_FORMATS: dict[str, str] = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts",
                                  "rtsp": "rtsp"}


def scheme(uri: str) -> str:
    """The URI scheme in lower case (``""`` for a plain path)."""
    head, sep, _ = str(uri).partition("://")
    return head.lower() if sep and head.isalnum() else ""


def is_live(uri: str | Path | None) -> bool:
    """True for a stream address or a V4L2 device; False for a file path (or None)."""
    if uri is None:
        return False
    s = str(uri)
    return scheme(s) in LIVE_SCHEMES or s.lower().endswith(".sdp") or is_v4l2(s)


def is_v4l2(uri: str) -> bool:
    return str(uri).startswith("/dev/video")


def is_http_file(uri: str) -> bool:
    """``http(s)://`` that is not an HLS playlist: accepted as a stream all the same (FFmpeg probes it)."""
    return scheme(uri) in ("http", "https") and ".m3u8" not in uri.lower()


def input_options(uri: str, *, transport: str, timeout_s: float, low_delay: bool = True) -> dict[str, str]:
    """FFmpeg demuxer/protocol options for opening ``uri`` live (low delay, bounded waits).

    ``low_delay`` (MPEG-TS over udp/tcp/srt): packets go to the decoder as the demuxer has them
    (``fflags=+noparse``), one PES packet per frame, as FFmpeg's, GStreamer's and cameras' muxers
    write them. FFmpeg's H.264 parser would hold each frame until the next one starts — a frame
    interval (33 ms at 30 fps) per hop, measured. ``fpsprobesize`` keeps the probe to three frames:
    without the parser the rate is probed from timestamps, and a longer probe is a backlog.
    A sender that splits frames over several PES packets needs ``low_delay=False``.
    RTSP and ``.sdp`` (RTP): unparsed too; the source joins the depacketiser's fragments into whole
    NAL units itself (``rtp_nal``) so a frame is decoded when its last slice is in.
    """
    s, us = scheme(uri), str(int(timeout_s * 1e6))
    # not fflags=nobuffer: it discards the packets read while probing. A short probe (0.2 s): what
    # it reads is a backlog the pipeline must first catch up on, at its margin over the stream rate.
    opts = {"flags": "low_delay", "probesize": "300000", "analyzeduration": "200000"}
    if s in ("rtsp", "rtsps"):
        opts |= {"rtsp_transport": transport, "timeout": us}
    elif s in ("tcp", "http", "https", "srt"):
        opts |= {"rw_timeout": us}
        if s == "tcp":
            opts["timeout"] = us  # connect timeout
    elif s in ("udp", "rtp"):
        opts |= {"timeout": us, "overrun_nonfatal": "1", "fifo_size": "1000000"} if s == "udp" else {"timeout": us}
    if low_delay and (s in ("udp", "tcp", "srt", "rtsp", "rtsps") or uri.lower().endswith(".sdp")):
        opts |= {"fflags": "+noparse", "fpsprobesize": "3"}
    if uri.lower().endswith(".sdp"):
        opts |= {"protocol_whitelist": "file,udp,rtp", "timeout": us}
    return opts


def rtp_input(uri: str) -> bool:
    """Whether ``uri`` is read through FFmpeg's RTP depacketiser (RTSP, an SDP file)."""
    return scheme(uri) in ("rtsp", "rtsps") or str(uri).lower().endswith(".sdp")


def output_format(uri: str, owner: str) -> str:
    """The muxer for a live output address; ValueError for one we cannot send to."""
    s = scheme(uri)
    if s not in OUTPUT_FORMATS:
        raise ValueError(f"{owner}: expected a live output URI with a scheme in {tuple(OUTPUT_FORMATS)}; "
                         f"got {uri!r}")
    return OUTPUT_FORMATS[s]
