"""Extra acceptor processes: several SCP processes share the DICOM port (SO_REUSEPORT).

pynetdicom decodes PDUs in Python, so one process is bound by one core and the GIL; with
``acceptors > 1`` the service starts ``acceptors - 1`` more processes, each a full
:class:`~clara_stream.platform.adapter.DicomAdapter` over the same SQLite database (WAL; writers
serialise through SQLite's own lock) and the same instance store. The kernel spreads new
connections over the processes; one cross-process semaphore keeps ``max_associations`` exact.
Each process settles its own associations; the parent groups, schedules and exports.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path

from clara_stream.platform.settings import PlatformSettings

log = logging.getLogger(__name__)

_CTX = multiprocessing.get_context("spawn")  # never fork a process that runs threads


def shared_slots(n: int):
    """The cross-process admission counter of ``n`` associations."""
    return _CTX.BoundedSemaphore(n)


def _serve(settings: PlatformSettings, port: int, slots, parent: int) -> None:
    """One acceptor process: the SCP on ``port`` until told to stop or the parent is gone."""
    from clara_stream.platform.adapter import DicomAdapter
    from clara_stream.platform.configstore import ConfigStore
    from clara_stream.platform.db import database_for
    from clara_stream.platform.instances import InstanceStore

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    data = Path(settings.data_dir)
    db = database_for(settings)  # the service's own state: SQLite here, or the celery backend's PostgreSQL
    store = InstanceStore(db, data / "store", fsync=settings.fsync)
    adapter = DicomAdapter(
        settings.model_copy(update={"dicom_port": port}),
        ConfigStore(db, settings.app_roots),
        store,
        slots=slots,
        reuse_port=True,
    )
    adapter.start()
    while not stop.wait(settings.poll_interval_s) and os.getppid() == parent:
        adapter.settle()
    adapter.stop(drain_s=settings.drain_timeout_s if stop.is_set() else 0.0)  # parent gone: no drain
    adapter.settle()


class Acceptors:
    """The extra acceptor processes of one service."""

    def __init__(self, settings: PlatformSettings, slots) -> None:
        self.settings = settings
        self.slots = slots
        self.procs: list = []

    def start(self, port: int, count: int) -> None:
        for i in range(count):
            p = _CTX.Process(
                target=_serve,
                args=(self.settings, port, self.slots, os.getpid()),
                name=f"dicom-acceptor-{i}",
                daemon=True,
            )
            p.start()
            self.procs.append(p)
        if count:
            log.info(
                "%d extra DICOM acceptor process(es) on port %d: pids %s", count, port, [p.pid for p in self.procs]
            )

    def terminate(self) -> None:
        """Ask every acceptor to stop (SIGTERM): each refuses new associations and drains its own."""
        for p in self.procs:
            if p.is_alive():
                p.terminate()

    def stop(self) -> None:
        self.terminate()
        for p in self.procs:
            p.join(timeout=self.settings.drain_timeout_s + 10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        self.procs.clear()
