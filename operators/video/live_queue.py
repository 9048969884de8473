"""Live-source plumbing: a bounded frame queue that drops (counted) and the stream → wall clock map.

A live source never waits for its consumer: the camera keeps its own clock. When inference falls
behind, the queue is full and a frame must go; which one is the policy. ``drop_oldest`` keeps
the newest frames (lowest latency, what a viewer wants); ``drop_newest`` keeps the frames
already queued (contiguous runs, e.g. for a recorder). Either way latency stays bounded by the
queue's length and every dropped frame is counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

QUEUE_POLICIES: tuple[str, ...] = ("drop_oldest", "drop_newest")


class DroppingQueue:
    """A bounded FIFO whose ``put`` never blocks: when full, one frame is dropped by ``policy``.

    ``put_final`` (an end marker or an error) always goes in, after the frames already queued.
    """

    def __init__(self, size: int, policy: str = "drop_oldest", owner: str = "DroppingQueue"):
        if int(size) < 1:
            raise ValueError(f"{owner}: expected queue_size >= 1; got {size}")
        if policy not in QUEUE_POLICIES:
            raise ValueError(f"{owner}: expected drop_policy in {QUEUE_POLICIES}; got {policy!r}")
        self.size, self.policy = int(size), policy
        self._items: deque[Any] = deque()
        self._final: list[Any] = []
        self._cond = threading.Condition()
        self.dropped = 0
        self.high_water = 0  # the most frames ever queued at once (≤ size: latency is bounded)

    def put(self, item: Any) -> bool:
        """Queue ``item``; return False when a frame was dropped to make room (or ``item`` itself)."""
        with self._cond:
            kept = True
            if len(self._items) >= self.size:
                self.dropped += 1
                kept = False
                if self.policy == "drop_newest":
                    return False
                self._items.popleft()
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return kept

    def put_final(self, item: Any) -> None:
        with self._cond:
            self._final.append(item)
            self._cond.notify_all()

    def get(self, timeout_s: float | None = None) -> Any:
        """The oldest frame, else the final item; raise TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items and not self._final:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no frame")
                self._cond.wait(left)
            return self._items.popleft() if self._items else self._final[0]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class StreamClock:
    """Map stream timestamps to ``time.perf_counter()``: when the frame was sent, as best seen here.

    The offset is the smallest (arrival − stream time) seen so far: the packet that met the least
    network and buffering delay. ``sent_at(t)`` is then never later than the arrival, and a frame
    held in a socket or jitter buffer is charged that wait (glass to glass), instead of starting
    its clock on arrival. A new connection (a reconnect, a restarted sender) starts a new map.
    """

    def __init__(self) -> None:
        self.offset: float | None = None

    def reset(self) -> None:
        self.offset = None

    def sent_at(self, stream_s: float, arrived: float) -> float:
        off = arrived - stream_s
        self.offset = off if self.offset is None else min(self.offset, off)
        return self.offset + stream_s
