"""Runs queued jobs in worker subprocesses within a concurrency and memory budget.

Each job runs ``<python> -m clara_stream.cli run <app> --input <dir> --output <dir>`` in its own
process group, so a crashing or hanging app fails (or retries) its job while the service lives,
and cancel/timeout stop the whole group.

Notes
-----
One scheduler thread owns every worker ``Popen``; the REST API only writes requests (cancel) into
SQLite and calls :meth:`Scheduler.wake`. Order is strict: the head of the queue (highest priority,
oldest) starts first; if it does not fit the memory budget, nothing behind it starts (no
starvation of large jobs).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from clara_stream.platform.db import DB_ERRORS
from clara_stream.platform.execution import PROGRESS_ENV, ProgressPoller
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.pipeline_uploads import check_job_app
from clara_stream.platform.security import check_input
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import InvalidRequestError
from clara_stream.platform.upload_rules import UploadRules

log = logging.getLogger(__name__)

KILL_GRACE_S = 5.0
LOG_TAIL_CHARS = 2000


@dataclass
class _Worker:
    job_id: str
    proc: subprocess.Popen
    log_file: IO[bytes]
    log_path: Path
    cpu_mb: int
    gpu_mb: int
    deadline: float | None
    stop_reason: str | None = None
    kill_at: float | None = None
    started: float = field(default_factory=time.time)
    progress: ProgressPoller | None = None


def worker_command(python: str, row) -> list[str]:
    """The command line that runs one job's app."""
    cmd = [
        python,
        "-m",
        "clara_stream.cli",
        "run",
        row["app"],
        "--input",
        row["input_dir"],
        "--output",
        row["output_dir"],
    ]
    for item in json.loads(row["overrides"]):
        cmd += ["--set", item]
    return cmd


