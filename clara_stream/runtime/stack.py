"""Running the engine in a thread with a 32 MiB stack (Holoscan warns below that), Ctrl-C safe."""

from __future__ import annotations

import threading
from typing import Any

from holoscan.core import Application as _HoloscanApplication

STACK_BYTES = 32 << 20
# The signal that stopped the last run in this process (0: none). The CLI's exit code reads it,
# since click turns the KeyboardInterrupt into a plain Abort on its way out.
last_stop_signal = 0


def _base_run_impl(self: _HoloscanApplication) -> None:
    _HoloscanApplication.run(self)


# pybind11's trampoline dispatches Holoscan's C++ run() back to a Python override named "run"
# unless the calling frame is itself a function named "run" whose first argument is the app; the
# engine is entered through such a frame so our Application.run can wrap it without recursion.
_base_run_impl.__code__ = _base_run_impl.__code__.replace(co_name="run")
_base_run = _base_run_impl


class Terminated(KeyboardInterrupt):
    """The run was stopped by SIGTERM (Kubernetes, Fleet Command, systemd): exit 143, outputs closed."""

    signum = 15


def _start_and_join(worker: threading.Thread) -> int:
    """Start and join ``worker``; the signal number that stopped it (SIGINT or SIGTERM), else 0.

    Holoscan's SIGINT handler (installed when the graph starts, chaining to the one found) stops
    a running graph cleanly. Python's default handler would instead raise KeyboardInterrupt in
    the main thread while the engine unwinds in the worker, which crashes the process; so a
    recording handler is installed *before* the engine starts, and the interrupt is re-raised
    only once the worker has finished and the sinks have closed their files. SIGTERM (what an
    orchestrator sends before it kills a pod) is turned into the same clean stop: its handler
    raises SIGINT, which Holoscan's handler receives.
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
        return 0
    hits: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        hits.append(signum)
        signal.raise_signal(signal.SIGINT)  # Holoscan's SIGINT handler stops the graph cleanly

    old = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
    return signal.SIGTERM if signal.SIGTERM in hits else (signal.SIGINT if hits else 0)


def run_with_stack(fn: Any) -> None:
    """Call ``fn`` in a thread with a 32 MiB stack; re-raise its exception in the caller.

    Ctrl-C stops the graph (its sinks close their files), then raises KeyboardInterrupt here;
    SIGTERM does the same and raises :class:`Terminated`.
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

    global last_stop_signal
    stopped_by = last_stop_signal = _start_and_join(threading.Thread(target=target, name="clara-stream-app"))
    if stopped_by == 15:
        raise Terminated
    if stopped_by:
        raise KeyboardInterrupt
    if failure:
        raise failure[0]
