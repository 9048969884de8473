"""Python client of the render and dataset services (``clara_stream.render.v1``).

It imports only grpc, numpy and the generated protocol, never the render library or operators,
so pipelines (``RenderPublisherOp``) and voice talk to the service without an import loop.

Example
-------
>>> c = RenderClient("127.0.0.1:50051")                      # doctest: +SKIP
>>> ds = c.register("/data/ct", mask_path="/data/ct/seg.nii.gz")
>>> s = c.open(ds.id)
>>> c.interact(s.session_id, zoom=1.5)
>>> rgb = c.render_rgb(s.session_id)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grpc
import numpy as np
from clara_stream.render.proto import render_pb2 as pb
from clara_stream.render.proto import render_pb2_grpc as pbg

from clara_stream.loopback import is_loopback  # noqa: F401  (re-exported: the gateway and serve use it)


def require_token_beyond_loopback(host: str, token: str, who: str) -> None:
    """Refuse to serve beyond loopback without a token (DESIGN: safe by default).

    Raises
    ------
    ValueError
        ``<who>: expected a token when listening beyond loopback; got host …``.
    """
    if not token and not is_loopback(host):
        raise ValueError(f"{who}: expected a token when listening beyond loopback; got host {host!r}")


def decode(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG frame bytes to RGB uint8 (cv2 imported on first use)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("decode: expected JPEG or PNG bytes; got undecodable data")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mode_to_pb(mode: str) -> int:
    """The ``ViewMode`` enum value of a mode name (``axial`` → ``VIEW_MODE_AXIAL``)."""
    try:
        return pb.ViewMode.Value(f"VIEW_MODE_{str(mode).upper()}")
    except ValueError:
        raise ValueError(f"RenderClient: expected a view mode name such as 'axial' or 'mip'; got {mode!r}") from None


class RenderClient:
    """Blocking client; one channel for both services, or a second one for a separate dataset service.

    Parameters
    ----------
    address : str
        ``host:port`` of the render server (it serves the DatasetService too).
    token : str
        Bearer token when the servers require one.
    timeout_s : float
        Deadline of each unary call.
    dataset_address : str
        ``host:port`` of a separate dataset service for Register/List/GetInfo (the render trio
        split into three processes); empty = ``address``. SaveSettings always goes to the render
        server, which holds the sessions.
    """

    def __init__(self, address: str, token: str = "", timeout_s: float = 60.0, dataset_address: str = "") -> None:
        self.address = address
        self.timeout_s = float(timeout_s)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        # A restarted peer (a pod after a reboot) is found again within ~2 s, not gRPC's default 120 s.
        options = [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self.channel = grpc.insecure_channel(address, options=options)
        self._dataset_channel = (
            grpc.insecure_channel(dataset_address, options=options)
            if dataset_address and dataset_address != address
            else None
        )
        self.datasets = pbg.DatasetServiceStub(self._dataset_channel or self.channel)
        self._session_datasets = pbg.DatasetServiceStub(self.channel)
        self.render_stub = pbg.RenderServiceStub(self.channel)

    def _call(self, fn, request):
        return fn(request, timeout=self.timeout_s, metadata=self._metadata)

    # ---- datasets -----------------------------------------------------------------------------
    def register(self, path: str, name: str = "", mask_path: str = "", dataset_id: str = "") -> pb.DatasetInfo:
        req = pb.RegisterRequest(path=str(path), name=name, mask_path=str(mask_path or ""), dataset_id=dataset_id)
        return self._call(self.datasets.Register, req)

    def list(self) -> list[pb.DatasetInfo]:
        return list(self._call(self.datasets.List, pb.ListDatasetsRequest()).datasets)

    def info(self, dataset_id: str) -> pb.DatasetInfo:
        return self._call(self.datasets.GetInfo, pb.GetInfoRequest(dataset_id=dataset_id))

    def save_settings(self, session_id: str) -> str:
        return self._call(self._session_datasets.SaveSettings, pb.SaveSettingsRequest(session_id=session_id)).path

    # ---- sessions -----------------------------------------------------------------------------
    def open(self, dataset_id: str, view: pb.ViewState | None = None) -> pb.SessionState:
        req = pb.OpenSessionRequest(dataset_id=dataset_id)
        if view is not None:
            req.view.CopyFrom(view)
        return self._call(self.render_stub.OpenSession, req)

    def state(self, session_id: str) -> pb.SessionState:
        return self._call(self.render_stub.GetSession, pb.GetSessionRequest(session_id=session_id))

    def close(self, session_id: str) -> None:
        self._call(self.render_stub.CloseSession, pb.CloseSessionRequest(session_id=session_id))

    def set_view(self, session_id: str, view: pb.ViewState) -> pb.SessionState:
        return self._call(self.render_stub.SetView, pb.SetViewRequest(session_id=session_id, view=view))

    @staticmethod
    def action(session_id: str, **kw) -> pb.InteractRequest:
        """Build one InteractRequest: pan=(dx, dy), zoom=f or (f, x, y), rotate=(dx, dy), scroll=n,
        window=(dc, dw), mode="mip", label=(value, hidden, opacity|None), reset=True."""
        if len(kw) != 1:
            raise ValueError(f"RenderClient: expected exactly one action keyword; got {sorted(kw)}")
        ((name, v),) = kw.items()
        req = pb.InteractRequest(session_id=session_id)
        if name == "pan":
            req.pan.CopyFrom(pb.Pan(dx=v[0], dy=v[1]))
        elif name == "zoom":
            f, *anchor = v if isinstance(v, tuple | list) else (v,)
            req.zoom.CopyFrom(pb.Zoom(factor=f))
            if anchor:
                req.zoom.anchor.CopyFrom(pb.Point2(x=anchor[0], y=anchor[1]))
        elif name == "rotate":
            req.rotate.CopyFrom(pb.Rotate(dx=v[0], dy=v[1]))
        elif name == "scroll":
            req.scroll.CopyFrom(pb.Scroll(delta=v))
        elif name == "window":
            req.window.CopyFrom(pb.WindowDelta(dcenter=v[0], dwidth=v[1]))
        elif name == "mode":
            req.mode.CopyFrom(pb.SetMode(mode=mode_to_pb(v)))
        elif name == "label":
            value, hidden, *opacity = v
            req.label.value = value
            if hidden is not None:
                req.label.hidden = hidden
            if opacity and opacity[0] is not None:
                req.label.opacity = opacity[0]
        elif name == "reset":
            req.reset.CopyFrom(pb.Reset())
        else:
            raise ValueError(
                f"RenderClient: expected an action pan/zoom/rotate/scroll/window/mode/label/reset; got {name}"
            )
        return req

    def interact(self, session_id: str, render: bool = False, **kw) -> pb.InteractResponse:
        req = self.action(session_id, **kw)
        req.render = render
        return self._call(self.render_stub.Interact, req)

    def render(self, session_id: str, interactive: bool = False) -> pb.Frame:
        return self._call(self.render_stub.Render, pb.RenderRequest(session_id=session_id, interactive=interactive))

    def render_rgb(self, session_id: str, interactive: bool = False) -> np.ndarray:
        return decode(self.render(session_id, interactive).data)

    def stream(self, requests: Iterable[pb.InteractRequest]) -> Iterator[pb.Frame]:
        """Interactive frames while ``requests`` yields gestures, then one full-quality frame."""
        return self.render_stub.Stream(iter(requests), metadata=self._metadata)

    def measure(self, session_id: str, a: tuple[float, float], b: tuple[float, float]) -> pb.Measurement:
        req = pb.MeasureRequest(session_id=session_id, a=pb.Point2(x=a[0], y=a[1]), b=pb.Point2(x=b[0], y=b[1]))
        return self._call(self.render_stub.Measure, req)

    # ---- tiles --------------------------------------------------------------------------------
    def tile(
        self,
        dataset_id: str,
        level: int,
        x: int,
        y: int,
        fmt: str = "jpeg",
        quality: int = 85,
        allow_provisional: bool = False,
    ) -> pb.Frame:
        req = pb.TileRequest(
            dataset_id=dataset_id,
            level=level,
            x=x,
            y=y,
            quality=quality,
            format=pb.IMAGE_FORMAT_PNG if fmt == "png" else pb.IMAGE_FORMAT_JPEG,
            allow_provisional=allow_provisional,
        )
        return self._call(self.render_stub.GetTile, req)

    def region(
        self,
        dataset_id: str,
        x: float,
        y: float,
        width: int,
        height: int,
        downsample: float,
        fmt: str = "jpeg",
        allow_provisional: bool = False,
    ) -> pb.Frame:
        req = pb.RegionRequest(
            dataset_id=dataset_id,
            x=x,
            y=y,
            width=width,
            height=height,
            downsample=downsample,
            format=pb.IMAGE_FORMAT_PNG if fmt == "png" else pb.IMAGE_FORMAT_JPEG,
            allow_provisional=allow_provisional,
        )
        return self._call(self.render_stub.GetRegion, req)

    def close_channel(self) -> None:
        self.channel.close()
        if self._dataset_channel is not None:
            self._dataset_channel.close()

    def __enter__(self) -> RenderClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close_channel()
