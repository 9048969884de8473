"""How one live output address is served beside a file encode (shared by the single and multi apps).

``ws://HOST:PORT/PATH``: a page for browsers (:class:`~.mse_live.MseLiveSink`, its own fMP4
encoder; loopback by default, a token beyond it). Any other live address (``udp://``, ``tcp://``,
``rtp://``, ``rtsp://``) next to a ``zerolatency`` file encode: the file's own packets, muxed to
the address as well (one encode for both). Otherwise a :class:`~.sink.VideoSink` of its own.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from clara_stream.operators.video.mse_live import MseLiveSink
from clara_stream.operators.video.sink import VideoSink

TOKEN_ENV = "CLARA_STREAM_LIVE_TOKEN"


def is_browser(url: str | None) -> bool:
    """Whether a live output address is a browser page (``ws://``)."""
    return bool(url) and str(url).lower().startswith("ws://")


def shares_file_encode(url: str | None, tune: str | None) -> bool:
    """Whether the file's zerolatency packets can go to ``url`` as they are (no second encode)."""
    return bool(url) and not is_browser(url) and tune == "zerolatency"


def live_sink(url: str, *, token: str | None, codec: str, owner: str, **common: Any) -> VideoSink | MseLiveSink:
    """The sink of its own for a live address that does not share the file's encode.

    ``token``: the browser page's (``None``: ``$CLARA_STREAM_LIVE_TOKEN``); ``common``: VideoSink
    settings (preset, crf, gop, encode_threads, queue_size).
    """
    if is_browser(url):
        token = os.environ.get(TOKEN_ENV, "") if token is None else str(token)
        return MseLiveSink(str(url), token=token, codec=codec, owner=owner)
    return VideoSink(str(url), tune="zerolatency", codec=codec, owner=owner, **common)


def check_browser_addresses(urls: list[str], owner: str) -> None:
    """Browser pages each bind their own address: two on one fixed host:port would fail at start."""
    seen: dict[tuple[str, int], str] = {}
    for url in urls:
        if not is_browser(url):
            continue
        parts = urlsplit(str(url))
        try:
            key = ((parts.hostname or "").lower(), parts.port or 0)
        except ValueError:
            continue  # MseLiveSink names a malformed address itself
        if key[1] and key in seen:
            raise ValueError(f"{owner}: expected one host:port per browser output (one page per stream); got "
                             f"{seen[key]!r} and {url!r}")
        seen[key] = str(url)
