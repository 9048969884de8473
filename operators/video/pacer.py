"""Pace frames at their presentation time, like a live source, with a drop policy for late ones."""

from __future__ import annotations

import time
from collections.abc import Callable

DROP_POLICIES: tuple[str, ...] = ("none", "drop_late")


class Pacer:
    """Release frames at their presentation time; drop the late ones when asked.

    Parameters
    ----------
    drop_policy : {"none", "drop_late"}
        ``none``: a late frame is released at once and the timeline slides (nothing is lost);
        ``drop_late``: a frame later than ``late_tolerance_s`` is dropped (counted), like a live
        source whose consumer cannot keep up.
    late_tolerance_s : float
        Lateness allowed before a drop (default one frame at 30 fps).
    clock, sleep : callables
        Time source and sleeper (``time.perf_counter`` / ``time.sleep``); tests pass a fake pair.
    """

    def __init__(self, *, drop_policy: str = "drop_late", late_tolerance_s: float = 1 / 30,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep):
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"Pacer: expected drop_policy in {DROP_POLICIES}; got {drop_policy!r}")
        if late_tolerance_s < 0:
            raise ValueError(f"Pacer: expected late_tolerance_s >= 0; got {late_tolerance_s}")
        self.drop_policy, self.tolerance = drop_policy, float(late_tolerance_s)
        self._clock, self._sleep = clock, sleep
        self._t0: float | None = None
        self._m0 = 0.0
        self.dropped = 0
        self.released = 0

    def wait(self, media_time_s: float) -> float:
        """Sleep until ``media_time_s`` is due (a live source's packet arriving); return its lateness (s).

        Never drops. With ``drop_policy="none"`` a lateness beyond the tolerance slides the
        timeline (later packets are paced from now); with ``drop_late`` the clock keeps running,
        like a camera's, and :meth:`late` tells which frames to drop.
        """
        now = self._clock()
        if self._t0 is None:
            self._t0, self._m0 = now, media_time_s
        due = self._t0 + (media_time_s - self._m0)
        if now < due:
            self._sleep(due - now)
            return 0.0
        if self.drop_policy == "none" and now - due > self.tolerance:
            self._t0 += now - due
        return now - due

    def late(self, lateness_s: float) -> bool:
        """Whether a frame whose packet arrived ``lateness_s`` late is dropped (counted), or released."""
        if self.drop_policy == "drop_late" and lateness_s > self.tolerance:
            self.dropped += 1
            return True
        self.released += 1
        return False

    def admit(self, media_time_s: float) -> bool:
        """Wait until the frame is due; return False when it should be dropped instead."""
        return not self.late(self.wait(media_time_s))
