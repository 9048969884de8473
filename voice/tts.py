"""Text to speech: espeak-ng (embedded default, Debian package) and Riva's SpeechSynthesisService.

Both return ``(samples int16 mono, rate)``. espeak-ng is resolved by absolute path (a ``espeak-ng``
earlier on PATH is not used) and speaks at its native 22.05 kHz, as Riva's TTS does.
"""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np

ESPEAK = Path("/usr/bin/espeak-ng")
MAX_TEXT = 1000
RIVA_RATE = 22_050


def _check_text(text: str) -> str:
    text = " ".join(str(text).split())
    if not 0 < len(text) <= MAX_TEXT:
        raise ValueError(f"tts: expected text of 1..{MAX_TEXT} characters; got {len(text)}")
    return text


class EspeakTTS:
    """espeak-ng through its CLI (``--stdout`` WAV).

    Parameters
    ----------
    voice : str
        espeak-ng voice, e.g. ``en-us``, ``en-gb``, ``en-us+f3`` (variant after ``+``).
    speed : int
        Words per minute, 80..450.
    pitch : int
        0..99.
    """

    name = "espeak"

    def __init__(self, voice: str = "en-us", speed: int = 160, pitch: int = 50, binary: Path = ESPEAK) -> None:
        if not 80 <= int(speed) <= 450 or not 0 <= int(pitch) <= 99:
            raise ValueError(f"EspeakTTS: expected speed 80..450 and pitch 0..99; got {speed}, {pitch}")
        if not voice.replace("-", "").replace("+", "").replace("_", "").isalnum():
            raise ValueError(f"EspeakTTS: expected a voice name such as en-us or en-us+f3; got {voice!r}")
        if not Path(binary).is_file():
            raise FileNotFoundError(f"EspeakTTS: expected espeak-ng at {binary} (apt-get install espeak-ng)")
        self.voice, self.speed, self.pitch, self.binary = voice, int(speed), int(pitch), Path(binary)

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        text = _check_text(text)
        cmd = [str(self.binary), "-v", self.voice, "-s", str(self.speed), "-p", str(self.pitch), "--stdout", "--", text]
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=30).stdout
        with wave.open(io.BytesIO(out), "rb") as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


class RivaTTS:
    """Riva ``SpeechSynthesisService.Synthesize`` (LINEAR_PCM, 22.05 kHz by default)."""

    name = "riva"

    def __init__(self, uri: str, voice_name: str = "", language_code: str = "en-US", use_ssl: bool = False,
                 ssl_cert: str | None = None, rate: int = RIVA_RATE) -> None:  # fmt: skip
        import riva.client

        self.auth = riva.client.Auth(uri=uri, use_ssl=use_ssl, ssl_root_cert=ssl_cert)
        self.service = riva.client.SpeechSynthesisService(self.auth)
        self.voice_name, self.language_code, self.rate = voice_name, language_code, int(rate)

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        resp = self.service.synthesize(
            _check_text(text), voice_name=self.voice_name or None, language_code=self.language_code,
            sample_rate_hz=self.rate,
        )  # fmt: skip
        return np.frombuffer(resp.audio, "<i2").copy(), self.rate
