"""Which voice backends are usable here, for ``clara-stream doctor``: each one is run, not imported.

A package being installed says little (a corrupt model, a missing Debian binary, a Riva server that
is down), so every check does the backend's real work on one spoken command: espeak-ng says it, each
recogniser hears it, the dialog manager understands the text. Riva is checked only against a server
named by ``riva_uri`` (there is no default server to assume).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

Check = tuple[str, bool, str]
PHRASE = "zoom in"
RIVA_TIMEOUT_S = 5.0


def _timed(fn: Callable[[], str]) -> tuple[bool, str]:
    """``fn()``'s detail and how long it took, or the failure named by type and message."""
    t0 = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - a doctor reports every failure, it raises none
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"{detail} ({(time.perf_counter() - t0) * 1e3:.0f} ms)"


def _heard(asr, samples: np.ndarray) -> str:
    return f"heard {asr.transcribe(samples)!r} for {PHRASE!r}"


def checks(riva_uri: str = "") -> list[Check]:
    """Every voice backend as ``(name, usable, detail)``; ``riva_uri`` (HOST:PORT) adds Riva's two."""
    from clara_stream.voice import asr as A
    from clara_stream.voice import whisper
    from clara_stream.voice.audio import resample
    from clara_stream.voice.tts import EspeakTTS

    out: list[Check] = []
    speech: list[np.ndarray] = []

    def say() -> str:
        samples, rate = EspeakTTS().synthesize(PHRASE)
        speech.append(resample(samples, rate))
        return f"said {PHRASE!r}: {len(samples) / rate:.2f} s at {rate} Hz"

    out.append(("voice tts espeak-ng", *_timed(say)))
    if not speech:  # nothing to hear: the recognisers cannot be run
        return [*out, ("voice asr (all)", False, "not run: espeak-ng made no test speech")]
    audio = speech[0]
    out.append(("voice asr pocketsphinx", *_timed(lambda: _heard(A.make("pocketsphinx"), audio))))
    if whisper.available():
        out.append(("voice asr whisper", *_timed(lambda: _heard(A.make("whisper"), audio))))
    else:
        out.append(("voice asr whisper", False, "not installed: pip install 'clara-stream[voice-whisper]'"))
    out.append(("voice asr auto", True, f"means {_auto_means(out)}"))

    def understand() -> str:
        from clara_stream.voice.dialog import DialogManager

        r = DialogManager().process(PHRASE)
        return f"{PHRASE!r} → {r.intent} (confidence {r.confidence:.2f})"

    out.append(("voice dialog MiniLM", *_timed(understand)))
    if riva_uri:
        out += _riva(riva_uri, audio)
    else:
        out.append(("voice riva", False, "not checked: name a server with `clara-stream doctor --riva-uri HOST:PORT`"))
    return out


def _auto_means(done: list[Check]) -> str:
    """What ``--backend auto`` picks, by the checks above (auto falls back when whisper fails to load)."""
    ok = {name: usable for name, usable, _ in done}
    if ok.get("voice asr whisper") and ok.get("voice asr pocketsphinx"):
        return "hybrid (pocketsphinx, whisper where its decoders disagree)"
    return "pocketsphinx alone" if ok.get("voice asr pocketsphinx") else "nothing usable"


def _riva(uri: str, audio: np.ndarray) -> list[Check]:
    import grpc
    import riva.client
    from clara_stream.voice.asr import RivaASR
    from clara_stream.voice.tts import RivaTTS

    channel = riva.client.Auth(uri=uri).channel
    try:
        grpc.channel_ready_future(channel).result(timeout=RIVA_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        return [("voice riva", False, f"no Riva server answered at {uri} within {RIVA_TIMEOUT_S:.0f} s")]
    finally:
        channel.close()

    def tts() -> str:
        samples, rate = RivaTTS(uri).synthesize(PHRASE)
        return f"said {PHRASE!r}: {len(samples) / rate:.2f} s at {rate} Hz"

    return [("voice asr riva", *_timed(lambda: _heard(RivaASR(uri), audio))), ("voice tts riva", *_timed(tts))]
