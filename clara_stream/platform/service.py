"""The platform service: one process holding the SCP, grouper, scheduler, exporter and state.

``clara-stream dicom serve`` builds a :class:`PlatformService`, starts it and serves the REST app
(:func:`clara_stream.platform.api.app.create_app`) with uvicorn in the same process.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from clara_stream.platform import acceptors, retention
from clara_stream.platform.adapter import DicomAdapter
from clara_stream.platform.backends import JobScheduler
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import DB_ERRORS, database_for
from clara_stream.platform.instances import InstanceStore
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.results import ResultsService
from clara_stream.platform.scheduler import Scheduler
from clara_stream.platform.schemas import JobInfo, JobSubmit
from clara_stream.platform.security import check_input, ensure_token
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import InvalidRequestError
from clara_stream.platform.upload_rules import UPLOAD_DIR

log = logging.getLogger(__name__)


def _celery_dispatcher(queue: JobQueue, settings: PlatformSettings) -> JobScheduler:
    from clara_stream.platform.backends.celery import CeleryDispatcher  # the scale extra

    return CeleryDispatcher(queue, settings.broker_url.get_secret_value(), settings.poll_interval_s)


class PlatformService:
    """Everything behind ``dicom serve``; usable in-process by tests and the loadgen.

    Parameters
    ----------
    settings : validated service settings.
    dicom : start the SCP (False for a REST-and-scheduler-only service).
    """

    def __init__(self, settings: PlatformSettings, *, dicom: bool = True) -> None:
        self.settings = settings
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.db = database_for(settings)
        self.config = ConfigStore(self.db, app_roots=[*settings.app_roots, data / UPLOAD_DIR])  # uploads: checked
        self.queue = JobQueue(self.db, data / "jobs")
        self.store = InstanceStore(self.db, data / "store", fsync=settings.fsync)
        #: where job inputs may lie: received data (store, job folders, gRPC uploads) and configured input roots
        self.input_roots = [self.store.store_dir, self.queue.jobs_dir, data / "payloads", *settings.input_roots]
        self.results = ResultsService(self.db, self.queue, self.config, settings)
        self.scheduler: JobScheduler = (
            Scheduler(self.queue, settings, on_success=self.results.collect, input_roots=self.input_roots)
            if settings.scheduler == "embedded"
            else _celery_dispatcher(self.queue, settings)
        )
        many = dicom and settings.acceptors > 1
        slots = acceptors.shared_slots(settings.max_associations) if many else None
        self.adapter = (
            DicomAdapter(settings, self.config, self.store, slots=slots, reuse_port=many) if dicom else None
        )
        self._acceptors = acceptors.Acceptors(settings, slots) if many else None
        #: the token REST requires (None: open, loopback only); generated once beyond loopback
        self.api_token, self.token_generated = ensure_token(data, settings.http_host, settings.api_token)
        self._stop = threading.Event()
        self._grouper: threading.Thread | None = None
        self.started = False

    @property
    def dicom_port(self) -> int | None:
        return self.adapter.port if self.adapter else None

    def start(self) -> None:
        """Recover from a previous crash, then start the SCP and the worker threads."""
        recovered = self.store.recover(self.config)
        if any(recovered.values()):
            log.info("instance store recovered after a restart: %s", recovered)
        self.scheduler.start()
        self.results.start()
        self._grouper = threading.Thread(target=self._group_loop, name="grouper", daemon=True)
        self._grouper.start()
        if self.adapter is not None:
            port = self.adapter.start()
            if self._acceptors is not None:
                self._acceptors.start(port, self.settings.acceptors - 1)
        self.started = True

    def stop(self) -> None:
        """Stop accepting (associations in progress get ``drain_timeout_s`` to finish), stop
        threads; running jobs are requeued for the next start."""
        if self._acceptors is not None:
            self._acceptors.terminate()  # they drain alongside this process's SCP
        if self.adapter is not None:
            self.adapter.stop(drain_s=self.settings.drain_timeout_s)
        if self._acceptors is not None:
            self._acceptors.stop()
        self._stop.set()
        if self._grouper:
            self._grouper.join(timeout=10)
        self.results.stop()
        self.scheduler.stop()
        self.started = False

    def gc(self, *, dry_run: bool = False, now: float | None = None) -> list[retention.Candidate]:
        """Apply the retention policies now; returns what was (or, dry run, would be) deleted."""
        found = retention.plan(self.db, self.config, retention.default_policy(self.settings), now)
        if not dry_run:
            retention.apply(self.db, found, self.store.store_dir)
        return found

    def _group_loop(self) -> None:
        interval = self.settings.retention_interval_s
        next_gc = time.monotonic()  # a first pass at start, then every interval
        while not self._stop.is_set():
            if interval and time.monotonic() >= next_gc:
                next_gc = time.monotonic() + interval
                try:
                    self.gc()
                except (OSError, *DB_ERRORS):  # retried next interval; logged once here
                    log.exception("retention pass failed")
            try:
                if self.adapter is not None:
                    self.adapter.settle()
                if self.store.close_ready_groups(self.config, self.queue):
                    self.scheduler.wake()
            except Exception:  # keep grouping after one bad group; logged once here
                log.exception("grouper pass failed")
            self._stop.wait(self.settings.poll_interval_s)

    def submit(self, req: JobSubmit) -> JobInfo:
        """Queue a job from the REST API; checks pipeline, input folder, destinations and budget."""
        pipeline = self.config.pipeline(req.pipeline)
        self.config.check_destinations(req.destinations)
        s = self.settings
        if pipeline.cpu_memory_mb > s.cpu_memory_budget_mb or pipeline.gpu_memory_mb > s.gpu_memory_budget_mb:
            raise InvalidRequestError(
                f"pipeline {pipeline.name}: expected needs within the budget (cpu "
                f"{s.cpu_memory_budget_mb} MB, gpu {s.gpu_memory_budget_mb} MB); got cpu "
                f"{pipeline.cpu_memory_mb} MB, gpu {pipeline.gpu_memory_mb} MB"
            )
        input_dir = check_input(req.input, self.input_roots)
        job_id = self.queue.submit(
            pipeline, input_dir, priority=req.priority or 0, source="api", destinations=req.destinations,
            status="created" if req.start is False else "queued",
        )
        self.scheduler.wake()
        return self.queue.get(job_id)

    def cancel(self, job_id: str) -> JobInfo:
        info = self.queue.cancel(job_id)
        self.scheduler.wake()
        return info
