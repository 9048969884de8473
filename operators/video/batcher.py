"""Batch frames from several sources per tick, DeepStream nvstreammux style, on our sources.

:class:`FrameBatcher` takes one frame from each open source per tick: it waits for the first
frame, then for the others up to ``timeout_s`` (a late or stalled source does not hold the
batch; it is listed in ``missing``), so one batched inference serves N streams. Each item keeps
its source number, FrameInfo and glass-to-glass start clock, so post-processing and outputs are
per source again. Frames of any size batch together: each is letterboxed to the model's input
on its own (:func:`batch_tensor`), so the model sees equal-size inputs and boxes map back to each
frame's own pixels.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from clara_stream.operators.video.detections import Letterbox
from clara_stream.operators.video.live import LiveSource
from clara_stream.operators.video.live_uri import is_live
from clara_stream.operators.video.preprocess import letterbox_image, to_tensor
from clara_stream.operators.video.source import DecodedFrame, VideoSource

from clara_stream.geometry import FrameInfo

_POLL_S = 0.002  # how long one source is waited on before the next is looked at


class FrameReader(Protocol):
    def read(self, timeout_s: float | None = None) -> DecodedFrame | None: ...


@dataclass
class BatchItem:
    """One source's frame in a batch."""

    source: int
    rgb: np.ndarray
    info: FrameInfo
    read_at: float  # glass-to-glass start (packet read / stream send estimate)


@dataclass
class FrameBatch:
    """The frames of one tick (at most one per source), in source order; ``missing``: timed out."""

    tick: int
    items: list[BatchItem]
    missing: tuple[int, ...] = ()
    letterboxes: list[Letterbox] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


def open_source(uri: str, *, owner: str, live: dict[str, Any], file: dict[str, Any]) -> Any:
    """A started LiveSource for a stream address, else a started VideoSource for a file."""
    if is_live(uri):
        return LiveSource(uri, owner=owner, **live).open()
    return VideoSource(Path(uri), owner=owner, **file).start()


class FrameBatcher:
    """Gather one frame per source per tick, waiting at most ``timeout_s`` after the first.

    Parameters
    ----------
    sources : sequence of readers
        Started sources (``read(timeout_s)`` → frame, ``None`` at the end; a timeout raises).
    timeout_s : float
        How long a tick waits for the other sources once one frame is in (≥ 0).
    owner : str
        Prefix of error messages.
    """

    def __init__(self, sources: Sequence[FrameReader], *, timeout_s: float = 0.04, owner: str = "FrameBatcher"):
        if not sources:
            raise ValueError(f"{owner}: expected at least one source; got none")
        if timeout_s < 0:
            raise ValueError(f"{owner}: expected timeout_s >= 0; got {timeout_s}")
        self.sources, self.timeout_s, self.owner = list(sources), float(timeout_s), owner
        self.open = set(range(len(self.sources)))
        self.ticks = 0
        self.frames = [0] * len(self.sources)
        self.missed = [0] * len(self.sources)

    def _poll(self, i: int, wait_s: float) -> DecodedFrame | None | bool:
        """A frame, None (source ended, now closed) or False (nothing yet)."""
        try:
            frame = self.sources[i].read(timeout_s=wait_s)
        except (queue.Empty, TimeoutError):
            return False
        if frame is None:
            self.open.discard(i)
        return frame

    def next(self, first_wait_s: float | None = None) -> FrameBatch | None:
        """The next batch; ``None`` once every source has ended. A source's error is raised as is.

        ``first_wait_s``: give up after this long without any frame and return an empty batch (no
        tick counted), so a caller that must let other work run is not held; None: wait.
        """
        got: dict[int, DecodedFrame] = {}
        deadline: float | None = None
        give_up = None if first_wait_s is None else time.perf_counter() + first_wait_s
        while self.open:
            waiting = sorted(self.open - set(got))
            if not waiting or (deadline is not None and time.perf_counter() >= deadline):
                break
            if deadline is None and give_up is not None and time.perf_counter() >= give_up:
                return FrameBatch(self.ticks, [])
            for i in waiting:
                frame = self._poll(i, _POLL_S)
                if frame:
                    got[i] = frame  # type: ignore[assignment]
                    deadline = deadline if deadline is not None else time.perf_counter() + self.timeout_s
        if not got:
            return None
        missing = tuple(sorted(self.open - set(got)))
        for i in missing:
            self.missed[i] += 1
        for i in got:
            self.frames[i] += 1
        items = [BatchItem(i, f.rgb, f.info, f.read_at) for i, f in sorted(got.items())]
        self.ticks += 1
        return FrameBatch(self.ticks - 1, items, missing)


def batch_tensor(batch: FrameBatch, size: tuple[int, int], *, scale: float, pad_value: int,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> np.ndarray:
    """Letterbox each frame to ``size`` (width, height) → float32 (B, 3, height, width); fills ``letterboxes``."""
    out = np.empty((len(batch), 3, size[1], size[0]), np.float32)
    batch.letterboxes = []
    for k, item in enumerate(batch.items):
        image, lb = letterbox_image(item.rgb, size, pad_value=pad_value)
        out[k] = to_tensor(image, scale=scale, mean=mean, std=std)
        batch.letterboxes.append(lb)
    return out