def spawn_app(python: str, row, job_id: str, log_file, preexec_fn=None,
              progress: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start one job's app in its own session, its output into ``log_file``.

    Both backends launch apps through here: the embedded scheduler and the Celery worker.
    ``progress``: the file the app keeps its per-operator progress in (:mod:`clara_stream.platform.execution`).
    ``cwd``: the folder it runs in (an uploaded pipeline: its job's folder; else the service's own).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", CLARA_STREAM_JOB_ID=job_id)
    env.pop("CLARA_STREAM_API_TOKEN", None)  # apps never need the service's credentials
    env.pop(PROGRESS_ENV, None)
    if progress is not None:
        env[PROGRESS_ENV] = str(progress)
    return subprocess.Popen(worker_command(python, row), stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True, preexec_fn=preexec_fn,
                            cwd=cwd)


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-LOG_TAIL_CHARS:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


class Scheduler:
    """The job runner thread.

    Parameters
    ----------
    queue : the job queue.
    settings : concurrency, memory budgets, poll interval, worker interpreter.
    on_success : called with the job id after a zero exit, before the job is marked succeeded
        (the results service records outputs and queues exports there); if it raises, the job
        fails with that message.
    input_roots : where a job's input may lie; checked again at launch together with the app
        (a row written before these rules, or by hand, still cannot run code or read files
        outside them).
    """

    def __init__(
        self,
        queue: JobQueue,
        settings: PlatformSettings,
        on_success: Callable[[str], None] | None = None,
        input_roots: list[Path] | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.on_success = on_success
        self.input_roots = list(input_roots) if input_roots is not None else [queue.jobs_dir, *settings.input_roots]
        self._workers: dict[str, _Worker] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Requeue jobs a previous process left running, then start the loop thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, *, kill_workers: bool = True) -> None:
        """Stop the loop; running jobs are stopped and requeued (they resume on next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        if kill_workers:
            for w in list(self._workers.values()):
                self._signal(w, signal.SIGKILL)
                w.proc.wait(timeout=10)
                w.log_file.close()
                self.queue.requeue(w.job_id, error="interrupted by service stop", interrupted=True)
            self._workers.clear()

    def wake(self) -> None:
        """Look at the queue now (a job was submitted or cancelled)."""
        self._wake.set()

    def recover(self) -> list[str]:
        """Stop stray workers of jobs left 'running' and put those jobs back in the queue."""
        ids = []
        for row in self.queue.recover():
            pid, started = row["worker_pid"], row["worker_started"]
            if pid:
                try:
                    proc = psutil.Process(pid)
                    if started is None or abs(proc.create_time() - started) < 1.0:
                        os.killpg(pid, signal.SIGKILL)
                except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                    pass
            self.queue.requeue(row["id"], error="interrupted by service restart; requeued", interrupted=True)
            ids.append(row["id"])
        if ids:
            log.info("requeued %d interrupted job(s): %s", len(ids), ", ".join(ids))
        return ids

    # -- loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive any one bad job; the error is logged once here
                log.exception("scheduler step failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def step(self) -> None:
        """Reap finished workers, apply cancels and timeouts, store operator progress, start what fits."""
        self._poll_progress()
        self._reap()
        self._enforce()
        self._start_ready()

    def _reap(self) -> None:
        for job_id, w in list(self._workers.items()):
            rc = w.proc.poll()
            if rc is None:
                continue
            w.log_file.close()
            del self._workers[job_id]
            self._poll_progress([w])  # the final rows land before the job's end state
            row = self.queue.row(job_id)
            if w.stop_reason == "cancelled":
                self.queue.finish(job_id, "cancelled", exit_code=rc, error="cancelled")
            elif rc == 0 and w.stop_reason is None:
                self._succeed(job_id)
            else:
                reason = w.stop_reason or f"app exited with code {rc}"
                error = f"{reason}; log tail:\n{_tail(w.log_path)}"
                if row["attempts"] <= row["max_retries"]:
                    log.info(
                        "job %s failed (%s); retry %d of %d",
                        job_id,
                        reason,
                        row["attempts"],
                        row["max_retries"],
                    )
                    self.queue.requeue(job_id, error=error, exit_code=rc)
                else:
                    self.queue.finish(job_id, "failed", exit_code=rc, error=error)

    def _poll_progress(self, workers: list[_Worker] | None = None) -> None:
        for w in self._workers.values() if workers is None else workers:
            if w.progress is None:
                continue
            try:
                w.progress.poll()
            except DB_ERRORS as exc:  # the next step stores it; the job itself is unaffected
                log.warning("job %s: storing operator progress failed: %s", w.job_id, exc)

    def _succeed(self, job_id: str) -> None:
        try:
            if self.on_success is not None:
                self.on_success(job_id)
        except Exception as exc:  # a results failure fails the job, with the reason recorded
            log.exception("job %s: recording results failed", job_id)
            self.queue.finish(job_id, "failed", exit_code=0, error=f"recording results failed: {exc}")
            return
        self.queue.finish(job_id, "succeeded", exit_code=0)

    def _enforce(self) -> None:
        now = time.time()
        for job_id, w in self._workers.items():
            if w.stop_reason is None:
                row = self.queue.row(job_id)
                if row["cancel_requested"]:
                    w.stop_reason = "cancelled"
                elif w.deadline is not None and now > w.deadline:
                    w.stop_reason = f"timed out after {row['timeout_s']} s"
                if w.stop_reason:
                    self._signal(w, signal.SIGTERM)
                    w.kill_at = now + KILL_GRACE_S
            elif w.kill_at is not None and now > w.kill_at:
                self._signal(w, signal.SIGKILL)
                w.kill_at = None

    @staticmethod
    def _signal(w: _Worker, sig: int) -> None:
        try:
            os.killpg(w.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _start_ready(self) -> None:
        s = self.settings
        while len(self._workers) < s.max_concurrent_jobs and not self._stop.is_set():
            queued = self.queue.queued()
            if not queued:
                return
            head = queued[0]
            if head["cpu_memory_mb"] > s.cpu_memory_budget_mb or head["gpu_memory_mb"] > s.gpu_memory_budget_mb:
                self.queue.finish(
                    head["id"],
                    "failed",
                    error=(
                        f"scheduler: expected needs within budget (cpu {s.cpu_memory_budget_mb} MB, "
                        f"gpu {s.gpu_memory_budget_mb} MB); got cpu {head['cpu_memory_mb']} MB, "
                        f"gpu {head['gpu_memory_mb']} MB [pipeline {head['pipeline']}]"
                    ),
                )
                continue
            cpu_used = sum(w.cpu_mb for w in self._workers.values())
            gpu_used = sum(w.gpu_mb for w in self._workers.values())
            if (
                cpu_used + head["cpu_memory_mb"] > s.cpu_memory_budget_mb
                or gpu_used + head["gpu_memory_mb"] > s.gpu_memory_budget_mb
            ):
                return  # the head waits until running jobs free enough memory
            self._launch(head)

    def _launch(self, row) -> None:
        try:
            cwd = check_job_app(row, self.settings.app_roots, UploadRules.where(
                self.settings, self.input_roots, Path(self.settings.data_dir), self.queue.jobs_dir))
            check_input(row["input_dir"], self.input_roots)
        except InvalidRequestError as exc:
            self.queue.finish(row["id"], "failed", error=f"scheduler: refused to start: {exc}")
            return
        out = Path(row["output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        log_path = out.parent / f"worker-{row['attempts'] + 1}.log"
        poller = ProgressPoller(self.queue.db, row["id"], row["attempts"] + 1,
                                out.parent / f"operators-{row['attempts'] + 1}.json")
        log_file = open(log_path, "wb")  # noqa: SIM115 - owned by the _Worker until reaped
        try:
            proc = spawn_app(self.settings.worker_python, row, row["id"], log_file, progress=poller.path, cwd=cwd)
        except OSError as exc:
            log_file.close()
            self.queue.finish(row["id"], "failed",
                              error=f"scheduler: could not start worker {self.settings.worker_python}: {exc}")
            return
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:  # exited already; _reap records how
            started = time.time()
        self.queue.mark_running(row["id"], proc.pid, started)
        deadline = time.time() + row["timeout_s"] if row["timeout_s"] else None
        self._workers[row["id"]] = _Worker(
            row["id"], proc, log_file, log_path, row["cpu_memory_mb"], row["gpu_memory_mb"], deadline, progress=poller
        )
        log.info("job %s started: %s (pid %d)", row["id"], " ".join(proc.args), proc.pid)
