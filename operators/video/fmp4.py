"""Live H.264 in fragmented MP4 for a Media Source Extensions player (ClaraViz's video stream).

:class:`H264Stream` encodes RGB frames with libx264 (``zerolatency``, no B-frames) — or NVENC
where a GPU offers ``h264_nvenc`` — and packs each one at once into its own ``moof``+``mdat``
fragment. The boxes are written here, not by FFmpeg's mp4 muxer, because that muxer holds each
fragment until the next packet arrives (one frame of latency, and the last frame of a gesture
would never show). ISO/IEC 14496-12 box layout; ``avcC`` per 14496-15.

Shared by the render service's stream mode and the live video output (``mse_live``); the page
side, one MSE player for both, is :data:`PLAYER_JS`.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np

TIMESCALE = 90_000  # ticks per second in the track (the MPEG convention)
FRAME_TICKS = TIMESCALE // 240  # media duration of each frame (see H264Stream.encode)
NOMINAL_FPS = 30  # interactive frames per second the bitrate is spread over
_KEY, _NON_KEY = 0x02000000, 0x01010000  # sample_flags: sync sample / depends on others, non-sync
PLAYER_JS = Path(__file__).resolve().parent / "static" / "mse_player.js"  # served by the gateway and the live page


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def nal_units(annexb: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01)."""
    out, i, n = [], 0, len(annexb)
    starts = []
    while True:
        j = annexb.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = annexb[s:end]
        out.append(nal.rstrip(b"\x00") if k + 1 < len(starts) else nal)
    return [u for u in out if u]


def avcc_sample(annexb: bytes) -> bytes:
    """An MP4 sample: each NAL unit with a 4-byte big-endian length instead of a start code."""
    return b"".join(struct.pack(">I", len(u)) + u for u in nal_units(annexb) if u[0] & 0x1F not in (7, 8, 9))


