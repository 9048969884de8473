"""Application base: YAML config, overrides, scheduler choice, validation before run, big stack.

Subclasses write ``compose()`` as a wiring diagram (see docs/developing.md). ``run()`` composes,
refuses a bad graph or configuration with :class:`GraphValidationError` before any operator
runs, applies the ``app:`` switches (scheduler, threads, log level, contract checks), runs the
Holoscan engine in a thread with a 32 MiB stack, and raises the first operator failure (later
ones attached as notes) — also one raised in ``stop()``, which Holoscan itself only logs.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from holoscan.core import Application as _HoloscanApplication
from holoscan.core import MetadataPolicy
from holoscan.logger import LogLevel, set_log_level
from holoscan.schedulers import EventBasedScheduler, GreedyScheduler, MultiThreadScheduler

from clara_stream.config import APP_DEFAULTS, apply_overrides, get_path, normalise_app_section
from clara_stream.errors import ConfigError, GraphValidationError, UserError
from clara_stream.runtime.fragment import Fragment, FragmentTrackers
from clara_stream.runtime.network import DistributedRun, StartWatch, connect_timeout_s
from clara_stream.runtime.outcome import Failures, stalled
from clara_stream.runtime.stack import _base_run, run_with_stack
from clara_stream.runtime.validation import Edge, resolve_pairs, validate

_LOG_LEVELS = {
    "trace": LogLevel.TRACE, "debug": LogLevel.DEBUG, "info": LogLevel.INFO, "warn": LogLevel.WARN,
    "error": LogLevel.ERROR, "critical": LogLevel.CRITICAL, "off": LogLevel.OFF,
}
# Holoscan 4.6's MultiThreadScheduler polls: each ready operator waits up to one check period, and
# with its defaults (5 ms, stop_on_deadlock_timeout 0) a busy graph was stopped early as
# "deadlocked" (3000-message chains ended after 19-1991 messages, raw Holoscan as well). 0 ms
# busy-polls (idle CPU/wall 0.3-0.97). app.check_period_ms trades latency for idle CPU; the
# deadlock timeout keeps a run from ending while messages are still in flight.
DEADLOCK_TIMEOUT_MS = 200


class Application(_HoloscanApplication):
    """Base of every clara-stream app.

    Parameters
    ----------
    config : mapping, optional
        Parsed app YAML (sections per operator plus ``app:``); usually given by :func:`load_app`.
    overrides : iterable of str
        ``section.key=value`` items applied on top of ``config``.
    name : str, optional
        App name for messages (default: the class name).
    engine_args : sequence of str
        Holoscan's own command line (``--driver``, ``--worker``, ``--address``, ``--fragments``,
        ``--worker-address``), handed to the engine unchanged.
    """

    #: What ``run`` needs that ``validate``/``graph`` do not, e.g. ``{"input": "DICOM_DIR"}``.
    requires: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: Mapping[str, Any] | None = None, *, overrides: Iterable[str] = (),
                 name: str | None = None, engine_args: Sequence[str] = ()) -> None:
        network: DistributedRun | None = None
        try:
            checked, refused = normalise_app_section(apply_overrides(config or {}, overrides)), None
            if {"--driver", "--worker"} & set(engine_args):  # ports of its own for each worker (network.py)
                network = DistributedRun(engine_args)
                engine_args = network.engine_args
        except UserError as exc:  # raised once the engine object exists (its __del__ needs it)
            checked, refused = {"app": APP_DEFAULTS}, exc
        set_log_level(_LOG_LEVELS[str(checked["app"]["log_level"]).lower()])  # before the engine's first line
        super().__init__([sys.argv[0] if sys.argv else "clara-stream", *engine_args])
        self._network = network
        self._watch: StartWatch | None = None
        if refused is not None:
            raise refused
        self.app_name = name or type(self).__name__
        self._config = checked
        self._used_sections: set[str] = {"app"}
        self._operators: list[Any] = []
        self._edges: list[Edge] = []
        self._wiring_errors: list[str] = []
        self._fragments: dict[str, Fragment] = {}
        self._composed = False
        self._failures = Failures()
        self._tracking: dict[str, Any] | None = None
        self.tracker: Any = None
        self.metadata_policy = MetadataPolicy.UPDATE

    # -- configuration -----------------------------------------------------------------------
    @property
    def config_dict(self) -> dict[str, Any]:
        """The validated configuration (after overrides)."""
        return self._config

    @property
    def check_contracts(self) -> bool:
        env = os.environ.get("CLARA_STREAM_CHECK_CONTRACTS")
        return env == "1" if env in ("0", "1") else bool(self._config["app"]["check_contracts"])

    def kwargs(self, name: str) -> dict[str, Any]:  # type: ignore[override]
        """The YAML section ``name`` as operator keyword arguments (a copy)."""
        section = self._config.get(name)
        if section is None:
            raise ConfigError(f"{self.app_name}: expected a config section {name!r}; got sections "
                              f"{sorted(k for k in self._config if k != 'app')}")
        self._used_sections.add(name)
        return dict(section)

    def config_value(self, dotted: str, default: Any = None) -> Any:
        """Any configuration value by dotted path (``app.frames``)."""
        self._used_sections.add(dotted.split(".", 1)[0])
        return get_path(self._config, dotted, default)

    @property
    def input_path(self) -> Path | None:
        value = self._config["app"].get("input")
        return Path(value) if value else None

    @property
    def output_path(self) -> Path | None:
        value = self._config["app"].get("output")
        return Path(value) if value else None

    # -- graph recording ---------------------------------------------------------------------
    def fragment(self, name: str) -> Any:
        """The fragment ``name`` when ``app.fragments`` is on, else the app itself (one process)."""
        if not self._config["app"].get("fragments"):
            return self
        if name not in self._fragments:
            self._fragments[name] = Fragment(self, name)
        return self._fragments[name]

    def runs_here(self, what: Any) -> bool:
        """True when this process runs ``what`` (an operator or fragment name); always, unless distributed."""
        name = what if isinstance(what, str) else getattr(what, "_fragment_name", None)
        opts = self.options
        if name is None or not (opts.run_driver or opts.run_worker):
            return True
        targets = list(opts.worker_targets)
        return bool(opts.run_worker) and (not targets or "all" in targets or name in targets)

    def _register_operator(self, op: Any) -> None:
        self._operators.append(op)

    def _record_failure(self, op: Any, phase: str, exc: BaseException) -> None:
        self._failures.record(op, phase, exc)

    def _operator_started(self) -> None:
        if self._watch is not None:
            self._watch.started.set()

    def add_flow(self, upstream: Any, downstream: Any, port_pairs: Any = None) -> None:  # type: ignore[override]
        """Connect two operators (in one fragment or across two); unknown ports are reported before run."""
        pairs, errors = resolve_pairs(upstream, downstream, set(port_pairs) if port_pairs else None)
        self._wiring_errors += errors
        for out_port, in_port in pairs:
            self._edges.append(Edge(upstream, downstream, out_port, in_port))
        if not pairs or errors:
            return
        src, dst = getattr(upstream, "_fragment_name", None), getattr(downstream, "_fragment_name", None)
        if src is None and dst is None:
            super().add_flow(upstream, downstream, set(pairs))
        elif src == dst:
            self._fragments[src].add_flow(upstream, downstream, set(pairs))
        elif src is None or dst is None:
            self._wiring_errors.append(f"edge {upstream.name} -> {downstream.name}: expected both operators in "
                                       f"fragments (app.fragments is on); got one built in the app itself")
        else:
            for out_port, _ in pairs:
                upstream._crossing.add(out_port)
            super().add_flow(self._fragments[src], self._fragments[dst],
                             {(f"{upstream.name}.{o}", f"{downstream.name}.{i}") for o, i in pairs})

    @property
    def operators(self) -> list[Any]:
        return list(self._operators)

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges)

    def compose_graph(self) -> None:  # type: ignore[override]
        if not self._composed:
            self._composed = True
            super().compose_graph()

    def validate(self) -> list[str]:
        """Compose (once) and return every graph and configuration problem; empty means it may run."""
        self.compose_graph()
        return self._wiring_errors + self._unused_sections() + validate(self._operators, self._edges)

    def _unused_sections(self) -> list[str]:
        names = {op.name for op in self._operators}
        known = sorted(self._used_sections | names)
        errors = []
        for section in sorted(set(self._config) - set(known)):
            close = difflib.get_close_matches(section, [k for k in known if k != "app"], n=3)
            mean = f"; did you mean {', '.join(close)}?" if close else ""
            errors.append(f"config: expected sections named after operators {sorted(names)} or 'app'; "
                          f"got unknown section {section!r}{mean}")
        return errors

    # -- benchmarking hook ---------------------------------------------------------------------
    def enable_tracking(self, *, log_file: str | Path | None = None, skip_first: int = 10,
                        discard_last: int = 10) -> None:
        """Turn on Holoscan data-flow tracking for the next ``run``; results in ``self.tracker``."""
        self._tracking = {"log_file": str(log_file) if log_file else None, "skip": int(skip_first),
                          "discard": int(discard_last)}

    # -- running -----------------------------------------------------------------------------
    def _apply_switches(self) -> None:
        app = self._config["app"]
        set_log_level(_LOG_LEVELS[str(app["log_level"]).lower()])
        for graph in self._fragments.values() or (self,):
            graph.scheduler(_scheduler(graph, app["scheduler"], int(app["threads"]), float(app["check_period_ms"]),
                                       distributed=bool(self._fragments)))
        if self._tracking is not None:
            t = self._tracking
            kw = dict(num_start_messages_to_skip=t["skip"], num_last_messages_to_discard=t["discard"],
                      latency_threshold=0)
            if self._fragments:  # one log per fragment, joined at end_logging (paths split at the crossing)
                self.tracker = FragmentTrackers(self.track_distributed(**kw), t["log_file"])
            else:
                self.tracker = self.track(**kw)
                if t["log_file"]:
                    self.tracker.enable_logging(filename=t["log_file"])

    def run(self) -> None:  # type: ignore[override]
        """Validate, configure and run the graph to completion.

        Raises
        ------
        GraphValidationError
            Before any operator runs, when the graph or its configuration is wrong.
        RunIncompleteError
            When data reached an operator that never ran (an input that never filled).
        Exception
            The first exception an operator raised (in start, compute or stop), unchanged;
            later failures are attached as notes (``__notes__``).
        """
        set_log_level(_LOG_LEVELS[str(self._config["app"]["log_level"]).lower()])
        missing = [f"--{k} {what}" for k, what in self.requires.items() if not self._config["app"].get(k)]
        if missing:
            raise ConfigError(f"{self.app_name}: expected {' and '.join(missing)}; got none",
                              hint=f"clara-stream run {self.app_name} {' '.join(missing)}")
        errors = self.validate()
        if errors:
            raise GraphValidationError(self.app_name, errors)
        self._apply_switches()
        self._failures.clear()
        engine_error: BaseException | None = None
        try:
            self._run_engine()
        except BaseException as exc:  # noqa: BLE001 - ordered against the recorded failures below
            engine_error = exc
        first = self._failures.first(engine_error)
        if first is not None:
            raise first
        # a distributed process composes every fragment but runs only its own
        problem = stalled(self.app_name, [op for op in self._operators if self.runs_here(op)],
                          [e for e in self._edges if self.runs_here(e.src) and self.runs_here(e.dst)])
        if problem is not None:
            raise problem

    def _run_engine(self) -> None:
        """The engine run; fragments get ports of their own and every wait on a peer is bounded."""
        if not self._fragments:
            run_with_stack(lambda: _base_run(self))
            return
        net = self._network or DistributedRun(())
        receivers = sum(1 for e in self._edges
                        if e.out_port in getattr(e.src, "_crossing", ()) and self.runs_here(e.dst))
        here = sorted({str(getattr(op, "_fragment_name", "")) for op in self._operators if self.runs_here(op)})
        timeout = connect_timeout_s()
        try:
            if self._network is None or not here:  # one process, or a driver without fragments
                with net.environment(receivers):
                    run_with_stack(lambda: _base_run(self))
                return
            net.wait_for_driver(timeout)
            endpoint = net.driver_endpoint
            where = f"{endpoint[0]}:{endpoint[1]}" if endpoint else net.address or "the default address"
            message = (f"{self.app_name}: expected fragments {', '.join(here)} to start within {timeout:g} s "
                       f"of joining the driver at {where}; got none started (a worker that never joined, "
                       f"two workers on one address, or a UCX connection that failed)")
            watch = self._watch = StartWatch(timeout, message,
                                             lambda exc: self._failures.record("driver", "connect", exc))
            try:
                with net.environment(receivers), watch:
                    run_with_stack(lambda: _base_run(self))
            except KeyboardInterrupt:
                if not watch.fired:  # the user's Ctrl-C; the watch's own stop is reported as its error
                    raise
        finally:
            self._watch = None
            net.close()


def _scheduler(graph: Any, kind: str, threads: int, check_ms: float, *, distributed: bool = False) -> Any:
    if distributed and kind == "greedy":  # Holoscan refuses greedy for fragments (it deadlocks) and swaps it itself
        kind = "event"
    if kind == "event":
        # a fragment waiting on UCX looks idle: without a timeout it was stopped with messages still in flight
        return EventBasedScheduler(graph, name="event_scheduler", worker_thread_number=threads,
                                   stop_on_deadlock_timeout=DEADLOCK_TIMEOUT_MS if distributed else 0)
    if kind == "multithread":
        return MultiThreadScheduler(graph, name="multithread_scheduler", worker_thread_number=threads,
                                    check_recession_period_ms=check_ms,
                                    stop_on_deadlock_timeout=max(DEADLOCK_TIMEOUT_MS, int(20 * check_ms)))
    return GreedyScheduler(graph, name="greedy_scheduler")


__all__ = ["Application", "Fragment", "run_with_stack"]
