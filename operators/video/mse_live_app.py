"""The web side of :class:`~.mse_live.MseLiveSink`: the page, its two scripts and the WebSocket.

Routes: ``GET PATH`` (the page; ``?token=`` becomes the HttpOnly cookie, then a redirect to
``PATH``), ``GET /static/{live.js,mse_player.js}``, ``WS PATH`` (a ``{"type": "init", codecs,
width, height, fps}`` text message, the init segment, then one fragment per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from clara_stream.operators.video.mse_live import COOKIE, FILES, HEADERS, STATIC, Viewer, loopback_name, token_ok
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from clara_stream.operators.video.mse_live import MseLiveSink


def live_app(sink: MseLiveSink) -> FastAPI:
    """The FastAPI app serving ``sink``'s stream under its rules (module notes of ``mse_live``)."""
    loopback_only = loopback_name(sink.host)
    who = sink.owner

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        sink._loop, sink._init_ready = asyncio.get_running_loop(), asyncio.Event()
        sink._serving.set()
        yield

    app = FastAPI(title="clara-stream live video", lifespan=lifespan, openapi_url=None, docs_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if loopback_only and not loopback_name(request.headers.get("host", "")):
            return JSONResponse({"detail": f"{who}: expected a loopback Host header; got "
                                           f"{request.headers.get('host', '')!r}"}, 421)
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    @app.get(sink.route, response_model=None)
    def page(request: Request) -> Response:
        got = request.query_params.get("token")
        if got is not None:
            if not sink.token or not token_ok(sink.token, {"authorization": f"Bearer {got}"}, {}):
                raise HTTPException(401, f"{who}: expected a valid token")
            redirect = RedirectResponse(sink.route, status_code=303)
            redirect.set_cookie(COOKIE, got, httponly=True, samesite="strict", path="/")
            return redirect
        if not token_ok(sink.token, request.headers, request.cookies):
            raise HTTPException(401, f"{who}: expected a valid token (Authorization: Bearer or the cookie)")
        return FileResponse(STATIC / "live.html")

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in FILES:
            raise HTTPException(404, f"{who}: expected one of {sorted(FILES)}; got {name!r}")
        return FileResponse(FILES[name])

    def refusal(socket: WebSocket) -> tuple[int, str] | None:
        host = socket.headers.get("host", "")
        if loopback_only and not loopback_name(host):
            return 4403, f"{who}: expected a loopback Host header"
        origin = socket.headers.get("origin")  # None: not a browser, the token rule alone applies
        if origin is not None and origin not in {f"http://{host}", f"https://{host}", *sink.allowed_origins}:
            return 4403, f"{who}: expected origin http(s)://{host}"
        if "token" in socket.query_params or not token_ok(sink.token, socket.headers, socket.cookies):
            return 4401, f"{who}: expected a valid token (Authorization header or cookie, not the URL)"
        return None

    @app.websocket(sink.route)
    async def stream(socket: WebSocket) -> None:
        why = refusal(socket)  # accepted only to say why in the close frame; nothing is sent
        await socket.accept()
        if not why and len(sink._viewers) >= sink.max_viewers:
            why = 1013, f"{who}: expected at most {sink.max_viewers} viewers at once; got one more"  # try again later
        if why:
            await socket.close(code=why[0], reason=why[1])
            return
        viewer = Viewer(sink.viewer_queue)
        sink._viewers.add(viewer)  # before the wait: a viewer that came first gets the first keyframe
        sink.viewers += 1
        try:
            await sink._init_ready.wait()
            s = sink._stream
            await socket.send_json({"type": "init", "codecs": s.codecs, "width": s.coded[0], "height": s.coded[1],
                                    "fps": float(s.fps)})
            await socket.send_bytes(s.init_segment())
            while (data := await viewer.queue.get()) is not None:
                await socket.send_bytes(data)
            await socket.close(code=1001, reason="stream ended")
        except WebSocketDisconnect:
            pass
        finally:
            sink._viewers.discard(viewer)

    return app
