"""The persistent job queue: higher priority first, FIFO within one priority (SQLite WAL).

Jobs move (created →) queued → running → succeeded | failed | cancelled (a job created without
start waits in 'created' until :meth:`JobQueue.start`); a failed run with retries left goes
back to queued in its original place. The queue survives restarts: :meth:`JobQueue.recover`
turns jobs that were running when the service died back into queued jobs.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

from clara_stream.platform.db import Database
from clara_stream.platform.schemas import JobInfo, PipelineConfig
from clara_stream.platform.status import ConflictError, InvalidRequestError, NotFoundError

FINISHED = ("succeeded", "failed", "cancelled")
#: a job row plus how many of its instances carry a recorded conflict (shown by REST and the console)
_SELECT = (
    "SELECT job.*, (SELECT COUNT(*) FROM instance i WHERE i.group_id = job.group_id "
    "AND i.conflict IS NOT NULL) AS conflicts FROM job"
)


def job_info(row: sqlite3.Row) -> JobInfo:
    """A job row as its API model."""
    started, finished = row["started_at"], row["finished_at"]
    return JobInfo(
        id=row["id"],
        pipeline=row["pipeline"],
        app=row["app"],
        priority=row["priority"],
        status=row["status"],
        source=row["source"],
        created_at=row["created_at"],
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started) if started and finished else None,
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        error=row["error"],
        exit_code=row["exit_code"],
        input_dir=row["input_dir"],
        output_dir=row["output_dir"],
        destinations=json.loads(row["destinations"]),
        conflicts=row["conflicts"] if "conflicts" in row.keys() else 0,
        worker=row["worker"] if "worker" in row.keys() else None,
    )


class JobQueue:
    """Jobs in SQLite; the scheduler claims them, the REST API lists, submits and cancels them.

    Parameters
    ----------
    db : the shared database.
    jobs_dir : each job gets ``jobs_dir/<id>/output`` (and ``input`` when the adapter made it).
    """

    def __init__(self, db: Database, jobs_dir: Path) -> None:
        self.db = db
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)

    def new_id(self) -> str:
        return uuid.uuid4().hex[:16]

    def submit(
        self,
        pipeline: PipelineConfig,
        input_dir: Path,
        *,
        priority: int = 0,
        source: str = "api",
        destinations: list[str] | None = None,
        group_id: int | None = None,
        job_id: str | None = None,
        con: sqlite3.Connection | None = None,
        status: str = "queued",
    ) -> str:
        """Queue one run of ``pipeline`` on ``input_dir``; returns the job id.

        ``con``: an open write transaction to join (the grouper closes a group and queues its
        jobs atomically); otherwise a transaction of its own.
        """
        input_dir = Path(input_dir)
        if not input_dir.is_dir():
            raise InvalidRequestError(f"input: expected an existing folder; got {str(input_dir)!r}")
        job_id = job_id or self.new_id()
        output_dir = self.jobs_dir / job_id / "output"
        params = (
            job_id,
            pipeline.name,
            pipeline.app,
            json.dumps(pipeline.overrides),
            int(priority),
            status,
            time.time(),
            pipeline.max_retries,
            pipeline.timeout_s,
            pipeline.cpu_memory_mb,
            pipeline.gpu_memory_mb,
            str(input_dir.resolve()),
            str(output_dir),
            source,
            group_id,
            json.dumps(destinations or []),
        )
        sql = (
            "INSERT INTO job (id, pipeline, app, overrides, priority, status, created_at, max_retries, "
            "timeout_s, cpu_memory_mb, gpu_memory_mb, input_dir, output_dir, source, group_id, destinations) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        if con is not None:
            con.execute(sql, params)
        else:
            with self.db.write() as c:
                c.execute(sql, params)
        return job_id

    def row(self, job_id: str) -> sqlite3.Row:
        row = self.db.query_one("SELECT * FROM job WHERE id = ?", (job_id,))
        if row is None:
            raise NotFoundError(f"job: expected an existing id; got {job_id!r}")
        return row

    def get(self, job_id: str) -> JobInfo:
        row = self.db.query_one(f"{_SELECT} WHERE id = ?", (job_id,))
        if row is None:
            raise NotFoundError(f"job: expected an existing id; got {job_id!r}")
        return job_info(row)

    def list(self, *, status: str | None = None, pipeline: str | None = None, limit: int = 200) -> list[JobInfo]:
        """Newest first."""
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if pipeline:
            where.append("pipeline = ?")
            params.append(pipeline)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.query(f"{_SELECT} {clause} ORDER BY seq DESC LIMIT ?", (*params, limit))
        return [job_info(r) for r in rows]

    def queued(self) -> list[sqlite3.Row]:
        """Queued jobs in run order: priority descending, then submission order."""
        return self.db.query("SELECT * FROM job WHERE status = 'queued' ORDER BY priority DESC, seq ASC")

    def running(self) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM job WHERE status = 'running' ORDER BY seq")

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued job at once; ask the scheduler to stop a running one."""
        with self.db.write() as con:
            row = con.execute("SELECT status FROM job WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job: expected an existing id; got {job_id!r}")
            if row["status"] in FINISHED:
                raise ConflictError(f"job {job_id}: expected queued or running to cancel; got {row['status']}")
            if row["status"] in ("queued", "created"):
                con.execute(
                    "UPDATE job SET status = 'cancelled', finished_at = ?, error = 'cancelled' WHERE id = ?",
                    (time.time(), job_id),
                )
            else:
                con.execute("UPDATE job SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return self.get(job_id)

    def start(self, job_id: str) -> JobInfo:
        """Queue a job that was created without start (the caller wakes the scheduler)."""
        with self.db.write() as con:
            row = con.execute("SELECT status FROM job WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job: expected an existing id; got {job_id!r}")
            if row["status"] != "created":
                raise ConflictError(f"job {job_id}: expected a created job to start; got {row['status']}")
            con.execute("UPDATE job SET status = 'queued' WHERE id = ?", (job_id,))
        return self.get(job_id)

    def mark_running(self, job_id: str, pid: int, worker_started: float) -> None:
        with self.db.write() as con:
            con.execute(
                "UPDATE job SET status = 'running', started_at = ?, attempts = attempts + 1, "
                "worker_pid = ?, worker_started = ? WHERE id = ?",
                (time.time(), pid, worker_started, job_id),
            )

    def finish(self, job_id: str, status: str, *, exit_code: int | None = None, error: str | None = None) -> None:
        with self.db.write() as con:
            con.execute(
                "UPDATE job SET status = ?, finished_at = ?, exit_code = ?, error = ?, worker_pid = NULL WHERE id = ?",
                (status, time.time(), exit_code, error, job_id),
            )

    def requeue(
        self, job_id: str, *, error: str | None, exit_code: int | None = None, interrupted: bool = False
    ) -> None:
        """Back to the queue in its original place (a retry, or ``interrupted`` by a service stop,
        which does not use up a retry)."""
        row = self.row(job_id)
        shutil.rmtree(row["output_dir"], ignore_errors=True)
        with self.db.write() as con:
            con.execute(
                "UPDATE job SET status = 'queued', started_at = NULL, worker_pid = NULL, error = ?, "
                "exit_code = ?, attempts = CASE WHEN attempts > ? THEN attempts - ? ELSE 0 END WHERE id = ?",
                (error, exit_code, int(interrupted), int(interrupted), job_id),
            )

    def recover(self) -> list[sqlite3.Row]:
        """Jobs left 'running' by a previous process (the caller stops stray workers, then requeues)."""
        return self.running()
