"""The annotated live stream to browsers: fragmented MP4 over a WebSocket to an MSE player.

``ws://HOST:PORT/PATH`` as a live output (``encoder.live_url``) serves, on that address, a small
page at ``http://HOST:PORT/PATH`` and the stream on the WebSocket at the same path. Frames are
encoded by :class:`~.fmp4.H264Stream` (libx264 zerolatency, baseline, one ``moof``+``mdat`` per
frame, the render service's stream code) at the source's frame period, so the stream keeps its
rate; the page plays it with the render viewer's player (``static/mse_player.js``).

Safe by default, as the render gateway: loopback unless told otherwise, and then a Host header
that is not a loopback name is refused (DNS rebinding); beyond loopback a token is required —
``Authorization: Bearer`` or the HttpOnly cookie that ``GET PATH?token=…`` sets before
redirecting (never a token in the WebSocket URL). The WebSocket accepts only its own origin (or
``allowed_origins``). Pages carry a CSP with no inline script; nothing received becomes markup.

Bounded work: a browser is a viewer, never back-pressure. Frames wait for the encoder in a queue
of ``queue_size`` (the oldest dropped when full); each viewer holds ``viewer_queue`` fragments,
and one that falls behind loses its queue and resumes at the next keyframe (both counted).
"""

from __future__ import annotations

import asyncio
import hmac
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from clara_stream.operators.video.fmp4 import PLAYER_JS, TIMESCALE, H264Stream
from clara_stream.operators.video.sink import FrameSink

