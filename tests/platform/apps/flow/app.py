"""flow: a three-operator test app (src → mid → sink) whose pace and failure tests control with --set.

``src`` emits ``count`` integers, sleeping ``sleep_s`` per message; with ``hold_at`` = k its k-th
compute waits until the ``gate`` file exists (tests open it once they have seen the state they
wait for, instead of guessing a sleep). ``sink`` raises at message ``fail_at``. Every operator
times its own compute body and writes the durations to ``<output>/<name>.json`` at stop: the
independent count and times the progress recorder is checked against.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clara_stream import ports as P
from clara_stream.runtime import Application, CountCondition, Operator, Port

STATUS_OUT = P.suffixed(P.STATUS, "out")


class _Timed(Operator):
    """Records its own compute durations (seconds) and writes them at stop."""

    def __init__(self, fragment: Any, *args: Any, output: Path | None, **kwargs: Any) -> None:
        self.output, self.own = (Path(output) if output else None), []
        super().__init__(fragment, *args, **kwargs)

    def start(self) -> None:  # not in __init__: `validate` and `graph` need no output
        if self.output is None:
            raise ValueError(f"{type(self).__name__}: expected --output; got none")

    def stop(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / f"{self.name}.json").write_text(json.dumps({"messages": len(self.own), "seconds": self.own}))


class FlowSourceOp(_Timed):
    outputs = (Port(P.STATUS),)

    def __init__(self, fragment: Any, *args: Any, count: int = 5, hold_at: int = 0, gate: str = "",
                 sleep_s: float = 0.0, name: str = "src", **kwargs: Any) -> None:
        if hold_at and not gate:
            raise ValueError("FlowSourceOp: expected a gate file with hold_at; got none")
        self.count, self.hold_at, self.gate, self.sleep_s = int(count), int(hold_at), gate, float(sleep_s)
        self.n = 0
        super().__init__(fragment, CountCondition(fragment, int(count)), *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        t0 = time.perf_counter()
        self.n += 1
        while self.n == self.hold_at and not Path(self.gate).exists():
            time.sleep(0.02)  # the test opens the gate; cancel stops the process
        time.sleep(self.sleep_s)
        self.emit(op_output, self.n, P.STATUS)
        self.own.append(time.perf_counter() - t0)


class FlowRelayOp(_Timed):
    inputs = (Port(P.STATUS),)
    outputs = (Port(STATUS_OUT),)

    def __init__(self, fragment: Any, *args: Any, name: str = "mid", **kwargs: Any) -> None:
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        t0 = time.perf_counter()
        self.emit(op_output, 2 * self.receive(op_input, P.STATUS), STATUS_OUT)
        self.own.append(time.perf_counter() - t0)


class FlowSinkOp(_Timed):
    inputs = (Port(P.STATUS),)

    def __init__(self, fragment: Any, *args: Any, fail_at: int = 0, name: str = "sink", **kwargs: Any) -> None:
        self.fail_at = int(fail_at)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        t0 = time.perf_counter()
        value = self.receive(op_input, P.STATUS)
        if len(self.own) + 1 == self.fail_at:
            raise ValueError(f"FlowSinkOp: expected <b>a value</b> below {value}; got a deliberate failure")
        self.own.append(time.perf_counter() - t0)


class FlowApp(Application):
    def compose(self) -> None:
        out = self.output_path
        src = FlowSourceOp(self, output=out, **self.kwargs("src"))
        mid = FlowRelayOp(self, output=out, **self.kwargs("mid"))
        sink = FlowSinkOp(self, output=out, **self.kwargs("sink"))
        self.add_flow(src, mid, {(P.STATUS, P.STATUS)})
        self.add_flow(mid, sink, {(STATUS_OUT, P.STATUS)})
