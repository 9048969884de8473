"""Copy a source's audio into the encoded video file: a remux, packets as they are, no re-encode.

The video pipeline encodes only pictures; a clinical recording's audio (a narrated procedure)
must not vanish silently. :func:`copy_audio` rewrites ``output.mp4`` with the encoded video and
every audio stream of the source, shifted by the same offset as the video (the first frame at 0)
and cut at the video's end. It writes a temporary file beside the output and renames it over the
output only when complete, so a failure (a codec MP4 cannot carry, a full disk) leaves the
video-only output as it was and no temporary file; the reason is returned for the summary.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AudioCopy:
    """What :func:`copy_audio` did: streams copied (codec names), or why none were."""

    copied: tuple[str, ...]
    reason: str | None = None

    def describe(self) -> str | None:
        if self.copied and self.reason is None:
            return f"copied to the output (no re-encode): {', '.join(self.copied)}"
        return f"not copied to the output: {self.reason}" if self.reason else None


def _first_video_time(container: Any) -> Fraction:
    """Presentation time (s) of the source's first video packet: the video output's zero."""
    stream = container.streams.video[0]
    first = min((p.pts for p in container.demux(stream) if p.pts is not None), default=0)
    container.seek(0)
    return Fraction(first) * Fraction(stream.time_base or 0)


def copy_audio(
    video: str | Path, source: str | Path, *, options: dict[str, str] | None = None, owner: str = "copy_audio"
) -> AudioCopy:
    """Rewrite ``video`` with the audio streams of ``source`` added (packets copied).

    ``options``: muxer options of the rewritten file (e.g. the fragmented-MP4 ``movflags``).

    Returns
    -------
    AudioCopy
        ``copied`` empty and ``reason`` set when nothing was copied (no audio, or it failed).
    """
    import av

    video, source = Path(video), Path(source)
    tmp = video.with_name(f".{video.name}.audio.part")
    try:
        with av.open(str(source)) as src:
            if not src.streams.audio:
                return AudioCopy(())
            names = tuple(a.codec_context.name for a in src.streams.audio)
            zero = _first_video_time(src) if src.streams.video else Fraction(0)
            with av.open(str(video)) as vin, av.open(
                str(tmp), "w", format=vin.format.name.split(",")[0], options=dict(options or {})
            ) as out:
                v_in = vin.streams.video[0]
                end = Fraction(v_in.duration or 0) * Fraction(v_in.time_base) if v_in.duration else None
                v_out = out.add_stream_from_template(v_in)
                a_map = {a.index: out.add_stream_from_template(a) for a in src.streams.audio}

                def videos() -> Iterator[tuple[Fraction, int, Any]]:
                    for pkt in vin.demux(v_in):
                        if pkt.size:
                            ts = pkt.dts if pkt.dts is not None else pkt.pts
                            yield Fraction(ts or 0) * Fraction(pkt.time_base), 0, pkt

                def audios() -> Iterator[tuple[Fraction, int, Any]]:
                    for pkt in src.demux(*src.streams.audio):
                        if not pkt.size or pkt.pts is None:
                            continue
                        tb = Fraction(pkt.time_base)
                        shift = round(zero / tb)
                        if end is not None and (pkt.pts - shift) * tb >= end:  # past the last frame (partial runs)
                            continue
                        pkt.pts -= shift
                        if pkt.dts is not None:
                            pkt.dts -= shift
                        yield Fraction(pkt.dts if pkt.dts is not None else pkt.pts) * tb, 1, pkt

                # in time order, so the muxer's interleaving buffer stays small
                for _, kind, pkt in heapq.merge(videos(), audios(), key=lambda item: (item[0], item[1])):
                    pkt.stream = v_out if kind == 0 else a_map[pkt.stream.index]
                    out.mux(pkt)
        tmp.replace(video)
        return AudioCopy(names)
    except (av.FFmpegError, OSError, ValueError) as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        why = getattr(exc, "strerror", None) or str(exc)
        return AudioCopy((), f"{owner}: expected to remux the audio into {video.name}; got {why}")
