"""Audio in the form every ASR backend takes: 16 kHz mono signed 16-bit PCM, in 100 ms chunks.

WAV input is checked from its header before any sample is read, so a wrong rate, stereo, a
non-WAV file or a 10-minute recording is refused at once with the reason, in bounded memory.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
CHUNK_MS = 100
CHUNK_BYTES = SAMPLE_RATE * CHUNK_MS // 1000 * 2
#: Longest utterance accepted (commands last seconds; dictation well under a minute).
MAX_SECONDS = 60.0
#: Peak below which a clip is taken as silence (≈ −50 dBFS).
SILENCE_PEAK = 100


class AudioInputError(ValueError):
    """Audio that no backend should be given: named rule, what was found, and the source."""


def read_wav(source: Path | str | bytes, max_seconds: float = MAX_SECONDS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Samples (int16, mono) of a PCM WAV file or its bytes.

    Raises
    ------
    AudioInputError
        Not a RIFF/WAVE file, not 16-bit PCM, not mono, not ``rate`` Hz, no samples, or longer
        than ``max_seconds`` (checked from the header, before reading the data).
    """
    name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    f = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")  # noqa: SIM115
    with f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioInputError(f"audio: expected a RIFF/WAVE file; got {head[:12]!r} [{name}]")
        f.seek(0)
        try:
            w = wave.open(f, "rb")
        except (wave.Error, EOFError) as exc:
            raise AudioInputError(f"audio: expected 16-bit PCM WAV; got {exc} [{name}]") from None
        with w:
            ch, width, hz, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width != 2:
                raise AudioInputError(f"audio: expected 16-bit samples; got {8 * width}-bit [{name}]")
            if ch != 1:
                raise AudioInputError(f"audio: expected mono; got {ch} channels [{name}]")
            if hz != rate:
                raise AudioInputError(
                    f"audio: expected {rate} Hz; got {hz} Hz [{name}] (resample: sox IN -r {rate} OUT)"
                )
            if n == 0:
                raise AudioInputError(f"audio: expected samples; got an empty recording [{name}]")
            if n > max_seconds * rate:
                raise AudioInputError(f"audio: expected at most {max_seconds:g} s; got {n / rate:.1f} s [{name}]")
            data = w.readframes(n)
    return np.frombuffer(data, "<i2").copy()


def check_speech(samples: np.ndarray, name: str = "<audio>") -> None:
    """Raise :class:`AudioInputError` when ``samples`` hold no sound (all below ``SILENCE_PEAK``)."""
    peak = int(np.abs(samples.astype(np.int32)).max()) if samples.size else 0
    if peak < SILENCE_PEAK:
        dbfs = 20 * np.log10(max(peak, 1) / 32768)
        raise AudioInputError(f"audio: expected speech; got silence (peak {dbfs:.0f} dBFS) [{name}]")


def chunks(samples: np.ndarray | bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Little-endian PCM in 100 ms chunks (the last one shorter), as Riva's samples stream it."""
    data = samples if isinstance(samples, bytes) else np.asarray(samples, "<i2").tobytes()
    for i in range(0, len(data), chunk_bytes):
        yield data[i : i + chunk_bytes]


def to_wav(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """WAV bytes of mono int16 ``samples``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    return buf.getvalue()


def resample(samples: np.ndarray, src: int, dst: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy) of int16 mono samples from ``src`` to ``dst`` Hz."""
    if src == dst:
        return np.asarray(samples, np.int16)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(src, dst)
    y = resample_poly(np.asarray(samples, np.float32), dst // g, src // g)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)
