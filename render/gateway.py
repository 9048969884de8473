"""Web gateway: FastAPI + WebSocket in front of the render gRPC services, serving the viewer page.

The page speaks a small JSON protocol over ``/ws``; the gateway turns each message into gRPC
calls and answers with a JSON ``frame`` header followed by the binary JPEG/PNG. Gestures that
queue up while a frame renders are applied together and rendered once (interactive quality);
when the user pauses, one full-quality frame follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import grpc
from clara_stream.render.client import RenderClient, is_loopback
from clara_stream.render.convert import MODE_TO_PB, PB_TO_MODE, color
from clara_stream.render.presets import preset
from clara_stream.render.proto import render_pb2 as pb
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from google.protobuf import json_format

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_WS_MESSAGE = 4096
TOGGLES = ("scale_bar", "picture_in_picture", "show_mask")
IDLE_REFINE_S = 0.15
HTTP_BY_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
}
ACTIONS = {
    "pan": lambda m: {"pan": (float(m["dx"]), float(m["dy"]))},
    "zoom": lambda m: {
        "zoom": (float(m["factor"]), float(m.get("x", -1)), float(m.get("y", -1))) if "x" in m else float(m["factor"])
    },
    "rotate": lambda m: {"rotate": (float(m["dx"]), float(m["dy"]))},
    "scroll": lambda m: {"scroll": float(m["delta"])},
    "window": lambda m: {"window": (float(m.get("dcenter", 0)), float(m.get("dwidth", 0)))},
    "mode": lambda m: {"mode": str(m["mode"])},
    "label": lambda m: {"label": (int(m["value"]), m.get("hidden"), m.get("opacity"))},
    "reset": lambda m: {"reset": True},
}


def _msg_dict(msg) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


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


def _host_name(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[: h.index("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def create_app(
    render_address: str,
    token: str = "",
    grpc_token: str = "",
    bind_host: str = "127.0.0.1",
    allowed_origins: tuple[str, ...] = (),
) -> FastAPI:
    """The gateway app talking to the render server at ``render_address``.

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
    if not token and not is_loopback(bind_host):
        raise ValueError(f"gateway: expected a token when listening beyond loopback; got host {bind_host!r}")
    client = RenderClient(render_address, token=grpc_token)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        client.close_channel()

    app = FastAPI(title="clara-stream render gateway", lifespan=lifespan)
    app.state.client = client
    loopback_only = is_loopback(bind_host)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if loopback_only and not is_loopback(_host_name(request.headers.get("host", ""))):
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
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC) or not path.is_file():
            raise HTTPException(404, f"gateway: expected a static file name; got {name!r}")
        return FileResponse(path)

    @app.get("/api/datasets")
    def datasets(request: Request) -> JSONResponse:
        check(request)
        return JSONResponse([_msg_dict(d) for d in call(client.list)])

    @app.get("/api/datasets/{dataset_id}")
    def dataset_info(dataset_id: str, request: Request) -> JSONResponse:
        check(request)
        return JSONResponse(_msg_dict(call(client.info, dataset_id)))

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
        refusal = None  # accepted only to say why in the close frame; nothing is read or sent
        if loopback_only and not is_loopback(_host_name(socket.headers.get("host", ""))):
            refusal = (4403, "gateway: expected a loopback Host header")
        elif not origin_ok(socket.headers):
            refusal = (4403, f"gateway: expected origin http(s)://{socket.headers.get('host')}")
        elif "token" in socket.query_params or not authorised(socket.headers, socket.cookies):
            refusal = (4401, "gateway: expected a valid token (Authorization header or cookie, not the URL)")
        await socket.accept()
        if refusal:
            await socket.close(code=refusal[0], reason=refusal[1])
            return
        await ViewerSession(client, socket).run()

    return app


