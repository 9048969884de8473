"""Application base: YAML config, overrides, scheduler choice, validation before run, big stack.

Subclasses write ``compose()`` as a wiring diagram (see docs/developing.md). ``run()`` composes,
refuses a bad graph with :class:`GraphValidationError` before any operator runs, applies the
``app:`` switches (scheduler, threads, log level, contract checks), runs the Holoscan engine in a
thread with a 32 MiB stack (Holoscan warns below that), and re-raises an operator's exception
unchanged.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from holoscan.core import Application as _HoloscanApplication
from holoscan.core import MetadataPolicy
from holoscan.logger import LogLevel, set_log_level
from holoscan.schedulers import EventBasedScheduler, GreedyScheduler, MultiThreadScheduler

from clara_stream.config import apply_overrides, get_path, normalise_app_section
from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.runtime.validation import Edge, resolve_pairs, validate

STACK_BYTES = 32 << 20
_LOG_LEVELS = {
    "trace": LogLevel.TRACE, "debug": LogLevel.DEBUG, "info": LogLevel.INFO, "warn": LogLevel.WARN,
    "error": LogLevel.ERROR, "critical": LogLevel.CRITICAL, "off": LogLevel.OFF,
}


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
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, overrides: Iterable[str] = (),
                 name: str | None = None) -> None:
        super().__init__([sys.argv[0] if sys.argv else "clara-stream"])  # keep Holoscan off our CLI args
        self.app_name = name or type(self).__name__
        self._config = normalise_app_section(apply_overrides(config or {}, overrides))
        self._operators: list[Any] = []
        self._edges: list[Edge] = []
        self._wiring_errors: list[str] = []
        self._composed = False
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
        return dict(section)

    def config_value(self, dotted: str, default: Any = None) -> Any:
        """Any configuration value by dotted path (``app.frames``)."""
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
    def _register_operator(self, op: Any) -> None:
        self._operators.append(op)

    def add_flow(self, upstream: Any, downstream: Any, port_pairs: Any = None) -> None:  # type: ignore[override]
        """Connect two operators; unknown ports are collected and reported before run."""
        pairs, errors = resolve_pairs(upstream, downstream, set(port_pairs) if port_pairs else None)
        self._wiring_errors += errors
        for out_port, in_port in pairs:
            self._edges.append(Edge(upstream, downstream, out_port, in_port))
        if pairs and not errors:
            super().add_flow(upstream, downstream, set(pairs))

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
        """Compose (once) and return every graph problem; empty means it may run."""
        self.compose_graph()
        return self._wiring_errors + validate(self._operators, self._edges)

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
        kind, threads = app["scheduler"], int(app["threads"])
        if kind == "event":
            self.scheduler(EventBasedScheduler(self, name="event_scheduler", worker_thread_number=threads))
        elif kind == "multithread":
            self.scheduler(MultiThreadScheduler(self, name="multithread_scheduler", worker_thread_number=threads,
                                                check_recession_period_ms=0.0))
        else:
            self.scheduler(GreedyScheduler(self, name="greedy_scheduler"))
        if self._tracking is not None:
            t = self._tracking
            self.tracker = self.track(num_start_messages_to_skip=t["skip"],
                                      num_last_messages_to_discard=t["discard"], latency_threshold=0)
            if t["log_file"]:
                self.tracker.enable_logging(filename=t["log_file"])

    def run(self) -> None:  # type: ignore[override]
        """Validate, configure and run the graph to completion.

        Raises
        ------
        GraphValidationError
            Before any operator runs, when the graph is mis-wired.
        Exception
            Whatever an operator raised, unchanged.
        """
        set_log_level(_LOG_LEVELS[str(self._config["app"]["log_level"]).lower()])
        errors = self.validate()
        if errors:
            raise GraphValidationError(self.app_name, errors)
        self._apply_switches()
        run_with_stack(lambda: _base_run(self))


def _base_run_impl(self: _HoloscanApplication) -> None:
    _HoloscanApplication.run(self)


# pybind11's trampoline dispatches Holoscan's C++ run() back to a Python override named "run"
# unless the calling frame is itself a function named "run" whose first argument is the app; the
# engine is entered through such a frame so our Application.run can wrap it without recursion.
_base_run_impl.__code__ = _base_run_impl.__code__.replace(co_name="run")
_base_run = _base_run_impl


def _start_and_join(worker: threading.Thread) -> bool:
    """Start and join ``worker``; True when Ctrl-C was pressed meanwhile.

    Holoscan's SIGINT handler (installed when the graph starts, chaining to the one found) stops
    a running graph cleanly. Python's default handler would instead raise KeyboardInterrupt in
    the main thread while the engine unwinds in the worker, which crashes the process; so a
    recording handler is installed *before* the engine starts, and the interrupt is re-raised
    only once the worker has finished and the sinks have closed their files.
    """
    import signal

    def start() -> None:
        previous = threading.stack_size(STACK_BYTES)  # applies to threads started from now on
        try:
            worker.start()
        finally:
            threading.stack_size(previous)

    if threading.current_thread() is not threading.main_thread():
        start()
        worker.join()
        return False
    hits: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        signal.signal(signal.SIGINT, old)
    return bool(hits)


def run_with_stack(fn: Any) -> None:
    """Call ``fn`` in a thread with a 32 MiB stack; re-raise its exception in the caller.

    Ctrl-C stops the graph (its sinks close their files), then raises KeyboardInterrupt here.
    """
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if threading.current_thread() is threading.main_thread() and (soft == resource.RLIM_INFINITY or
                                                                  soft >= STACK_BYTES):
        fn()
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failure.append(exc)

    if _start_and_join(threading.Thread(target=target, name="clara-stream-app")):
        raise KeyboardInterrupt
    if failure:
        raise failure[0]