from clara_stream.geometry import FrameInfo
from clara_stream.loopback import is_loopback

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"live.js": STATIC / "live.js", PLAYER_JS.name: PLAYER_JS}  # all this server serves, beside the page
COOKIE = "clara_live_token"
CSP = ("default-src 'none'; script-src 'self'; media-src blob:; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


MAX_VIEWERS = 16


def loopback_name(host: str) -> bool:
    """Whether a host name (a bind address or a Host header, port and brackets allowed) is this machine only."""
    return is_loopback(host)


class MseLiveSink(FrameSink):
    """Serve RGB frames live to browsers (see module notes); the same write/close as a VideoSink.

    Parameters
    ----------
    url : str
        ``ws://HOST:PORT/PATH``; port 0 picks a free one (``url`` then names the bound port).
    token : str
        Required beyond loopback.
    allowed_origins : tuple of str
        Origins beside the page's own that may open the WebSocket.
    bitrate_kbps, codec :
        As :class:`~.fmp4.H264Stream`.
    queue_size, viewer_queue : int
        Frames waiting for the encoder; fragments waiting per viewer (both ≥ 1, the oldest dropped).

    Raises
    ------
    ValueError
        For a URL that is not ``ws://host:port/path``, or beyond loopback without a token.
    """

    def __init__(self, url: str, *, token: str = "", allowed_origins: tuple[str, ...] = (), bitrate_kbps: int = 4000,
                 codec: str = "libx264", queue_size: int = 4, viewer_queue: int = 30, owner: str = "MseLiveSink"):
        parts = urlsplit(str(url))
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "ws" or not parts.hostname or port is None or not parts.path.startswith("/") \
                or parts.query or parts.path.startswith("/static/"):
            raise ValueError(f"{owner}: expected a browser output ws://HOST:PORT/PATH (no query, not /static/); "
                             f"got {url!r}")
        if not token and not loopback_name(parts.netloc):
            raise ValueError(f"{owner}: expected a token when serving beyond loopback; got host {parts.hostname!r}")
        if queue_size < 1 or viewer_queue < 1:
            raise ValueError(f"{owner}: expected queue_size and viewer_queue >= 1; got {queue_size}, {viewer_queue}")
        self.host, self.port, self.route = parts.hostname, port, parts.path
        self.token, self.allowed_origins, self.owner = token, tuple(allowed_origins), owner
        self.bitrate_kbps, self.codec, self.viewer_queue = int(bitrate_kbps), codec, int(viewer_queue)
        self.live, self.removed, self.closed, self.padded = True, False, False, None
        self.encoder: str | None = None
        self.written = self.dropped = self.viewer_drops = self.viewers = 0
        self.max_viewers = MAX_VIEWERS  # at once: each costs a socket, a queue and a copy of every fragment
        self.timeline: list[tuple[float, float, float]] = []  # (packet read, received, fragment sent out)
        self._frames: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._viewers: set[Viewer] = set()
        self._stream: H264Stream | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._server: Any = None
        self._serving = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._init_ready: asyncio.Event | None = None

    @property
    def path(self) -> str:
        """The page's address (and the WebSocket's, as ``ws://``): the bound port once serving."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.route}"

    def open(self) -> None:
        """Start serving (idempotent): the page and the WebSocket answer before the first frame."""
        if self._server is not None:
            return
        import uvicorn

        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)  # connections wait in the backlog until the loop serves them: none refused
        except OSError as exc:
            sock.close()
            raise ValueError(f"{self.owner}: expected an address to serve the live page on; got "
                             f"{exc.strerror or exc} [{self.path}]") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=2,
                                ws_ping_interval=None)
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=f"{self.owner}-serve",
                         daemon=True).start()
        if not self._serving.wait(30):
            raise RuntimeError(f"{self.owner}: expected the server to start; got no start in 30 s [{self.path}]")

    def write(self, rgb: np.ndarray, info: FrameInfo, read_at: float | None = None) -> None:
        """Queue one (H, W, 3) uint8 RGB frame (the oldest waiting one is dropped when the queue is full)."""
        received = self._accept(rgb)
        if self._stream is None:
            self.open()
            rate = float(info.rate) if info.rate else 30.0
            self._stream = H264Stream(rgb.shape[1], rgb.shape[0], self.bitrate_kbps, self.codec,
                                      keyframe_interval=max(1, round(rate)), frame_ticks=round(TIMESCALE / rate),
                                      fps=rate)
            self.encoder = self._stream.codec
            if rgb.shape[0] % 2 or rgb.shape[1] % 2:  # padded right/bottom to even, as a VideoSink does
                self.padded = (rgb.shape[1], rgb.shape[0])
            self._post(self._init_ready.set)
            self._thread = threading.Thread(target=self._run, name=f"{self.owner}-encode", daemon=True)
            self._thread.start()
        elif rgb.shape[:2] != (self._stream.height, self._stream.width):
            raise ValueError(f"{self.owner}: expected frames of {(self._stream.height, self._stream.width)}; got "
                             f"{rgb.shape[:2]} [{self.path}]")
        item = (rgb, received if read_at is None else read_at, received)
        while True:
            try:
                self._frames.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._frames.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        try:
            while (item := self._frames.get()) is not None:
                rgb, read_at, received = item
                data = self._stream.encode(rgb)
                self._post(self._fanout, data, self._stream.last_key)
                self.timeline.append((read_at, received, time.perf_counter()))
                self.written += 1
        except BaseException as exc:  # surfaced to the producer by write()/close()
            self._error = exc

    def _post(self, fn: Any, *args: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def _fanout(self, data: bytes | None, key: bool = False) -> None:
        """On the server's loop: one fragment to every viewer (a lagging viewer restarts at a keyframe)."""
        for v in list(self._viewers):
            if data is None or v.need_key and not key:
                if data is None:  # the end: nothing else matters
                    v.clear()
                    v.queue.put_nowait(None)
                continue
            if v.queue.full():
                v.clear()
                self.viewer_drops += 1
                v.need_key = True
                if not key:
                    continue
            v.need_key = False
            v.queue.put_nowait(data)

    def close(self) -> int:
        """Stop encoding and serving (viewers get a close frame); return the frames sent out (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._thread is not None:
                while True:
                    try:
                        self._frames.put_nowait(None)
                        break
                    except queue.Full:
                        self._frames.get_nowait()
                        self.dropped += 1
                self._thread.join()
            if self._server is not None:
                self._post(self._fanout, None)
                self._server.should_exit = True
        self._raise()
        return self.written

    def _app(self) -> Any:
        from clara_stream.operators.video.mse_live_app import live_app

        return live_app(self)


class Viewer:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=size)
        self.need_key = True  # a viewer starts at a keyframe

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


def token_ok(expected: str, headers: Any, cookies: Any) -> bool:
    """No token set: open. Else the bearer header, or (without one) the cookie, must match."""
    if not expected:
        return True
    bearer = headers.get("authorization", "")
    got = bearer.removeprefix("Bearer ") if bearer else cookies.get(COOKIE, "")
    return bool(got) and hmac.compare_digest(got.encode(), expected.encode())
