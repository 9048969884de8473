"""Web gateway: FastAPI + WebSocket in front of the render gRPC services, serving the viewer page.

Routes, authentication (token → HttpOnly cookie, bearer header), security headers and the
WebSocket handshake checks live here; the per-viewport protocol is
:class:`clara_stream.render.viewer_session.ViewerSession`.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib
import importlib.util
import logging
from pathlib import Path

import grpc
from clara_stream.render.client import RenderClient, is_loopback, require_token_beyond_loopback
from clara_stream.render.stream import PLAYER_JS
from clara_stream.render.viewer_session import ViewerSession, msg_dict
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
HTTP_BY_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
}
COOKIE = "clara_render_token"
#: Scripts and styles only from the gateway's own files; frames are blob: URLs; no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(
    render_address: str,
    token: str = "",
    grpc_token: str = "",
    bind_host: str = "127.0.0.1",
    allowed_origins: tuple[str, ...] = (),
    dataset_address: str = "",
) -> FastAPI:
    """The gateway app talking to the render server at ``render_address`` (and to a separate dataset
    service at ``dataset_address`` for listing and describing datasets, when given).

    ``token`` protects the gateway: API calls and the WebSocket need ``Authorization: Bearer`` or the
    HttpOnly cookie that ``GET /?token=…`` sets (then redirects to ``/``, so the token leaves the URL
    and the page's history); a token in any other URL is refused. It is required whenever
    ``bind_host`` is not loopback. On loopback, requests whose Host header is not a loopback name
    are refused (DNS rebinding). The WebSocket accepts only its own origin (or ``allowed_origins``).
    ``grpc_token`` is sent to the render server.

    Raises
    ------
    ValueError
        If ``bind_host`` is beyond loopback and no token is set.
    """
    require_token_beyond_loopback(bind_host, token, "gateway")
    client = RenderClient(render_address, token=grpc_token, dataset_address=dataset_address)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        client.close_channel()

    app = FastAPI(title="clara-stream render gateway", lifespan=lifespan)
    app.state.client = client
    loopback_only = is_loopback(bind_host)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if loopback_only and not is_loopback(request.headers.get("host", "")):
            return JSONResponse(
                {"detail": f"gateway: expected a loopback Host header; got {request.headers.get('host', '')!r}"}, 421
            )
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def valid(got: str) -> bool:
        return bool(got) and hmac.compare_digest(got.encode(), token.encode())

    def authorised(headers, cookies) -> bool:
        if not token:
            return True
        bearer = headers.get("authorization", "")
        return valid(bearer.removeprefix("Bearer ")) if bearer else valid(cookies.get(COOKIE, ""))

    def check(request: Request) -> None:
        if "token" in request.query_params:
            raise HTTPException(401, "gateway: expected the token in Authorization: Bearer or the cookie, not the URL")
        if not authorised(request.headers, request.cookies):
            raise HTTPException(401, "gateway: expected a valid token (Authorization: Bearer or the session cookie)")

    def origin_ok(headers) -> bool:
        origin = headers.get("origin")
        if origin is None:  # not a browser: the token rule alone applies
            return True
        own = {f"{scheme}://{headers.get('host', '')}" for scheme in ("http", "https")}
        return origin in own or origin in allowed_origins

    def ws_refusal(socket: WebSocket) -> tuple[int, str] | None:
        """The close code and reason for a WebSocket this gateway must refuse, else None (every route's rule)."""
        if loopback_only and not is_loopback(socket.headers.get("host", "")):
            return 4403, "gateway: expected a loopback Host header"
        if not origin_ok(socket.headers):
            return 4403, f"gateway: expected origin http(s)://{socket.headers.get('host')}"
        if "token" in socket.query_params or not authorised(socket.headers, socket.cookies):
            return 4401, "gateway: expected a valid token (Authorization header or cookie, not the URL)"
        return None

    def call(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except grpc.RpcError as exc:
            raise HTTPException(HTTP_BY_GRPC.get(exc.code(), 502), exc.details()) from exc

    @app.get("/", response_model=None)
    def index(request: Request) -> Response:
        """The viewer page; ``?token=`` (first load) becomes an HttpOnly cookie and leaves the URL."""
        got = request.query_params.get("token")
        if got is not None:
            if not token or not valid(got):
                raise HTTPException(401, "gateway: expected a valid token")
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(COOKIE, got, httponly=True, samesite="strict", path="/")
            return redirect
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name == PLAYER_JS.name:  # the MSE player shared with the live video page
            return FileResponse(PLAYER_JS)
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC) or not path.is_file():
            raise HTTPException(404, f"gateway: expected a static file name; got {name!r}")
        return FileResponse(path)

    @app.get("/api/datasets")
    def datasets(request: Request) -> JSONResponse:
        check(request)
        return JSONResponse([msg_dict(d) for d in call(client.list)])

    @app.get("/api/datasets/{dataset_id}")
    def dataset_info(dataset_id: str, request: Request) -> JSONResponse:
        check(request)
        return JSONResponse(msg_dict(call(client.info, dataset_id)))

    @app.get("/api/tiles/{dataset_id}/{level}/{x}/{y}.{fmt}")
    def tile(dataset_id: str, level: int, x: int, y: int, fmt: str, request: Request) -> Response:
        check(request)
        if fmt not in ("jpg", "png") or not (0 <= level < 64 and 0 <= x < 2**31 and 0 <= y < 2**31):
            raise HTTPException(
                400, f"gateway: expected level 0..63, x and y 0..2^31-1 and .jpg or .png; got {level}/{x}/{y}.{fmt}"
            )
        f = call(client.tile, dataset_id, level, x, y, fmt="png" if fmt == "png" else "jpeg")
        return Response(f.data, media_type=f.mime, headers={"X-Provisional": str(f.provisional).lower()})

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        refusal = ws_refusal(socket)  # accepted only to say why in the close frame; nothing is read or sent
        await socket.accept()
        if refusal:
            await socket.close(code=refusal[0], reason=refusal[1])
            return
        await ViewerSession(client, socket).run()

    if importlib.util.find_spec("clara_stream.voice.web") is not None:  # voice routes (issue 14) when installed
        voice = importlib.import_module("clara_stream.voice.web")
        voice.mount(app, client, check, ws_refusal)
    return app
