"""Per-operator progress of a running app, written to a JSON file the platform polls.

The platform sets ``CLARA_STREAM_PROGRESS=/path/operators.json`` for a job's app; every operator
then records its state (waiting → running → done | failed, with the error text), its compute
count, total compute time and per-compute p50/p95. A daemon thread writes the file atomically
(temporary file + ``os.replace``) at most every :data:`WRITE_PERIOD_S` when something changed; a
failure, the last operator's ``stop`` and process exit write it at once. Without the variable no
recorder exists and the compute path pays one attribute check.

The file also holds the app's graph (operators with typed ports, edges) as ``clara-stream graph``
describes it (:func:`graph_description`), so a viewer draws the graph that really ran.

Notes
-----
Memory is bounded: percentiles come from a reservoir of at most :data:`RESERVOIR` samples per
operator (exact below that, Vitter's algorithm R above it). One operator never computes on two
threads at once (Holoscan's rule), so its counters need no lock; writes take the recorder's lock.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
import weakref
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "CLARA_STREAM_PROGRESS"
WRITE_PERIOD_S = 0.25
RESERVOIR = 2048
ERROR_CHARS = 2000
STATES = ("waiting", "running", "done", "failed")


def graph_description(instance: Any) -> dict[str, Any]:
    """Operators (name, class, typed ports) and edges of a composed app, as JSON-ready data."""
    def ports(op: Any, kind: str) -> list[dict[str, Any]]:
        return [{"name": p.name, "contract": p.contract.describe(), "optional": p.optional}
                for p in getattr(op, kind, ())]
    return {"app": instance.app_name,
            "operators": [{"name": op.name, "type": type(op).__name__, "inputs": ports(op, "inputs"),
                           "outputs": ports(op, "outputs")} for op in instance.operators],
            "edges": [{"src": e.src.name, "out_port": e.out_port, "dst": e.dst.name, "in_port": e.in_port}
                      for e in instance.edges]}


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class OpStats:
    """One operator's counters; updated only by the thread running its compute."""

    __slots__ = ("name", "type", "state", "messages", "total_s", "samples", "error", "_rng")

    def __init__(self, name: str, type_name: str) -> None:
        self.name, self.type = name, type_name
        self.state = "waiting"
        self.messages = 0
        self.total_s = 0.0
        self.samples: list[float] = []
        self.error: str | None = None
        self._rng = random.Random(0)  # the same reservoir for the same run: reproducible percentiles

    def add(self, seconds: float) -> None:
        """One finished compute of ``seconds``."""
        self.messages += 1
        self.total_s += seconds
        if len(self.samples) < RESERVOIR:
            self.samples.append(seconds)
        else:
            j = self._rng.randrange(self.messages)
            if j < RESERVOIR:
                self.samples[j] = seconds

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        p50, p95 = percentile(ordered, 50), percentile(ordered, 95)
        return {"name": self.name, "type": self.type, "state": self.state, "messages": self.messages,
                "time_ms": self.total_s * 1e3, "p50_ms": None if p50 is None else p50 * 1e3,
                "p95_ms": None if p95 is None else p95 * 1e3, "error": self.error}


class Recorder:
    """Progress of one app's operators, written to ``path``.

    Parameters
    ----------
    path : the JSON file to keep current (its folder must exist).
    app : the application (its ``operators`` and ``edges`` give the graph at the first write).
    """

    def __init__(self, path: Path, app: Any) -> None:
        self.path = Path(path)
        self._app = weakref.ref(app)
        self._ops: dict[int, OpStats] = {}
        self._order: list[OpStats] = []
        self._graph: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closed = False
        self._stopped: set[int] = set()
        self._thread = threading.Thread(target=self._loop, name="clara-progress", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- called by the operator base ----------------------------------------------------------
    def register(self, op: Any) -> None:
        stats = OpStats(str(op.name), type(op).__name__)
        self._ops[id(op)] = stats
        self._order.append(stats)

    def compute(self, op: Any, fn: Any, op_input: Any, op_output: Any, context: Any) -> None:
        """Run one compute, timed; a raised exception marks the operator failed (and propagates)."""
        stats = self._ops.get(id(op))
        if stats is None:  # built before the recorder existed: register now
            self.register(op)
            stats = self._ops[id(op)]
        if stats.state == "waiting":
            stats.state = "running"
            self._dirty.set()
        t0 = time.perf_counter()
        fn(op, op_input, op_output, context)
        stats.add(time.perf_counter() - t0)
        self._dirty.set()

    def failed(self, op: Any, phase: str, exc: BaseException) -> None:
        stats = self._ops.get(id(op))
        if stats is None:
            self.register(op)
            stats = self._ops[id(op)]
        if stats.state != "failed":
            stats.state = "failed"
            stats.error = f"{phase}() failed: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        self._write_or_warn()

    def stopped(self, op: Any) -> None:
        """The engine stopped ``op`` (the graph ended); after the last one the file is final."""
        if id(op) in self._stopped:  # a subclass's stop() that also calls the base's
            return
        self._stopped.add(id(op))
        stats = self._ops.get(id(op))
        if stats is not None and stats.state == "running":
            stats.state = "done"
        if len(self._stopped) >= len(self._order):
            self._write_or_warn(final=True)
        else:
            self._dirty.set()

    # -- writing -------------------------------------------------------------------------------
    def snapshot(self, *, final: bool = False) -> dict[str, Any]:
        app = self._app()
        if self._graph is None and app is not None:
            try:
                self._graph = graph_description(app)
            except Exception:  # noqa: BLE001 - the graph is an extra; the counters still get written
                self._graph = None
        return {"version": 1, "pid": os.getpid(), "updated_at": time.time(), "final": final,
                "app": getattr(app, "app_name", None), "graph": self._graph,
                "operators": [s.row() for s in list(self._order)]}

    def write(self, *, final: bool = False) -> None:
        """Write the file now (temporary file + rename: a reader never sees half a file)."""
        with self._lock:
            if self._closed and not final:
                return
            self._dirty.clear()
            data = json.dumps(self.snapshot(final=final))
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(data)
            os.replace(tmp, self.path)
            if final:
                self._closed = True

    def _write_or_warn(self, *, final: bool = False) -> None:
        """Write now; a progress file that cannot be written must never change how the run ends."""
        try:
            self.write(final=final)
        except OSError as exc:
            log.warning("progress: expected to write %s; got %s (progress not reported)", self.path, exc)
            self._closed = True

    def close(self) -> None:
        """Final write (process exit): operators still running are left as they were."""
        if not self._closed:
            self._write_or_warn(final=True)
        self._dirty.set()

    def _loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            if self._closed:
                return
            self._write_or_warn()
            time.sleep(WRITE_PERIOD_S)


def recorder_for(fragment: Any) -> Recorder | None:
    """The recorder of ``fragment``'s app when ``CLARA_STREAM_PROGRESS`` is set, else None."""
    path = os.environ.get(ENV)
    if not path:
        return None
    app = getattr(fragment, "app", None) or fragment  # a Fragment belongs to its app
    rec = getattr(app, "_progress_recorder", None)
    if rec is None:
        rec = Recorder(Path(path), app)
        app._progress_recorder = rec
    return rec
