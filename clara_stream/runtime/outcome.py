"""What a finished run really did: operator failures in order, and operators that never ran.

Holoscan logs an exception raised in ``stop()`` and exits 0, and a ``stop()`` failure after a
``compute()`` failure replaces it; a graph whose input never fills ends "done" with nothing
processed. The runtime records every failure as it happens (first first) and checks afterwards
that data which reached an operator was processed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from clara_stream.errors import RunIncompleteError
from clara_stream.runtime.validation import Edge, _typed


@dataclass(frozen=True)
class Failure:
    """One exception raised by an operator's ``start``, ``compute`` or ``stop``."""

    op: str
    phase: str
    exc: BaseException

    def describe(self) -> str:
        return f"{self.op}.{self.phase}() failed: {type(self.exc).__name__}: {self.exc}"


class Failures:
    """Thread-safe, ordered record of operator failures (one entry per exception object)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Failure] = []

    def record(self, op: Any, phase: str, exc: BaseException) -> None:
        with self._lock:
            if not any(f.exc is exc for f in self.items):
                self.items.append(Failure(str(getattr(op, "name", op)), phase, exc))

    def clear(self) -> None:
        with self._lock:
            self.items.clear()

    def first(self, engine_error: BaseException | None) -> BaseException | None:
        """The exception to raise: the first failure, with every later one added as a note."""
        if not self.items:
            return engine_error
        first = self.items[0].exc
        for later in self.items[1:]:
            first.add_note(f"then: {later.describe()}")
        if engine_error is not None and not any(f.exc is engine_error for f in self.items):
            first.add_note(f"then: engine: {type(engine_error).__name__}: {engine_error}")
        return first


def stalled(app_name: str, operators: list[Any], edges: list[Edge]) -> RunIncompleteError | None:
    """An error when data was sent to an operator that never ran, or when nothing ran at all.

    ``operators`` and ``edges`` are those this process runs (a distributed worker runs a part).
    """
    typed = [op for op in operators if _typed(op)]
    if typed and not any(getattr(op, "_computes", 0) for op in typed):
        return RunIncompleteError(f"{app_name}: expected the graph to process data; got no operator ran "
                                  f"({', '.join(op.name for op in typed)})")
    problems = []
    for op in typed:
        if getattr(op, "_computes", 0):
            continue
        feeding = [e for e in edges if e.dst is op and not op.input_port(e.in_port).optional]
        filled = [e for e in feeding if e.out_port in getattr(e.src, "_sent", ())]
        if filled:
            empty = [f"{op.name}.{e.in_port} (from {e.src.name}.{e.out_port})" for e in feeding if e not in filled]
            got = ", ".join(f"{op.name}.{e.in_port}" for e in filled)
            problems.append(f"{op.name} never ran: data was sent to {got} but "
                            f"{', '.join(empty) or 'it never arrived or a condition never held'}"
                            f"{' never filled' if empty else ''}")
    for e in edges:  # a fragment edge whose both ends ran here: everything sent must have arrived
        sent = getattr(e.src, "_crossed", {}).get(e.out_port)
        got = getattr(e.dst, "_crossed", {}).get(e.in_port, 0)
        if e.out_port in getattr(e.src, "_crossing", ()) and sent is not None and got < sent:
            problems.append(f"{e.src.name}.{e.out_port} -> {e.dst.name}.{e.in_port} crosses fragments: "
                            f"{sent} message(s) sent, {got} received")
    if problems:
        return RunIncompleteError(f"{app_name}: expected all data sent to be processed; got "
                                  + "; ".join(problems))
    return None
