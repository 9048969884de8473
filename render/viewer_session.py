"""One browser viewport over the gateway's WebSocket: a render session, the coalescing render
loop, and the frame transport (JPEG/PNG images, or a live H.264 fragmented-MP4 stream).

The page speaks a small JSON protocol; each message becomes gRPC calls, answered with a JSON
``frame`` header followed by the binary frame. Gestures that queue up while a frame renders are
applied together and rendered once (interactive quality); when the user pauses, one full-quality
frame follows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import grpc
import numpy as np
from clara_stream.render.client import RenderClient
from clara_stream.render.convert import MODE_TO_PB, PB_TO_MODE, color
from clara_stream.render.presets import preset
from clara_stream.render.proto import render_pb2 as pb
from clara_stream.render.stream import FRAME_TICKS, TIMESCALE, H264Stream
from fastapi import WebSocket, WebSocketDisconnect
from google.protobuf import json_format

log = logging.getLogger(__name__)
MIME_RGB = "application/x-raw-rgb"
IDLE_KEYFRAME_S = 0.1  # a video frame this long after the previous one is a keyframe
MAX_WS_MESSAGE = 4096
MAX_QUEUED = 256  # messages read ahead of the loop: beyond, the socket waits (TCP backpressure)
TOGGLES = ("scale_bar", "picture_in_picture", "show_mask")
IDLE_REFINE_S = 0.15
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


def msg_dict(msg) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class ViewerSession:
    """One browser viewport: a render session plus the coalescing render loop."""

    def __init__(self, client: RenderClient, socket: WebSocket) -> None:
        self.client = client
        self.socket = socket
        self.session_id = ""
        self.dataset_id = ""
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=MAX_QUEUED)
        self.pending_json: list[dict[str, Any]] = []
        self.view = None
        self.transport = "jpeg"  # or "h264": fragmented-MP4 H.264 for the page's MSE player
        self.bitrate_kbps = 4000
        self.playing = True
        self.video: H264Stream | None = None
        self.pending_init: bytes | None = None
        self.last_video_s = 0.0

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
                if len(text) > MAX_WS_MESSAGE:  # never held: only its length is kept, for the error
                    text = ValueError(f"gateway: expected messages of at most {MAX_WS_MESSAGE} bytes; got {len(text)}")
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
                    r = await asyncio.to_thread(self._resuming, self._apply, msg)
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
    def _parse(text: str | ValueError) -> dict[str, Any]:
        if isinstance(text, ValueError):
            raise text
        if len(text) > MAX_WS_MESSAGE:
            raise ValueError(f"gateway: expected messages of at most {MAX_WS_MESSAGE} bytes; got {len(text)}")
        msg = json.loads(text)
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ValueError("gateway: expected a JSON object with a string 'type'")
        return msg

    def _resuming(self, fn, *args):
        """``fn(*args)``; if the render server no longer knows the session (it restarted: a reboot,
        a new pod), open it again with the last view state and retry once."""
        try:
            return fn(*args)
        except grpc.RpcError as exc:
            lost = exc.code() == grpc.StatusCode.NOT_FOUND and "open session id" in (exc.details() or "")
            if not (lost and self.dataset_id and self.view is not None):
                raise
            log.info("gateway: render session %s lost (render server restarted?); reopening", self.session_id)
            st = self.client.open(self.dataset_id, self.view)
            self.session_id, self.view = st.session_id, st.view
            return fn(*args)

    def _apply(self, msg: dict[str, Any]) -> bool:
        """Apply one message (blocking gRPC); return whether a new frame is needed."""
        t = msg["type"]
        c = self.client
        if t == "open":
            width, height = _size(msg)  # validate before opening anything
            st = c.open(str(msg["dataset"]))
            if self.session_id:
                self._safe_close()  # gone already if the render server restarted
            self.session_id, self.dataset_id = st.session_id, st.dataset_id
            view = st.view
            view.width, view.height = width, height
            self._choose_format(view)
            self.view = c.set_view(self.session_id, view).view
            toggles = {k: getattr(self.view, k) for k in TOGGLES + ("mask_opacity",)}
            self._send_json_sync({"type": "info", "info": msg_dict(c.info(st.dataset_id)), "view": toggles})
            return True
        if t == "stream":
            return self._stream(msg)
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
            f"stream, measure, save; got {t!r}"
        )

    def _choose_format(self, view: pb.ViewState) -> None:
        """Raw RGB frames for the H.264 encoder; JPEG (or the saved PNG) for image frames."""
        if self.transport == "h264":
            view.format = pb.IMAGE_FORMAT_RGB
        elif view.format == pb.IMAGE_FORMAT_RGB:
            view.format = pb.IMAGE_FORMAT_JPEG

    def _stream(self, msg: dict[str, Any]) -> bool:
        """``{"type": "stream", "mode": "h264"|"jpeg", "bitrate_kbps": n, "playing": bool}``."""
        mode = str(msg.get("mode", self.transport))
        if mode not in ("h264", "jpeg"):
            raise ValueError(f"gateway: expected stream mode h264 or jpeg; got {mode!r}")
        bitrate = int(msg.get("bitrate_kbps", self.bitrate_kbps))
        if not 100 <= bitrate <= 100_000:
            raise ValueError(f"gateway: expected bitrate_kbps in 100..100000; got {bitrate}")
        if mode != self.transport or bitrate != self.bitrate_kbps:
            self.video = None  # a new encoder (and init segment) for the next frame
        self.transport, self.bitrate_kbps = mode, bitrate
        self.playing = bool(msg.get("playing", True))
        if self.session_id:
            state = self.client.state(self.session_id).view
            self._choose_format(state)
            self.view = self.client.set_view(self.session_id, state).view
        return bool(self.session_id) and self.playing

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
            f = await asyncio.to_thread(self._resuming, lambda: self.client.render(self.session_id, interactive))
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
        data = f.data
        self.pending_init = None
        if f.mime == MIME_RGB:  # H.264 transport: one fragment per frame, an init segment first
            if not self.playing:
                return
            data = await asyncio.to_thread(self._video_fragment, f, header)
            if self.pending_init is not None:
                init = {"type": "video-init", "codecs": self.video.codecs, "width": f.width, "height": f.height}
                await self.socket.send_text(json.dumps(init))
                await self.socket.send_bytes(self.pending_init)
        await self.socket.send_text(json.dumps(header))
        await self.socket.send_bytes(data)

    def _video_fragment(self, f: pb.Frame, header: dict[str, Any]) -> bytes:
        """Encode a raw frame; queue the init segment (as a ``video-init`` message) when it is new."""
        rgb = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
        if self.video is None or (self.video.width, self.video.height) != (f.width, f.height):
            self.video = H264Stream(f.width, f.height, self.bitrate_kbps)
            frag = self.video.encode(rgb, keyframe=True)
            self.pending_init = self.video.init_segment()
        else:  # after a pause the page seeks to this frame: make it one it can decode alone
            idle = time.monotonic() - self.last_video_s > IDLE_KEYFRAME_S
            frag = self.video.encode(rgb, keyframe=idle)
        self.last_video_s = time.monotonic()
        header.update(mime="video/mp4", video=True, pts=(self.video.decode_time - FRAME_TICKS) / TIMESCALE)
        return frag


def _size(msg: dict[str, Any]) -> tuple[int, int]:
    w, h = int(msg.get("width", 512)), int(msg.get("height", 512))
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"gateway: expected width and height in 16..4096; got {w}x{h}")
    return w, h
