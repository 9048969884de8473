"""The dialog manager over REST, in the shape of the Clara multi-organ rendering article:
``GET /<project>/process_query?query=<text>`` → ``{query, intent, confidence, slots, command, reply}``.

Optional parameters: ``dataset`` (its label names come from the render service), ``session`` (a
render session: the command is executed there over gRPC and the new view state returned) and
``conversation`` (who a pending confirmation belongs to, at most 64 characters; without one, nothing is
left pending for another request to confirm). Also
``POST /<project>/transcribe`` (a 16 kHz mono WAV body → transcript + the same JSON) and
``GET /<project>/say?text=`` (WAV). Loopback by default; a token is required beyond it.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import threading
import uuid
from typing import Any

from clara_stream.voice.audio import MAX_SECONDS, SAMPLE_RATE, AudioInputError, read_wav, to_wav
from clara_stream.voice.dialog import DialogManager
from clara_stream.voice.pipeline import hear
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from clara_stream.loopback import is_loopback, refusal

PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BODY = int(MAX_SECONDS * SAMPLE_RATE * 2) + 4096
MAX_CONVERSATION = 64
NEEDS_CONVERSATION = "I can only do that within a conversation: send a conversation id, then confirm with yes."


def process_once(dialog: DialogManager, text: str, labels, conversation: str = ""):
    """``dialog.process`` where a pending confirmation belongs to ``conversation`` only; without one the
    query gets a key of its own and a destructive command is answered as needing a conversation (a
    shared default key let one client's "yes" confirm another's reset).

    Raises
    ------
    ValueError
        If ``conversation`` is longer than ``MAX_CONVERSATION`` characters.
    """
    if len(conversation) > MAX_CONVERSATION:
        raise ValueError(f"voice: expected a conversation id of at most {MAX_CONVERSATION} characters; "
                         f"got {len(conversation)}")  # fmt: skip
    if conversation:
        return dialog.process(text, labels, conversation)
    key = "\x00once-" + uuid.uuid4().hex
    res = dialog.process(text, labels, key)
    if res.pending_confirmation:
        dialog.process("cancel", labels, key)  # drop it: nobody can ever confirm this key
        res.pending_confirmation, res.reply = False, NEEDS_CONVERSATION
    return res


def view_summary(state) -> dict[str, Any]:
    """The parts of a render ``SessionState`` a voice command changes (for replies and tests)."""
    from clara_stream.render.proto import render_pb2 as pb

    v = state.view
    return {
        "session_id": state.session_id,
        "mode": pb.ViewMode.Name(v.mode).removeprefix("VIEW_MODE_").lower(),
        "zoom": v.camera.zoom,
        "focus_mm": [v.camera.focus_mm.x, v.camera.focus_mm.y, v.camera.focus_mm.z],
        "window": [v.window.center, v.window.width],
        "scale_bar": v.scale_bar,
        "hidden_labels": sorted(s.value for s in v.labels if s.hidden),
        "label_opacity": {str(s.value): round(s.opacity, 4) for s in v.labels},
    }


class VoiceContext:
    """What the routes share: the dialog manager, an optional render client, lazily built engines.

    Notes
    -----
    A recogniser keeps per-utterance state (``alternatives``, ``decoded``) and is not thread-safe:
    each comes with a lock held for a whole ``hear()``; the cache has a lock of its own.
    """

    def __init__(self, dialog: DialogManager, render_client=None, asr_backend: str = "auto") -> None:
        self.dialog, self.client, self.asr_backend = dialog, render_client, asr_backend
        self._asr: dict[tuple, tuple[Any, threading.Lock]] = {}
        self._cache_lock = threading.Lock()

    def labels(self, dataset: str) -> list[tuple[int, str]]:
        if not dataset:
            return []
        if self.client is None:
            raise ValueError("voice: expected --render ADDRESS to read the labels of dataset " + repr(dataset))
        return [(int(lb.value), lb.name) for lb in self.client.info(dataset).labels]

    def asr(self, labels: list[tuple[int, str]]) -> tuple[Any, threading.Lock]:
        """``(recogniser, its lock)`` for ``labels``, built once (hold the lock while using it)."""
        from clara_stream.voice.asr import make

        key = (self.asr_backend, tuple(labels))
        with self._cache_lock:
            if key not in self._asr:
                if len(self._asr) > 16:
                    self._asr.clear()  # users of a dropped recogniser keep it and its lock
                self._asr[key] = (make(self.asr_backend, labels), threading.Lock())
            return self._asr[key]

    def hear(self, samples, labels: list[tuple[int, str]]) -> str:
        """The transcript to act on (``pipeline.hear``), the recogniser held for the whole utterance."""
        asr, lock = self.asr(labels)
        with lock:
            return hear(asr, self.dialog, samples, labels)

    def handle(self, text: str, dataset: str = "", session: str = "", conversation: str = "") -> dict[str, Any]:
        """Understand ``text``; when ``session`` is given, run the command there (gRPC)."""
        if session and self.client is not None and not dataset:
            dataset = self.client.state(session).dataset_id
        labels = self.labels(dataset)
        res = process_once(self.dialog, text, labels, conversation).to_json()
        if session:
            if self.client is None:
                raise ValueError("voice: expected --render ADDRESS to act on a render session")
            from clara_stream.voice.commands import execute

            res["state"] = view_summary(execute(self.client, session, res["command"]))
        return res


def create_app(ctx: VoiceContext, token: str = "", bind_host: str = "127.0.0.1") -> FastAPI:
    """The REST app. ``token`` (Bearer) is required whenever ``bind_host`` is not loopback.

    Raises
    ------
    ValueError
        If ``bind_host`` is beyond loopback and no token is set.
    """
    import grpc

    if not token and not is_loopback(bind_host):
        raise ValueError(f"voice serve: expected a token when listening beyond loopback; got host {bind_host!r}")
    app = FastAPI(title="clara-stream voice dialog manager")
    app.state.ctx = ctx
    loopback_only = is_loopback(bind_host)

    @app.middleware("http")
    async def _this_machine(request: Request, call_next):  # noqa: ANN202 - Starlette's middleware shape
        why = refusal("voice", request.headers.get("host", ""), request.headers.get("origin"),
                      loopback_only=loopback_only, has_token=bool(token))  # process_query acts on a GET
        if why:
            return JSONResponse(status_code=why[0], content={"detail": why[1]})
        return await call_next(request)

    def guard(request: Request, project: str) -> None:
        if token:
            got = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(got.encode(), token.encode()):
                raise HTTPException(401, "voice: expected Authorization: Bearer <token>")
        if not PROJECT.match(project):
            raise HTTPException(400, f"voice: expected a project name [A-Za-z0-9_.-]{{1,64}}; got {project[:80]!r}")

    def run(fn, *args):
        try:
            return fn(*args)
        except AudioInputError as exc:
            raise HTTPException(422, str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise HTTPException(400, str(exc)) from None
        except grpc.RpcError as exc:
            code = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400}.get(exc.code(), 502)
            raise HTTPException(code, f"voice: render service: {exc.details()}") from None

    @app.get("/{project}/process_query")
    def process_query(project: str, request: Request, query: str = Query(...),
                      dataset: str = "", session: str = "", conversation: str = "") -> JSONResponse:  # fmt: skip
        guard(request, project)
        return JSONResponse(run(ctx.handle, query, dataset, session, conversation))

    @app.post("/{project}/transcribe")
    async def transcribe(project: str, request: Request, dataset: str = "", session: str = "",
                         conversation: str = "") -> JSONResponse:  # fmt: skip
        guard(request, project)
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY:
                raise HTTPException(413, f"voice: expected at most {MAX_SECONDS:g} s of 16 kHz mono audio")

        def work() -> dict[str, Any]:
            samples = read_wav(bytes(body))
            labels = ctx.labels(dataset)
            text = ctx.hear(samples, labels)  # n-best and second opinion, as the viewer
            if not text:
                return {"transcript": "", "intent": None, "command": [], "reply": "I heard no command."}
            return {"transcript": text, **ctx.handle(text, dataset, session, conversation)}

        return JSONResponse(await asyncio.to_thread(run, work))  # decoding off the event loop

    @app.get("/{project}/say")
    def say(project: str, request: Request, text: str = Query(..., max_length=1000)) -> Response:
        guard(request, project)
        from clara_stream.voice.tts import EspeakTTS

        samples, rate = run(EspeakTTS().synthesize, text)
        return Response(to_wav(samples, rate), media_type="audio/wav")

    return app
