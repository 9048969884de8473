"""Running the engine in a thread with a 32 MiB stack (Holoscan warns below that), Ctrl-C safe."""

from __future__ import annotations

import threading
from typing import Any

from holoscan.core import Application as _HoloscanApplication

STACK_BYTES = 32 << 20


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
