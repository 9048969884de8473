"""gRPC servers of ``clara_stream.render.v1``: thin servicers over :class:`RenderEngine`.

Failures map to status codes through :data:`STATUS_BY_ERROR` (one table); requests are bounded
(1 MiB messages, viewport and region sizes checked by the library); an optional bearer token is
checked by :class:`TokenInterceptor` on every call.
"""

from __future__ import annotations

import functools
import hmac
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
from clara_stream.render import convert
from clara_stream.render.annotate import encode
from clara_stream.render.client import require_token_beyond_loopback
from clara_stream.render.datasets import DatasetRegistry, PathNotAllowed, UnknownDataset
from clara_stream.render.engine import MIME, Frame, RenderEngine, UnknownSession
from clara_stream.render.proto import render_pb2 as pb
from clara_stream.render.proto import render_pb2_grpc as pbg

log = logging.getLogger(__name__)



class NoRenderEngine(RuntimeError):
    """A render-session call reached a dataset-service-only server."""


MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 64 << 20
STREAM_QUEUE = 256  # gestures read ahead of one Stream call
STATUS_BY_ERROR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (PathNotAllowed, grpc.StatusCode.PERMISSION_DENIED),
    (UnknownDataset, grpc.StatusCode.NOT_FOUND),
    (UnknownSession, grpc.StatusCode.NOT_FOUND),
    (FileNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (TypeError, grpc.StatusCode.INVALID_ARGUMENT),
    (NoRenderEngine, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    for cls, code in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return code
    return None


def _rpc(method: Callable) -> Callable:
    """Map library exceptions to ``context.abort`` with the table's status and the message."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except grpc.RpcError as exc:  # from the dataset service a split render server asks: pass its status on
            context.abort(exc.code(), f"dataset service: {exc.details()}")
        except Exception as exc:
            code = status_for(exc)
            if code is None:
                log.exception("render: %s failed", method.__name__)
                context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            context.abort(code, str(exc))

    return wrapper


class DatasetServicer(pbg.DatasetServiceServicer):
    """Registrations of ``registry``; SaveSettings needs the render ``engine`` holding the session
    (None on a dataset-service-only server, which refuses it)."""

    def __init__(self, registry: DatasetRegistry, engine: RenderEngine | None = None) -> None:
        self.engine = engine
        self.registry = registry

    @_rpc
    def Register(self, request: pb.RegisterRequest, context) -> pb.DatasetInfo:
        rec = self.registry.register(
            request.path, name=request.name, mask=request.mask_path, dataset_id=request.dataset_id
        )
        return convert.info_to_pb(self.registry.info(rec.id))

    @_rpc
    def List(self, request, context) -> pb.ListDatasetsResponse:
        from dataclasses import asdict

        return pb.ListDatasetsResponse(datasets=[convert.info_to_pb(asdict(r)) for r in self.registry.list()])

    @_rpc
    def GetInfo(self, request: pb.GetInfoRequest, context) -> pb.DatasetInfo:
        return convert.info_to_pb(self.registry.info(request.dataset_id))

    @_rpc
    def SaveSettings(self, request: pb.SaveSettingsRequest, context) -> pb.SaveSettingsResponse:
        if self.engine is None:
            raise NoRenderEngine(
                "render: expected SaveSettings at the render server holding the session; got the dataset service"
            )
        sess = self.engine.get(request.session_id)
        return pb.SaveSettingsResponse(path=str(self.registry.save_settings(sess.dataset_id, sess.state)))


def _action(engine: RenderEngine, req: pb.InteractRequest) -> None:
    which = req.WhichOneof("action")
    sid = req.session_id
    if which is None:
        raise ValueError("render: expected one InteractRequest action (pan, zoom, ...); got none")
    a = getattr(req, which)
    if which == "pan":
        engine.interact(sid, "pan", dx=a.dx, dy=a.dy)
    elif which == "zoom":
        kw = {"factor": a.factor}
        if a.HasField("anchor"):
            kw.update(x=a.anchor.x, y=a.anchor.y)
        engine.interact(sid, "zoom", **kw)
    elif which == "rotate":
        engine.interact(sid, "rotate", dx=a.dx, dy=a.dy)
    elif which == "scroll":
        engine.interact(sid, "scroll", delta=a.delta)
    elif which == "window":
        engine.interact(sid, "window", dcenter=a.dcenter, dwidth=a.dwidth)
    elif which == "mode":
        engine.interact(sid, "mode", mode=convert.mode_from_pb(a.mode))
    elif which == "label":
        kw = {"value": a.value}
        if a.HasField("hidden"):
            kw["hidden"] = a.hidden
        if a.HasField("opacity"):
            kw["opacity"] = a.opacity
        engine.interact(sid, "label", **kw)
    else:
        engine.interact(sid, "reset")


class RenderServicer(pbg.RenderServiceServicer):
    def __init__(self, engine: RenderEngine) -> None:
        self.engine = engine

    def _state(self, session_id: str) -> pb.SessionState:
        s = self.engine.get(session_id)
        return pb.SessionState(session_id=s.id, dataset_id=s.dataset_id, view=convert.view_to_pb(s.state))

    @_rpc
    def OpenSession(self, request: pb.OpenSessionRequest, context) -> pb.SessionState:
        view = convert.view_from_pb(request.view) if request.HasField("view") else None
        return self._state(self.engine.open(request.dataset_id, view).id)

    @_rpc
    def GetSession(self, request: pb.GetSessionRequest, context) -> pb.SessionState:
        return self._state(request.session_id)

    @_rpc
    def CloseSession(self, request, context) -> pb.CloseSessionResponse:
        self.engine.close(request.session_id)
        return pb.CloseSessionResponse()

    @_rpc
    def SetView(self, request: pb.SetViewRequest, context) -> pb.SessionState:
        self.engine.set_view(request.session_id, convert.view_from_pb(request.view))
        return self._state(request.session_id)

    @_rpc
    def Interact(self, request: pb.InteractRequest, context) -> pb.InteractResponse:
        _action(self.engine, request)
        out = pb.InteractResponse(state=self._state(request.session_id))
        if request.render:
            out.frame.CopyFrom(convert.frame_to_pb(self.engine.render(request.session_id)))
        return out

    @_rpc
    def Render(self, request: pb.RenderRequest, context) -> pb.Frame:
        return convert.frame_to_pb(self.engine.render(request.session_id, interactive=request.interactive))

    def Stream(self, request_iterator: Iterator[pb.InteractRequest], context) -> Iterator[pb.Frame]:
        """One interactive frame per batch of queued gestures; a full frame at the end.

        At most ``STREAM_QUEUE`` gestures wait: beyond, the reader stops reading (gRPC flow control
        holds the client back) until the loop has taken them, or the call has ended."""
        q: queue.Queue = queue.Queue(maxsize=STREAM_QUEUE)

        def put(item: pb.InteractRequest | None) -> bool:
            while True:
                try:
                    q.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    if not context.is_active():
                        return False  # the loop is gone (aborted, or the client left): stop reading

        def read() -> None:
            try:
                for req in request_iterator:
                    if not put(req):
                        return
            except grpc.RpcError:
                pass  # client went away; the loop below ends on the sentinel
            finally:
                put(None)

        threading.Thread(target=read, daemon=True, name="render-stream-reader").start()
        session_id = ""
        done = False
        while not done:
            batch = [q.get()]
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            try:
                for req in (r for r in batch if r is not None):
                    _action(self.engine, req)
                    session_id = req.session_id
                if session_id and context.is_active():  # grpcio shows a cancelled stream's end as an end
                    yield convert.frame_to_pb(self.engine.render(session_id, interactive=not done))
            except Exception as exc:
                code = status_for(exc)
                if code is None:
                    log.exception("render: Stream failed")
                context.abort(code or grpc.StatusCode.INTERNAL, str(exc))

    @_rpc
    def Measure(self, request: pb.MeasureRequest, context) -> pb.Measurement:
        m = self.engine.measure(request.session_id, (request.a.x, request.a.y), (request.b.x, request.b.y))
        return convert.measurement_to_pb(m)

    @_rpc
    def GetTile(self, request: pb.TileRequest, context) -> pb.Frame:
        ts = self.engine.registry.tiles(request.dataset_id)
        fmt = convert.format_from_pb(request.format)
        quality = request.quality or 85
        if not 1 <= quality <= 100:
            raise ValueError(f"render: expected quality in 1..100; got {quality}")
        provisional = False
        if request.allow_provisional:
            arr, provisional = ts.tile_or_provisional(request.level, request.x, request.y)
            data = (
                encode(arr, fmt, quality)
                if provisional
                else ts.encoded_tile(request.level, request.x, request.y, fmt, quality, encode)
            )
        else:
            data = ts.encoded_tile(request.level, request.x, request.y, fmt, quality, encode)
        arr = ts.cached(request.level, request.x, request.y)
        h, w = arr.shape[:2] if arr is not None else (ts.tile_size, ts.tile_size)
        return convert.frame_to_pb(Frame(data, MIME[fmt], w, h, provisional=provisional))

    @_rpc
    def GetRegion(self, request: pb.RegionRequest, context) -> pb.Frame:
        ts = self.engine.registry.tiles(request.dataset_id)
        fmt = convert.format_from_pb(request.format)
        rgb, provisional = ts.region(
            request.x,
            request.y,
            request.width,
            request.height,
            request.downsample,
            allow_provisional=request.allow_provisional,
        )
        data = encode(rgb, fmt, request.quality or 85)
        return convert.frame_to_pb(Frame(data, MIME[fmt], request.width, request.height, provisional=provisional))


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuse calls without ``authorization: Bearer <token>`` (constant-time compare)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("TokenInterceptor: expected a non-empty token")
        self._expected = f"Bearer {token}".encode()

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "render: expected metadata authorization: Bearer <token>")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        got = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(got.encode(), self._expected):
            return continuation(handler_call_details)
        return self._deny_stream if handler_call_details.method.endswith("/Stream") else self._deny_unary


def serve(
    registry: DatasetRegistry,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str = "",
    workers: int = 8,
    max_sessions: int = 64,
    render: bool = True,
) -> tuple[grpc.Server, int, RenderEngine | None]:
    """Start both services on ``host:port`` (0 = a free port); return (server, port, engine).

    ``render=False`` serves the DatasetService alone (the trio's dataset service; engine None).

    Raises
    ------
    ValueError
        If ``host`` is beyond loopback and no token is set.
    """
    require_token_beyond_loopback(host, token, "render")
    engine = RenderEngine(registry, max_sessions=max_sessions) if render else None
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render-grpc"),
        interceptors=[TokenInterceptor(token)] if token else [],
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
        ],
    )
    pbg.add_DatasetServiceServicer_to_server(DatasetServicer(registry, engine), server)
    if engine is not None:
        pbg.add_RenderServiceServicer_to_server(RenderServicer(engine), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"render: expected to bind {host}:{port}; got a failure (port in use?)")
    server.start()
    return server, bound, engine
