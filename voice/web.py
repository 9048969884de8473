"""Voice routes mounted on the render gateway (same origin, same token rules as its viewer).

- ``GET /api/voice/query?q=&dataset=&conversation=``: typed queries → the dialog manager's JSON.
- ``WS /ws/voice``: ``{"type": "start", "dataset": ID, "conversation": C}``, then binary 16 kHz mono
  int16 chunks (the page's Web Audio capture), then ``{"type": "end"}`` → ``partial`` transcripts
  while audio arrives, one ``result`` (transcript + dialog JSON) and the spoken reply as a WAV
  frame (``reply-audio`` header first). The page sends ``result.command`` over its viewer socket,
  so the render session changes through the gateway's own gRPC path. A bad message mid-utterance, or an
  utterance not ended within ``UTTERANCE_S``, ends it with a named error and frees the recogniser.
  Without a conversation id, a pending confirmation belongs to that request (typed) or socket only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from clara_stream.voice.audio import MAX_SECONDS, SAMPLE_RATE, AudioInputError, check_speech, to_wav
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)
MAX_UTTERANCE_BYTES = int(MAX_SECONDS * SAMPLE_RATE * 2)
MAX_TEXT_MESSAGE = 4096
#: Wall-clock limit of one utterance, start to end (the recogniser is held meanwhile).
UTTERANCE_S = MAX_SECONDS + 10.0
BACKEND_ENV = "CLARA_STREAM_VOICE_ASR"  # the gateway's ASR backend (it has no voice options of its own)


class _Engines:
    """Dialog manager, recognisers per label set, TTS: built on first use (the gateway starts fast)."""

    def __init__(self, client, backend: str = "auto") -> None:
        from clara_stream.voice.asr import BACKENDS

        if backend not in BACKENDS or backend == "riva":
            raise ValueError(f"voice: expected a gateway ASR backend in {[b for b in BACKENDS if b != 'riva']}; "
                             f"got {backend!r} (${BACKEND_ENV})")  # fmt: skip
        self.client, self.lock, self._dialog, self._asr = client, threading.Lock(), None, {}
        self.backend = backend

    def dialog(self):
        with self.lock:
            if self._dialog is None:
                from clara_stream.voice.dialog import DialogManager

                self._dialog = DialogManager()
            return self._dialog

    def labels(self, dataset: str) -> list[tuple[int, str]]:
        return [(int(lb.value), lb.name) for lb in self.client.info(dataset).labels] if dataset else []

    def asr(self, labels: list[tuple[int, str]]):
        """The recogniser for ``labels``: the configured backend (``auto``: the hybrid where the whisper
        extra loads, else pocketsphinx)."""
        from clara_stream.voice.asr import make

        key = tuple(labels)
        with self.lock:
            if key not in self._asr:
                if len(self._asr) >= 8:
                    self._asr.clear()
                self._asr[key] = (make(self.backend, labels), threading.Lock())
            return self._asr[key]

    def speak(self, text: str) -> bytes:
        from clara_stream.voice.tts import EspeakTTS

        samples, rate = EspeakTTS().synthesize(text)
        return to_wav(samples, rate)


def mount(app: FastAPI, client, check: Callable[[Request], None],
          ws_refusal: Callable[[WebSocket], tuple[int, str] | None], backend: str | None = None,
          utterance_s: float = UTTERANCE_S) -> None:  # fmt: skip
    """Add the voice routes to the gateway ``app``, under the gateway's own ``check``/``ws_refusal`` rules;
    ``backend``: the ASR backend (default ``$CLARA_STREAM_VOICE_ASR``, else ``auto``); ``utterance_s``:
    the time limit of one spoken utterance."""
    import grpc
    from clara_stream.voice.service import process_once

    if not utterance_s > 0:
        raise ValueError(f"voice: expected utterance_s > 0; got {utterance_s!r}")
    engines = _Engines(client, backend or os.environ.get(BACKEND_ENV) or "auto")

    @app.get("/api/voice/query")
    def voice_query(request: Request, q: str, dataset: str = "", conversation: str = "") -> JSONResponse:
        check(request)
        try:
            res = process_once(engines.dialog(), q, engines.labels(dataset), conversation)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        except grpc.RpcError as exc:
            raise HTTPException(404 if exc.code() == grpc.StatusCode.NOT_FOUND else 502, exc.details()) from None
        return JSONResponse(res.to_json())

    @app.websocket("/ws/voice")
    async def voice_ws(socket: WebSocket) -> None:
        refusal = ws_refusal(socket)
        await socket.accept()
        if refusal:
            await socket.close(code=refusal[0], reason=refusal[1])
            return
        try:
            await _utterances(socket, engines, utterance_s)
        except WebSocketDisconnect:
            return


async def _send(socket: WebSocket, obj: dict[str, Any]) -> None:
    await socket.send_text(json.dumps(obj))


async def _utterances(socket: WebSocket, engines: _Engines, limit_s: float) -> None:
    """One utterance after another: start → audio chunks → end (within ``limit_s``)."""
    import uuid

    import grpc
    from clara_stream.voice.service import MAX_CONVERSATION

    own = "\x00socket-" + uuid.uuid4().hex  # no conversation id: this socket's own, shared with no one
    while True:
        msg = await socket.receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is None:
            await _send(socket, {"type": "error", "message": "voice: expected a start message before audio"})
            continue
        try:
            start = _parse(msg["text"])
            if start.get("type") != "start":
                raise ValueError(f"voice: expected a start message; got {start.get('type')!r}")
            conversation = str(start.get("conversation", ""))
            if len(conversation) > MAX_CONVERSATION:
                raise ValueError(f"voice: expected a conversation id of at most {MAX_CONVERSATION} characters; "
                                 f"got {len(conversation)}")  # fmt: skip
            labels = await asyncio.to_thread(engines.labels, str(start.get("dataset", "")))
        except (ValueError, grpc.RpcError) as exc:
            await _send(
                socket, {"type": "error", "message": exc.details() if isinstance(exc, grpc.RpcError) else str(exc)}
            )
            continue
        await _one(socket, engines, labels, conversation or own, limit_s)


def _parse(text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT_MESSAGE:
        raise ValueError(f"voice: expected messages of at most {MAX_TEXT_MESSAGE} bytes; got {len(text)}")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"voice: expected a JSON text message; got invalid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(obj, dict):
        raise ValueError("voice: expected a JSON object")
    return obj


async def _collect(socket: WebSocket, chunks: asyncio.Queue, audio: bytearray, limit_s: float) -> str | None:
    """Audio frames into ``chunks`` and ``audio`` until the end message: None, or the rule broken
    (too long, a bad text message, no end within ``limit_s``)."""
    try:
        async with asyncio.timeout(limit_s):
            while True:
                msg = await socket.receive()
                if msg["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect()
                if msg.get("bytes") is not None:
                    if len(audio) + len(msg["bytes"]) > MAX_UTTERANCE_BYTES:
                        return f"voice: expected at most {MAX_SECONDS:g} s per utterance"
                    audio += msg["bytes"]
                    await chunks.put(bytes(msg["bytes"]))
                elif _parse(msg["text"]).get("type") == "end":
                    return None
    except TimeoutError:
        return f"voice: expected the end message within {limit_s:g} s of the start; the utterance was dropped"
    except ValueError as exc:
        return f"{exc}; the utterance was dropped"


async def _one(socket: WebSocket, engines: _Engines, labels, conversation: str, limit_s: float) -> None:
    """Stream one utterance into the recogniser (in a worker thread) and answer it; whatever ends the
    utterance, the worker is told so and the recogniser's lock released."""
    import numpy as np
    from clara_stream.voice.pipeline import resolve

    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue = asyncio.Queue()
    asr, asr_lock = await asyncio.to_thread(engines.asr, labels)  # building one takes seconds
    audio = bytearray()

    def feed():
        while True:
            c = asyncio.run_coroutine_threadsafe(chunks.get(), loop).result()
            if c is None:
                return
            yield c

    def recognise() -> tuple[list[str], tuple[str, str] | None]:
        with asr_lock:
            final = ""
            for t in asr.stream(feed()):
                if t.final:
                    final = t.text
                else:
                    asyncio.run_coroutine_threadsafe(_send(socket, {"type": "partial", "text": t.text}), loop)
            return [final, *asr.alternatives], getattr(asr, "decoded", None)

    worker = asyncio.create_task(asyncio.to_thread(recognise))
    try:
        error = await _collect(socket, chunks, audio, limit_s)
    finally:
        await chunks.put(None)
        candidates, pair = await worker  # decoded while the audio arrived: only the end of the utterance is left
    if error or len(audio) % 2:
        await _send(socket, {"type": "error", "message": error or "voice: expected 16-bit samples (even byte count)"})
        return
    samples = np.frombuffer(bytes(audio), "<i2")
    try:
        check_speech(samples)
        second, free = getattr(asr, "redecode", None), getattr(asr, "escalate", None)

        def again() -> list[str]:  # the complete utterance once more, only if nothing was understood
            with asr_lock:
                return second(samples)

        def whisper() -> list[str]:  # the free-form recogniser, only where the two decoders disagree; it keeps
            return free(samples)  # no per-utterance state, so the next utterance's decoders need not wait on it

        text, res = await asyncio.to_thread(resolve, engines.dialog(), candidates, labels, conversation,
                                            again if second else None, whisper if free else None, pair)  # fmt: skip
    except AudioInputError as exc:
        await _send(socket, {"type": "error", "message": str(exc)})
        return
    heard = res.to_json() if res else {"command": [], "intent": None, "reply": "I heard no command."}
    out = {"type": "result", "transcript": text, **heard}
    await _send(socket, out)
    wav = await asyncio.to_thread(engines.speak, out["reply"])
    await _send(socket, {"type": "reply-audio", "mime": "audio/wav", "bytes": len(wav)})
    await socket.send_bytes(wav)
