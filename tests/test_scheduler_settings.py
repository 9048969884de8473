"""The multithread scheduler's settings (app.check_period_ms 0.5, 200 ms deadlock timeout), by behaviour.

Holoscan 4.6's MultiThreadScheduler polls. With its defaults (5 ms check period, no deadlock
timeout) a busy chain was declared deadlocked and stopped with messages still queued, silently;
with a 0 ms check period idle workers spin. These tests fail on either setting.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream import ports as P
from clara_stream.runtime import Application, CountCondition, Operator, PeriodicCondition, Port


class Src(Operator):
    outputs = (Port(P.TENSOR),)

    def __init__(self, fragment: Any, *args: Any, **kw: Any) -> None:
        self.sent = 0
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.sent += 1
        self.emit(op_output, np.full(4, self.sent, np.int64), P.TENSOR)


class Mid(Operator):
    inputs = (Port(P.TENSOR_IN),)
    outputs = (Port(P.TENSOR_OUT),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.emit(op_output, self.receive(op_input, P.TENSOR_IN), P.TENSOR_OUT)


def _thread_cpu_s(skip: frozenset[str]) -> float:
    """CPU seconds of this process's threads except those in ``skip`` (thread ids), from /proc.

    Threads left running by earlier tests in the same pytest process (servers, pools) are in
    ``skip``, so only what the graph started is measured. ``schedstat`` is in ns; ``stat``'s
    utime + stime (clock ticks) where schedstat is absent."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        if tid in skip:
            continue
        try:
            total += int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9
        except FileNotFoundError:  # the thread ended, or no schedstat on this kernel
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except FileNotFoundError:
                continue
    return total


class Sink(Operator):
    """Records each message's number, and the CPU time of the threads the graph started (see
    :func:`_thread_cpu_s`) and wall time at each receipt."""

    inputs = (Port(P.TENSOR),)

    def __init__(self, fragment: Any, *args: Any, **kw: Any) -> None:
        self.got: list[int] = []
        self.clocks: list[tuple[float, float]] = []
        self.before = frozenset(os.listdir("/proc/self/task"))  # threads that exist before the graph runs
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.got.append(int(self.receive(op_input, P.TENSOR)[0]))
        self.clocks.append((_thread_cpu_s(self.before), time.monotonic()))


class Chain(Application):
    """src → ``length`` × mid → sink on the multithread scheduler with the app defaults."""

    def __init__(self, messages: int, length: int, period_ms: float | None = None) -> None:
        self.messages, self.length, self.period_ms = messages, length, period_ms
        super().__init__({"app": {"scheduler": "multithread", "threads": 2}}, name="chain")

    def compose(self) -> None:
        conditions = [CountCondition(self, self.messages)]
        if self.period_ms is not None:
            conditions.append(PeriodicCondition(self, recess_period=int(self.period_ms * 1e6)))
        self.src = Src(self, *conditions, name="src")
        prev, port = self.src, P.TENSOR
        for k in range(self.length):
            mid = Mid(self, name=f"mid{k}")
            self.add_flow(prev, mid, {(port, P.TENSOR_IN)})
            prev, port = mid, P.TENSOR_OUT
        self.sink = Sink(self, name="sink")
        self.add_flow(prev, self.sink, {(port, P.TENSOR)})


def test_a_long_busy_chain_delivers_every_message() -> None:
    """1000 messages through 8 operators all arrive, in order. Fails with Holoscan's defaults (5 ms
    check period, stop_on_deadlock_timeout 0): the run then ended after 35-148 of 2000 messages
    here, exit 0 (every operator had run, so nothing looked stalled)."""
    app = Chain(1000, 8)
    app.run()
    assert app.src.sent == 1000
    assert app.sink.got == list(range(1, 1001))


def test_an_idle_graph_does_not_busy_poll() -> None:
    """A source ticking every 150 ms leaves the scheduler idle between messages: the CPU time of the
    graph's threads over those waits stays far below their wall time (check period 0 spins both
    workers: CPU/wall about 1, and 0.18 even with this 2-core box at load 12). The whole process's
    CPU was measured before: 0.11 once in a full run, from threads other tests had left behind."""
    app = Chain(8, 1, period_ms=150.0)
    app.run()
    assert app.sink.got == list(range(1, 9))
    (cpu0, wall0), (cpu1, wall1) = app.sink.clocks[1], app.sink.clocks[-1]  # from the 2nd: start-up excluded
    ratio = (cpu1 - cpu0) / (wall1 - wall0)
    assert ratio < 0.1, f"graph threads busy {ratio:.2f} of the wall time while idle (spinning?)"
