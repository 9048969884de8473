"""Retention: which received instances may be deleted, and deleting them.

A policy (global from the settings, or an AE's own ``retention``) limits age (``max_age_days``)
and total size (``max_total_gb``, oldest deleted first) and may keep instances until every result
made from them is exported (``keep_until_exported``, the default). Whatever the policy says, an
instance is never deleted while its group is still open, while a job made from it is queued or
running, or while one of that job's results waits in the outbox. Applied on a schedule by the
service and by ``clara-stream dicom gc [--dry-run]``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.schemas import RetentionPolicy

log = logging.getLogger(__name__)

_DAY_S = 86400.0


@dataclass(frozen=True)
class Candidate:
    """One instance the policy lets go, and why."""

    instance_id: int
    path: str
    size: int
    sop_uid: str
    called_ae: str
    group_id: int
    received_at: float
    reason: str


def _protected_groups(db: Database, keep_until_exported_groups: set[int]) -> set[int]:
    """Groups whose instances must stay: open, with a queued/running job, or with results in the
    outbox (pending always; failed too where the policy keeps until exported)."""
    protected = {r["id"] for r in db.query("SELECT id FROM grp WHERE state = 'open'")}
    protected |= {
        r["group_id"]
        for r in db.query(
            "SELECT DISTINCT group_id FROM job WHERE group_id IS NOT NULL AND status IN ('queued', 'running')"
        )
    }
    for r in db.query(
        "SELECT DISTINCT j.group_id, o.state FROM outbox o JOIN job j ON j.id = o.job_id "
        "WHERE j.group_id IS NOT NULL AND o.state != 'sent'"
    ):
        if r["state"] == "pending" or r["group_id"] in keep_until_exported_groups:
            protected.add(r["group_id"])
    return protected


def plan(db: Database, config: ConfigStore, default: RetentionPolicy, now: float | None = None) -> list[Candidate]:
    """The instances the policies allow deleting now, oldest first (nothing is deleted here)."""
    now = time.time() if now is None else now
    policies = {ae.ae_title: ae.retention for ae in config.list("ae") if ae.retention is not None}
    rows = db.query(
        "SELECT id, path, size, sop_uid, called_ae, group_id, received_at FROM instance "
        "WHERE state != 'pending' ORDER BY received_at, id"
    )
    keep_export = {r["group_id"] for r in rows if policies.get(r["called_ae"], default).keep_until_exported}
    protected = _protected_groups(db, keep_export)
    scopes: dict[str, list] = {}
    for r in rows:
        scopes.setdefault(r["called_ae"] if r["called_ae"] in policies else "*", []).append(r)
    out: list[Candidate] = []
    for scope, members in scopes.items():
        policy = policies.get(scope, default)
        total = sum(r["size"] for r in members)
        for r in members:
            reason = None
            if policy.max_age_days is not None and now - r["received_at"] > policy.max_age_days * _DAY_S:
                reason = f"older than {policy.max_age_days:g} days"
            elif policy.max_total_gb is not None and total > policy.max_total_gb * 2**30:
                reason = f"{'AE ' + scope if scope != '*' else 'store'} above {policy.max_total_gb:g} GB (oldest first)"
            if reason is None or r["group_id"] in protected:
                continue
            total -= r["size"]
            out.append(
                Candidate(
                    r["id"], r["path"], r["size"], r["sop_uid"], r["called_ae"], r["group_id"], r["received_at"], reason
                )
            )
    return out


def apply(db: Database, candidates: list[Candidate], store_dir: Path) -> dict[str, int]:
    """Delete the candidates' rows, their files (once no other row names the file) and the
    hard links in finished jobs' input folders; returns counts."""
    done = {"instances": 0, "files": 0, "bytes": 0}
    by_id = {c.instance_id: c for c in candidates}
    with db.write() as con:
        for c in candidates:
            con.execute("DELETE FROM instance WHERE id = ?", (c.instance_id,))
    done["instances"] = len(by_id)
    for c in candidates:
        if db.query_one("SELECT 1 FROM instance WHERE path = ?", (c.path,)) is None:
            path = Path(c.path)
            if path.exists():
                done["bytes"] += path.stat().st_size
                path.unlink()
                done["files"] += 1
            for parent in (path.parent, path.parent.parent):  # series, then study folder
                if parent != store_dir and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        for job in db.query(
            "SELECT input_dir FROM job WHERE group_id = ? AND status IN ('succeeded', 'failed', 'cancelled')",
            (c.group_id,),
        ):
            (Path(job["input_dir"]) / f"{c.sop_uid}.dcm").unlink(missing_ok=True)
    if candidates:
        log.info(
            "retention deleted %d instance(s), %d file(s), %d bytes", done["instances"], done["files"], done["bytes"]
        )
    return done


def default_policy(settings) -> RetentionPolicy:
    """The global policy from service settings."""
    return RetentionPolicy(
        max_age_days=settings.retention_max_age_days,
        max_total_gb=settings.retention_max_total_gb,
        keep_until_exported=settings.retention_keep_until_exported,
    )
