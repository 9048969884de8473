"""Which H.264 encoder a sink uses: libx264 (CPU, always here), NVENC where a GPU offers it.

``auto`` tries ``h264_nvenc`` (PyAV's wheel is built with it) by opening a tiny encoder; without
an NVIDIA GPU and driver that fails and libx264 is used. Asking for ``h264_nvenc`` explicitly
on a box without one is refused with FFmpeg's reason.
"""

from __future__ import annotations

from fractions import Fraction

ENCODERS: tuple[str, ...] = ("libx264", "h264_nvenc", "auto")


def pick_encoder(codec: str, owner: str) -> str:
    """The encoder to use for ``codec`` (``auto`` resolved); ValueError when it cannot run here."""
    import av

    if codec not in ENCODERS:
        raise ValueError(f"{owner}: expected codec in {ENCODERS}; got {codec!r}")
    if codec == "libx264":
        return codec
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 144, "yuv420p", Fraction(1, 30)
        ctx.open()
        ctx.close()
        return "h264_nvenc"
    except (av.FFmpegError, OSError, ValueError) as exc:
        if codec == "auto":
            return "libx264"
        raise ValueError(f"{owner}: expected a usable h264_nvenc encoder (an NVIDIA GPU and driver); got "
                         f"{getattr(exc, 'strerror', None) or exc}") from exc


def encoder_options(name: str, *, preset: str, crf: int, tune: str | None) -> dict[str, str]:
    """FFmpeg options for ``name``: x264's preset/crf/tune, or NVENC's nearest (p1 + ultra-low latency)."""
    if name == "h264_nvenc":
        fast = preset in ("ultrafast", "superfast", "veryfast") or tune == "zerolatency"
        return {"preset": "p1" if fast else "p4", "rc": "vbr", "cq": str(crf),
                **({"tune": "ull", "zerolatency": "1", "delay": "0"} if tune == "zerolatency" else {})}
    return {"preset": preset, "crf": str(crf), **({"tune": tune} if tune else {})}