class ViewerSession:
    """One browser viewport: a render session plus the coalescing render loop."""

    def __init__(self, client: RenderClient, socket: WebSocket) -> None:
        self.client = client
        self.socket = socket
        self.session_id = ""
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending_json: list[dict[str, Any]] = []
        self.view = None

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            await self._loop()
        finally:
            reader.cancel()
            if self.session_id:
                await asyncio.to_thread(self._safe_close)

    def _safe_close(self) -> None:
        try:
            self.client.close(self.session_id)
        except grpc.RpcError:
            log.info("gateway: session %s already gone", self.session_id)

    async def _read(self) -> None:
        try:
            while True:
                text = await self.socket.receive_text()
                await self.queue.put(text)
        except (WebSocketDisconnect, RuntimeError):
            await self.queue.put(None)

    async def _loop(self) -> None:
        refined = True
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), timeout=IDLE_REFINE_S if not refined else None)
            except TimeoutError:
                await self._send_frame(interactive=False, ack=None)
                refined = True
                continue
            batch = [first]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            if None in batch:
                return
            ack, render, interactive = None, False, True
            for text in batch:
                try:
                    msg = self._parse(text)
                    ack = msg.get("id", ack)
                    r = await asyncio.to_thread(self._apply, msg)
                    render = render or r
                    if msg["type"] in ("open", "mode", "label", "toggle", "resize", "reset", "preset"):
                        interactive = False
                except (ValueError, KeyError, TypeError) as exc:
                    await self.socket.send_text(json.dumps({"type": "error", "message": str(exc)}))
                except grpc.RpcError as exc:
                    await self.socket.send_text(json.dumps({"type": "error", "message": exc.details()}))
            await self._flush_json()
            if render and self.session_id:
                await self._send_frame(interactive=interactive, ack=ack)
                refined = not interactive
            elif ack is not None:  # nothing to draw (measure, save, errors): still say what was handled
                await self.socket.send_text(json.dumps({"type": "ack", "ack": ack}))

    @staticmethod
    def _parse(text: str) -> dict[str, Any]:
        if len(text) > MAX_WS_MESSAGE:
            raise ValueError(f"gateway: expected messages of at most {MAX_WS_MESSAGE} bytes; got {len(text)}")
        msg = json.loads(text)
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ValueError("gateway: expected a JSON object with a string 'type'")
        return msg

    def _apply(self, msg: dict[str, Any]) -> bool:
        """Apply one message (blocking gRPC); return whether a new frame is needed."""
        t = msg["type"]
        c = self.client
        if t == "open":
            width, height = _size(msg)  # validate before opening anything
            st = c.open(str(msg["dataset"]))
            if self.session_id:
                c.close(self.session_id)
            self.session_id = st.session_id
            view = st.view
            view.width, view.height = width, height
            self.view = c.set_view(self.session_id, view).view
            toggles = {k: getattr(self.view, k) for k in TOGGLES + ("mask_opacity",)}
            self._send_json_sync({"type": "info", "info": _msg_dict(c.info(st.dataset_id)), "view": toggles})
            return True
        if not self.session_id:
            raise ValueError("gateway: expected an 'open' message first")
        if t in ACTIONS:
            self.view = c.interact(self.session_id, **ACTIONS[t](msg)).state.view
            return True
        if t in ("toggle", "resize", "set"):
            state = c.state(self.session_id).view
            if t == "toggle":
                name = str(msg["name"])
                if name not in TOGGLES:
                    raise ValueError(
                        f"gateway: expected toggle name scale_bar/picture_in_picture/show_mask; got {name}"
                    )
                setattr(state, name, bool(msg["value"]))
            elif t == "resize":
                state.width, state.height = _size(msg)
            else:
                if "mask_opacity" in msg:
                    state.mask_opacity = float(msg["mask_opacity"])
                if "window_center" in msg and "window_width" in msg:
                    state.window.center = float(msg["window_center"])
                    state.window.width = float(msg["window_width"])
            self.view = c.set_view(self.session_id, state).view
            return True
        if t == "preset":  # a transfer-function preset for the volume view (CT in HU, MR relative)
            sess = c.state(self.session_id)
            state, info = sess.view, c.info(sess.dataset_id)
            value_range = tuple(info.value_range) if len(info.value_range) == 2 else (0.0, 1.0)
            del state.transfer[:]
            pts = preset(str(msg["name"]), value_range)
            state.transfer.extend(pb.TransferPoint(value=p.value, color=color(p.color), opacity=p.opacity) for p in pts)
            state.mode = MODE_TO_PB["composite"]
            self.view = c.set_view(self.session_id, state).view
            return True
        if t == "measure":
            m = c.measure(self.session_id, tuple(msg["a"]), tuple(msg["b"]))
            self._send_json_sync(
                {
                    "type": "measure",
                    "distance": m.distance,
                    "unit": m.unit,
                    "distance_px": m.distance_px,
                    "a": msg["a"],
                    "b": msg["b"],
                }
            )
            return False
        if t == "save":
            self._send_json_sync({"type": "saved", "path": c.save_settings(self.session_id)})
            return False
        raise ValueError(
            f"gateway: expected a message type in open, {', '.join(ACTIONS)}, toggle, resize, set, preset, "
            f"measure, save; got {t!r}"
        )

    def _send_json_sync(self, obj: dict[str, Any]) -> None:
        """Queue a JSON message from the worker thread; sent by the loop before the next frame."""
        self.pending_json.append(obj)

    async def _flush_json(self) -> None:
        while self.pending_json:
            await self.socket.send_text(json.dumps(self.pending_json.pop(0)))

    async def _send_frame(self, interactive: bool, ack: Any) -> None:
        await self._flush_json()
        if not self.session_id:
            return
        try:
            f = await asyncio.to_thread(self.client.render, self.session_id, interactive)
        except grpc.RpcError as exc:
            await self.socket.send_text(json.dumps({"type": "error", "message": exc.details()}))
            return
        view = self.view  # the state every change returned: no extra round trip per frame
        header = {
            "type": "frame",
            "ack": ack,
            "sequence": f.sequence,
            "interactive": interactive,
            "provisional": f.provisional,
            "render_ms": f.render_ms,
            "unit": f.unit,
            "units_per_px": f.units_per_px,
            "mime": f.mime,
            "width": f.width,
            "height": f.height,
            "mode": PB_TO_MODE.get(view.mode, ""),
            "zoom": view.camera.zoom,
        }
        await self.socket.send_text(json.dumps(header))
        await self.socket.send_bytes(f.data)


def _size(msg: dict[str, Any]) -> tuple[int, int]:
    w, h = int(msg.get("width", 512)), int(msg.get("height", 512))
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"gateway: expected width and height in 16..4096; got {w}x{h}")
    return w, h
