"""Which voice backends are usable here, for ``clara-stream doctor``: each one is run, not imported.

A package being installed says little (a corrupt model, a missing Debian binary, a Riva server that
is down), so every check does the backend's real work on one spoken command: espeak-ng says it, each
recogniser must hear it, the dialog manager must understand it. Riva is checked only against a
server named by ``riva_uri`` (there is no default server to assume), plaintext, each call bounded.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable

import numpy as np

Check = tuple[str, bool, str]
PHRASE = "zoom in"
RIVA_TIMEOUT_S = 5.0
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def _timed(fn: Callable[[], str]) -> tuple[bool, str]:
    """``fn()``'s detail and how long it took, or the failure named by type and message."""
    t0 = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - a doctor reports every failure, it raises none
        if callable(getattr(exc, "code", None)) and callable(getattr(exc, "details", None)):  # grpc.RpcError
            return False, f"{exc.code().name}: {exc.details()}"
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"{detail} ({(time.perf_counter() - t0) * 1e3:.0f} ms)"


def _heard(asr, samples: np.ndarray) -> str:
    """What ``asr`` heard; raises unless it is the phrase said (clean speech: anything else is broken)."""
    text = asr.transcribe(samples)
    if " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split()) != PHRASE:
        raise ValueError(f"expected to hear {PHRASE!r}; got {text!r}")
    return f"heard {text!r} for {PHRASE!r}"


def checks(riva_uri: str = "") -> list[Check]:
    """Every voice backend as ``(name, usable, detail)``; ``riva_uri`` (HOST:PORT) adds Riva's two."""
    try:
        from clara_stream.voice import asr as A
        from clara_stream.voice import whisper
        from clara_stream.voice.audio import check_speech, resample
        from clara_stream.voice.tts import EspeakTTS
    except ImportError as exc:
        return [("voice backends", False, f"not checked: {exc} (extra: voice)")]

    out: list[Check] = []
    speech: list[np.ndarray] = []

    def say() -> str:
        samples, rate = EspeakTTS().synthesize(PHRASE)
        check_speech(samples, "espeak-ng")
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
    out.append(("voice asr auto", *_timed(lambda: f"means {A.make('auto').name}")))  # what auto really builds

    def understand() -> str:
        from clara_stream.voice.dialog import DialogManager

        r = DialogManager().process(PHRASE)
        if r.intent != "zoom_in":
            raise ValueError(f"expected {PHRASE!r} to mean zoom_in; got {r.intent}")
        return f"{PHRASE!r} → {r.intent} (confidence {r.confidence:.2f})"

    out.append(("voice dialog MiniLM", *_timed(understand)))
    if riva_uri:
        out += riva(riva_uri, audio)
    else:
        out.append(("voice riva", False, "not checked: name a server with `clara-stream doctor --riva-uri HOST:PORT`"))
    return out


def _bounded(fn: Callable[[], str], what: str) -> Callable[[], str]:
    """``fn`` on a worker thread, given up after ``RIVA_TIMEOUT_S`` (riva-client's streaming call
    takes no deadline: a server that accepts and never answers would hang the doctor)."""
    def run() -> str:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        try:
            return pool.submit(fn).result(timeout=RIVA_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"expected {what} within {RIVA_TIMEOUT_S:.0f} s; got no answer") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return run


def riva(uri: str, audio: np.ndarray) -> list[Check]:
    """Riva's streaming ASR on ``audio`` and its TTS, against the plaintext server at ``uri``."""
    m = _HOST_PORT.match(uri)
    if not m or not 1 <= int(m.group(1)) <= 65535:
        return [("voice riva", False, f"expected --riva-uri HOST:PORT (no scheme, port 1-65535); got {uri!r}")]
    try:
        import grpc
        import riva.client
        from clara_stream.voice.asr import RivaASR
        from clara_stream.voice.tts import RivaTTS
    except ImportError as exc:
        return [("voice riva", False, f"not checked: {exc} (extra: voice)")]
    channel = riva.client.Auth(uri=uri).channel
    try:
        grpc.channel_ready_future(channel).result(timeout=RIVA_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        return [("voice riva", False, f"no plaintext Riva server answered at {uri} within {RIVA_TIMEOUT_S:.0f} s")]
    finally:
        channel.close()

    def tts() -> str:
        samples, rate = RivaTTS(uri).synthesize(PHRASE)
        return f"said {PHRASE!r}: {len(samples) / rate:.2f} s at {rate} Hz"

    return [("voice asr riva", *_timed(_bounded(lambda: _heard(RivaASR(uri), audio), "a transcript"))),
            ("voice tts riva", *_timed(_bounded(tts, "speech")))]
