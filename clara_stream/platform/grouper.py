"""Idle groups of received instances become jobs, one per pipeline of the called AE.

A group (study or series, per AE) whose last instance is older than the AE's idle timeout and has
no association still sending into it is closed and its jobs are queued in one transaction. A group
that cannot become a job (an unknown workflow, a stored file deleted by hand) is marked ``failed``
with its reason: it never blocks the groups behind it, and a restart does not retry it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import DB_ERRORS, Database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import AeConfig

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class GroupError(Exception):
    """A group cannot become a job; the message says why."""


def close_ready_groups(db: Database, config: ConfigStore, queue: JobQueue, now: float | None = None) -> list[str]:
    """Turn idle groups into jobs; returns the new job ids. Failed groups are recorded, not raised."""
    now = time.time() if now is None else now
    job_ids: list[str] = []
    for grp in db.query("SELECT * FROM grp WHERE state = 'open' ORDER BY id"):
        ae = config.ae_by_title(grp["called_ae"])
        timeout = float(ae.timeout) if ae else DEFAULT_TIMEOUT_S
        if now - grp["last_at"] < timeout:
            continue
        pending = db.query_one(
            "SELECT COUNT(*) AS n FROM instance WHERE group_id = ? AND state = 'pending'", (grp["id"],)
        )["n"]
        if pending:
            continue  # an association is still sending into this group
        try:
            job_ids += _close(db, grp, ae, config, queue)
        except (GroupError, OSError, ValueError, LookupError, *DB_ERRORS) as exc:
            _fail(db, grp, f"{type(exc).__name__}: {exc}")
    return job_ids


def failed_groups(db: Database) -> list[dict]:
    """Groups that could not become jobs, newest first, with their reasons."""
    rows = db.query(
        "SELECT id, called_ae, group_uid, opened_at, error FROM grp WHERE state = 'failed' ORDER BY id DESC"
    )
    return [dict(r) for r in rows]


def _fail(db: Database, grp: sqlite3.Row, reason: str) -> None:
    with db.write() as con:
        con.execute("UPDATE grp SET state = 'failed', error = ? WHERE id = ?", (reason, grp["id"]))
    log.error("group %s (%s) failed and was set aside: %s", grp["group_uid"], grp["called_ae"], reason)


def _close(db: Database, grp: sqlite3.Row, ae: AeConfig | None, config: ConfigStore, queue: JobQueue) -> list[str]:
    instances = db.query(
        "SELECT path, sop_uid FROM instance WHERE group_id = ? AND state = 'complete' ORDER BY id", (grp["id"],)
    )
    missing = [r["path"] for r in instances if not os.path.isfile(r["path"])]
    if missing:
        raise GroupError(f"expected every stored instance on disk; got {len(missing)} missing, e.g. {missing[0]}")
    pipelines = [config.pipeline_or_register(name) for name in (ae.workflows if ae else [])]
    planned = []
    try:
        for p in pipelines:
            job_id = queue.new_id()
            input_dir = queue.jobs_dir / job_id / "input"
            input_dir.mkdir(parents=True, exist_ok=True)
            planned.append((p, job_id, input_dir))
            for inst in instances:
                os.link(inst["path"], input_dir / f"{inst['sop_uid']}.dcm")
        with db.write() as con:
            con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (grp["id"],))
            for p, job_id, input_dir in planned:
                queue.submit(
                    p,
                    input_dir,
                    priority=ae.priority,
                    source=f"dicom:{grp['called_ae']}",
                    destinations=ae.destinations,
                    group_id=grp["id"],
                    job_id=job_id,
                    con=con,
                )
    except BaseException:
        for _, job_id, _ in planned:  # no half-made job folders are left behind
            shutil.rmtree(queue.jobs_dir / job_id, ignore_errors=True)
        raise
    log.info(
        "group %s (%s, %d instances) closed: jobs %s",
        grp["group_uid"],
        grp["called_ae"],
        len(instances),
        [j for _, j, _ in planned],
    )
    return [j for _, j, _ in planned]
