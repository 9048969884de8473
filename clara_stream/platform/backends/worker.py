"""The worker side of the celery backend: one job at a time, run as the embedded scheduler runs it.

A task carries ``(job_id, token)``. The worker claims the job in the database only if the token is
still the job's dispatch mark, runs ``python -m clara_stream.cli run …`` in its own process group
(killed with the worker: ``PR_SET_PDEATHSIG``), polls the database for cancel and checks the
timeout, then records the outcome, the results and one ``job_attempt`` row per attempt. The
message is acknowledged only after that (late ack): a worker killed at any line leaves the message
unacknowledged and RabbitMQ redelivers it to another worker, which records the lost attempt and
runs the job again.

Notes
-----
Inputs and outputs are read and written at the paths the job row names: the service's data folder
must be mounted at the same path on every worker node (NFS, a PVC, a hostPath).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from celery.exceptions import Reject

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import DB_ERRORS
from clara_stream.platform.execution import ProgressPoller
from clara_stream.platform.jobs import FINISHED, JobQueue
from clara_stream.platform.pipeline_uploads import check_shared_job_app
from clara_stream.platform.results import ResultsService
from clara_stream.platform.scheduler import KILL_GRACE_S, _tail, spawn_app
from clara_stream.platform.security import check_input
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import InvalidRequestError

log = logging.getLogger(__name__)

#: a job whose worker was lost this many times is failed (a job that kills its workers)
MAX_LOST = 3
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class WorkerConfig:
    """One worker's identity, budget and confinement.

    Parameters
    ----------
    name : shown per job in REST and the console (default ``<host>-<pid>``).
    data_dir : this worker's own folder (logs of its runs).
    shared_roots : where job inputs and outputs may lie (the service's data folder as mounted here).
    cpu_memory_mb, gpu_memory_mb : the largest job this worker takes; a larger one is handed back.
    """

    data_dir: Path
    shared_roots: list[Path]
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    cpu_memory_mb: int = 16384
    gpu_memory_mb: int = 0
    poll_interval_s: float = 0.2
    settings: PlatformSettings = field(default_factory=PlatformSettings)


class JobRunner:
    """Runs the jobs the broker delivers to this worker."""

    def __init__(self, db, cfg: WorkerConfig) -> None:
        self.db = db
        self.cfg = cfg
        self.queue = JobQueue(db, Path(cfg.data_dir) / "jobs")
        self.results = ResultsService(db, self.queue, ConfigStore(db, cfg.settings.app_roots), cfg.settings)

    # -- database writes that outlive a database restart -------------------------------------
    def _write(self, sql: str, params: tuple, limit_s: float = 600.0) -> int:
        deadline = time.monotonic() + limit_s
        while True:
            try:
                with self.db.write() as con:
                    return con.execute(sql, params).rowcount
            except DB_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("worker %s: database unavailable (%s); retrying", self.cfg.name, exc)
                time.sleep(self.cfg.poll_interval_s * 5)

    def _row(self, job_id: str):
        return self.db.query_one("SELECT * FROM job WHERE id = ?", (job_id,))

    def _attempt_end(self, job_id: str, outcome: str) -> None:
        self._write(
            "UPDATE job_attempt SET finished_at = ?, outcome = ? WHERE job_id = ? AND finished_at IS NULL",
            (time.time(), outcome, job_id),
        )

    # -- one delivery --------------------------------------------------------------------------
    def handle(self, job_id: str, token: float, redelivered: bool) -> str:
        """Run one delivered job; returns what happened (for the log and tests)."""
        row = self._row(job_id)
        if row is None or row["status"] in FINISHED:
            return "skipped: finished or unknown"
        if row["dispatched_at"] != token:
            return "skipped: stale dispatch"
        if row["cpu_memory_mb"] > self.cfg.cpu_memory_mb or row["gpu_memory_mb"] > self.cfg.gpu_memory_mb:
            time.sleep(self.cfg.poll_interval_s)  # hand it back for a worker it fits
            raise Reject(f"worker {self.cfg.name}: expected a job within its budget", requeue=True)
        if row["status"] == "running":
            if not redelivered:
                return "skipped: already running (duplicate message)"
            lost = row["worker"] or "unknown worker"
            self._attempt_end(job_id, f"lost: worker {lost} stopped mid-job")
            n_lost = self.db.query_one(
                "SELECT COUNT(*) AS n FROM job_attempt WHERE job_id = ? AND outcome LIKE 'lost:%'", (job_id,)
            )["n"]
            log.warning("job %s: worker %s lost mid-job; redelivered to %s", job_id, lost, self.cfg.name)
            if n_lost >= MAX_LOST:
                self._finish(job_id, "failed", None, f"worker lost {n_lost} times (last {lost}); not retried")
                return "failed: workers lost"
        return self._run(row, token)

    def _run(self, row, token: float) -> str:
        job_id = row["id"]
        try:
            cwd = check_shared_job_app(row, self.cfg.settings, self.cfg.shared_roots)
            check_input(row["input_dir"], self.cfg.shared_roots)
            out = Path(row["output_dir"]).resolve()
            if not any(out.is_relative_to(r.resolve()) for r in self.cfg.shared_roots):
                raise InvalidRequestError(
                    f"output: expected a folder under the shared roots {[str(r) for r in self.cfg.shared_roots]}; "
                    f"got {str(out)!r}"
                )
        except InvalidRequestError as exc:
            self._finish(job_id, "failed", None, f"worker {self.cfg.name}: refused to start: {exc}")
            return "failed: refused"
        out = Path(row["output_dir"])
        shutil.rmtree(out, ignore_errors=True)  # a lost attempt's partial output
        out.mkdir(parents=True, exist_ok=True)
        log_path = out.parent / f"worker-{row['attempts'] + 1}.log"  # where REST /jobs/{id}/log reads
        # progress goes into this worker's own folder: only the shared database carries it to the service
        poller = ProgressPoller(self.db, job_id, row["attempts"] + 1,
                                Path(self.cfg.data_dir) / "progress" / f"{job_id}-{row['attempts'] + 1}.json")
        with open(log_path, "wb") as log_file:
            proc = spawn_app(self.cfg.settings.worker_python, row, job_id, log_file, preexec_fn=_die_with_parent,
                             progress=poller.path, cwd=cwd)
            claimed = self._write(
                "UPDATE job SET status = 'running', started_at = ?, attempts = attempts + 1, worker = ?, "
                "worker_pid = ?, worker_started = ?, progress = ? WHERE id = ? AND dispatched_at = ? "
                "AND status IN ('queued', 'running')",
                (time.time(), self.cfg.name, proc.pid, time.time(), json.dumps({"state": "running"}), job_id, token),
            )
            if not claimed:  # cancelled or re-dispatched while starting
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return "skipped: lost the claim"
            self._write(
                "INSERT INTO job_attempt (job_id, attempt, worker, started_at) VALUES (?, ?, ?, ?)",
                (job_id, row["attempts"] + 1, self.cfg.name, time.time()),
            )
            rc, reason = self._watch(proc, row, poller)
        self._progress(poller)  # the final rows land before the job's end state
        return self._outcome(job_id, rc, reason, log_path)

    def _progress(self, poller: ProgressPoller) -> None:
        try:
            poller.poll()
        except DB_ERRORS as exc:  # the database restarts: the next poll stores it
            log.warning("job %s: storing operator progress failed: %s", poller.job_id, exc)

    def _watch(self, proc: subprocess.Popen, row, poller: ProgressPoller) -> tuple[int, str | None]:
        """Wait for the app, storing its progress; stop its group on cancel or timeout.
        Returns (exit code, stop reason)."""
        deadline = time.monotonic() + row["timeout_s"] if row["timeout_s"] else None
        reason, kill_at = None, None
        while (rc := proc.poll()) is None:
            time.sleep(self.cfg.poll_interval_s)
            self._progress(poller)
            if reason is None:
                try:
                    cur = self._row(row["id"])
                except DB_ERRORS:  # the database restarts: the app keeps running, we look again
                    cur = None
                if cur is not None and cur["cancel_requested"]:
                    reason = "cancelled"
                elif deadline is not None and time.monotonic() > deadline:
                    reason = f"timed out after {row['timeout_s']} s"
                if reason:
                    _killpg(proc.pid, signal.SIGTERM)
                    kill_at = time.monotonic() + KILL_GRACE_S
            elif kill_at is not None and time.monotonic() > kill_at:
                _killpg(proc.pid, signal.SIGKILL)
                kill_at = None
        return rc, reason

    def _outcome(self, job_id: str, rc: int, reason: str | None, log_path: Path) -> str:
        row = self._row(job_id)
        if reason == "cancelled":
            self._attempt_end(job_id, "cancelled")
            self._finish(job_id, "cancelled", rc, "cancelled")
            return "cancelled"
        if rc == 0 and reason is None:
            self._attempt_end(job_id, "succeeded")
            try:
                self.results.collect(job_id)
            except (OSError, *DB_ERRORS) as exc:
                self._finish(job_id, "failed", 0, f"recording results failed: {exc}")
                return "failed: results"
            self._finish(job_id, "succeeded", 0, None)
            return "succeeded"
        reason = reason or f"app exited with code {rc}"
        error = f"{reason}; log tail:\n{_tail(log_path)}"
        self._attempt_end(job_id, f"failed: {reason}")
        retries = self.db.query_one(
            "SELECT COUNT(*) AS n FROM job_attempt WHERE job_id = ? AND outcome LIKE 'failed:%'", (job_id,)
        )["n"]
        if retries <= row["max_retries"]:
            shutil.rmtree(row["output_dir"], ignore_errors=True)
            self._write(
                "UPDATE job SET status = 'queued', started_at = NULL, worker_pid = NULL, dispatched_at = NULL, "
                "error = ?, exit_code = ? WHERE id = ?",
                (error, rc, job_id),
            )
            return "requeued"
        self._finish(job_id, "failed", rc, error)
        return "failed"

    def _finish(self, job_id: str, status: str, rc: int | None, error: str | None) -> None:
        self._write(
            "UPDATE job SET status = ?, finished_at = ?, exit_code = ?, error = ?, worker_pid = NULL, "
            "progress = ? WHERE id = ?",
            (status, time.time(), rc, error, json.dumps({"state": status}), job_id),
        )


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def register_task(app, runner: JobRunner) -> None:
    """Bind the run-job task of ``app`` to ``runner``."""
    from clara_stream.platform.backends.celery import TASK

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def run_job(self, job_id: str, token: float) -> str:
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        outcome = runner.handle(job_id, token, redelivered)
        log.info("job %s on %s: %s", job_id, runner.cfg.name, outcome)
        return outcome