def init_segment(width: int, height: int, sps: bytes, pps: bytes) -> bytes:
    """``ftyp`` + ``moov`` (one H.264 track, empty sample tables, ``mvex`` for fragments)."""
    avcc = _box(b"avcC", bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps,
                b"\x01", struct.pack(">H", len(pps)), pps)  # fmt: skip
    avc1 = _box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", width, height),
                struct.pack(">II", 0x00480000, 0x00480000), b"\x00" * 4, struct.pack(">H", 1), b"\x00" * 32,
                struct.pack(">Hh", 0x0018, -1), avcc)  # fmt: skip
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    empty = struct.pack(">I", 0)
    tables = (_full(b"stts", 0, 0, empty), _full(b"stsc", 0, 0, empty), _full(b"stsz", 0, 0, empty, empty),
              _full(b"stco", 0, 0, empty))  # fmt: skip
    stbl = _box(b"stbl", _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1), *tables)
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    minf = _box(b"minf", _full(b"vmhd", 0, 1, b"\x00" * 8), dinf, stbl)
    mdia = _box(b"mdia", _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0)),
                _full(b"hdlr", 0, 0, empty, b"vide", b"\x00" * 12, b"clara-stream\x00"), minf)  # fmt: skip
    tkhd = _full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, 0), b"\x00" * 8, struct.pack(">hhhH", 0, 0, 0, 0),
                 matrix, struct.pack(">II", width << 16, height << 16))  # fmt: skip
    mvhd = _full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0), struct.pack(">IH", 0x10000, 0x100),
                 b"\x00" * 10, matrix, b"\x00" * 24, struct.pack(">I", 2))  # fmt: skip
    mvex = _box(b"mvex", _full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso5iso6avc1mp41")
    return ftyp + _box(b"moov", mvhd, _box(b"trak", tkhd, mdia), mvex)


def fragment(sequence: int, decode_time: int, duration: int, sample: bytes, key: bool) -> bytes:
    """``moof`` + ``mdat`` holding one sample (times in :data:`TIMESCALE` ticks)."""

    def moof(data_offset: int) -> bytes:
        trun = _full(b"trun", 0, 0x000701, struct.pack(">IiIII", 1, data_offset, duration, len(sample),
                                                       _KEY if key else _NON_KEY))  # fmt: skip
        traf = _box(b"traf", _full(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
                    _full(b"tfdt", 1, 0, struct.pack(">Q", decode_time)), trun)  # fmt: skip
        return _box(b"moof", _full(b"mfhd", 0, 0, struct.pack(">I", sequence)), traf)

    size = len(moof(0))
    return moof(size + 8) + _box(b"mdat", sample)


class H264Stream:
    """Encode RGB frames to fragmented-MP4 H.264, one fragment per frame, with no delay.

    Parameters
    ----------
    width, height : int
        Frame size (odd sizes are padded by one edge pixel: H.264 4:2:0 needs even sizes).
    bitrate_kbps : int
        Target bitrate, 100..100000.
    codec : str
        ``auto`` (NVENC when usable, else libx264), ``libx264`` or ``h264_nvenc``.
    keyframe_interval : int
        Frames between keyframes (a late joiner or a dropped fragment recovers within it).
    frame_ticks : int
        Media duration of each frame in :data:`TIMESCALE` ticks (default :data:`FRAME_TICKS`, the
        interactive view's; a live video passes its frame period so the stream keeps its rate).
    fps : float
        Frames per second the bitrate is spread over (rate control's budget).

    Raises
    ------
    ValueError
        For sizes outside 16..4096, a bitrate outside its range, or an unknown codec.
    """

    def __init__(
        self, width: int, height: int, bitrate_kbps: int = 4000, codec: str = "auto", keyframe_interval: int = 60,
        frame_ticks: int = FRAME_TICKS, fps: float = NOMINAL_FPS,
    ) -> None:
        if not (16 <= width <= 4096 and 16 <= height <= 4096):
            raise ValueError(f"H264Stream: expected width and height in 16..4096; got {width}x{height}")
        if not 100 <= int(bitrate_kbps) <= 100_000:
            raise ValueError(f"H264Stream: expected bitrate_kbps in 100..100000; got {bitrate_kbps}")
        if codec not in ("auto", "libx264", "h264_nvenc"):
            raise ValueError(f"H264Stream: expected codec auto, libx264 or h264_nvenc; got {codec!r}")
        self.width, self.height = int(width), int(height)
        self.coded = (self.width + self.width % 2, self.height + self.height % 2)
        self.bitrate_kbps = int(bitrate_kbps)
        self.keyframe_interval = int(keyframe_interval)
        if not (1 <= int(frame_ticks) <= TIMESCALE and 0 < fps <= 1000):
            raise ValueError(f"H264Stream: expected frame_ticks in 1..{TIMESCALE} and fps in (0, 1000]; got "
                             f"{frame_ticks}, {fps}")
        self.frame_ticks, self.fps = int(frame_ticks), Fraction(fps).limit_denominator(1001)
        self._ctx = self._open(codec)
        self.codec = self._ctx.name
        self.sequence = 0
        self.decode_time = 0
        self._init: bytes | None = None
        self.last_key = False  # whether the last fragment encode() returned starts at a keyframe

    def _open(self, codec: str):
        import av

        names = ["h264_nvenc", "libx264"] if codec == "auto" else [codec]
        last: Exception | None = None
        for name in names:
            try:
                ctx = av.CodecContext.create(name, "w")
                ctx.width, ctx.height = self.coded
                ctx.pix_fmt = "yuv420p"
                ctx.time_base = Fraction(1, TIMESCALE)
                ctx.framerate = self.fps  # rate control's frame budget (media time is not wall time)
                ctx.bit_rate = self.bitrate_kbps * 1000
                ctx.gop_size = self.keyframe_interval
                ctx.max_b_frames = 0
                ctx.flags |= 1 << 22  # AV_CODEC_FLAG_GLOBAL_HEADER: SPS/PPS in extradata for avcC
                ctx.options = (
                    {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
                    if name == "libx264"
                    else {"preset": "p1", "tune": "ull", "zerolatency": "1", "profile": "baseline"}
                )
                ctx.open()
                return ctx
            except Exception as exc:  # no NVENC device/driver (or no such encoder): try the next
                last = exc
        raise ValueError(f"H264Stream: expected a usable encoder among {names}; got {last}")

    @property
    def codecs(self) -> str:
        """The MSE codecs string, e.g. ``avc1.42C01F`` (profile, constraints, level from the SPS)."""
        sps = self._sps_pps()[0]
        return f"avc1.{sps[1]:02X}{sps[2]:02X}{sps[3]:02X}"

    def _sps_pps(self) -> tuple[bytes, bytes]:
        units = nal_units(bytes(self._ctx.extradata or b""))
        sps = next((u for u in units if u[0] & 0x1F == 7), None)
        pps = next((u for u in units if u[0] & 0x1F == 8), None)
        if sps is None or pps is None:
            raise ValueError(f"H264Stream: expected SPS and PPS from {self.codec}; got {len(units)} NAL units")
        return sps, pps

    def init_segment(self) -> bytes:
        """``ftyp`` + ``moov``: what a MediaSource SourceBuffer needs before the first fragment."""
        if self._init is None:
            self._init = init_segment(self.coded[0], self.coded[1], *self._sps_pps())
        return self._init

    def encode(self, rgb: np.ndarray, keyframe: bool = False) -> bytes:
        """The fragment for one (H, W, 3) uint8 frame.

        Frames sit back to back on the media timeline, each ``frame_ticks`` long. The interactive
        default (:data:`FRAME_TICKS`) is shorter than frames arrive, so the player is always at the
        live edge, waiting on the last frame, and shows each new one as soon as it is decoded.
        """
        import av

        if rgb.shape[:2] != (self.height, self.width) or rgb.dtype != np.uint8:
            raise ValueError(
                f"H264Stream: expected ({self.height}, {self.width}, 3) uint8; got {rgb.shape} {rgb.dtype}"
            )
        if self.coded != (self.width, self.height):
            rgb = np.pad(rgb, ((0, self.coded[1] - self.height), (0, self.coded[0] - self.width), (0, 0)), "edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        frame.pts = self.decode_time
        frame.time_base = Fraction(1, TIMESCALE)
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        data = b"".join(bytes(p) for p in self._ctx.encode(frame))
        if not data:
            raise ValueError(f"H264Stream: expected {self.codec} to emit each frame at once (zero latency); got none")
        is_key = self.last_key = any(u[0] & 0x1F == 5 for u in nal_units(data))
        self.sequence += 1
        out = fragment(self.sequence, self.decode_time, self.frame_ticks, avcc_sample(data), is_key)
        self.decode_time += self.frame_ticks
        return out
