"""The instance store: durable writes of received instances, their index, and grouping into jobs.

A received instance is written to ``<store>/<called AE>/<SOP Instance UID>.dcm`` through a temp
file that is fsync'ed and renamed, then indexed in SQLite; only then does the C-STORE handler
answer success. Instances of one association stay *pending* until it is released; an aborted
association's pending instances are dropped or kept (``keep_aborted``). A group (study or series,
per AE) whose last instance is older than the AE's idle timeout becomes one job per pipeline.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import GROUPING_SERIES

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


def durable_write(path: Path, data: bytes, *, fsync: bool = True, tmp_suffix: str = ".tmp") -> None:
    """Write ``data`` to ``path`` atomically: temp file, (f)datasync, rename over the target.

    A crash at any point leaves either the old file, no file, or the complete new file at
    ``path`` (plus a stray ``*.tmp`` that :meth:`InstanceStore.recover` removes).
    """
    tmp = path.with_name(path.name + tmp_suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class InstanceStore:
    """Received instances on disk and in the ``instance``/``grp`` tables.

    Parameters
    ----------
    db : the shared database.
    store_dir : root of the instance files.
    fsync : fdatasync each file before it is acknowledged (the DICOM promise; off only to measure).
    """

    def __init__(self, db: Database, store_dir: Path, *, fsync: bool = True) -> None:
        self.db = db
        self.store_dir = Path(store_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._made_dirs: set[str] = set()

    def store(
        self,
        data: bytes,
        *,
        sop_uid: str,
        sop_class: str,
        study_uid: str,
        series_uid: str,
        called_ae: str,
        calling_ae: str,
        calling_host: str,
        assoc_id: str,
        grouping: str,
    ) -> int:
        """Write and index one instance; returns its row id. Raises OSError on disk failure."""
        folder = self.store_dir / called_ae
        if called_ae not in self._made_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(called_ae)
        path = folder / f"{sop_uid}.dcm"
        durable_write(path, data, fsync=self.fsync, tmp_suffix=f".{assoc_id}.tmp")
        group_uid = series_uid if grouping == GROUPING_SERIES else study_uid
        now = time.time()
        with self.db.write() as con:
            grp = con.execute(
                "SELECT id FROM grp WHERE state = 'open' AND called_ae = ? AND group_uid = ?",
                (called_ae, group_uid),
            ).fetchone()
            if grp is None:
                gid = con.execute(
                    "INSERT INTO grp (called_ae, group_uid, opened_at, last_at, state) VALUES (?, ?, ?, ?, 'open')",
                    (called_ae, group_uid, now, now),
                ).lastrowid
            else:
                gid = grp["id"]
                con.execute("UPDATE grp SET last_at = ? WHERE id = ?", (now, gid))
            con.execute("DELETE FROM instance WHERE group_id = ? AND sop_uid = ?", (gid, sop_uid))
            return con.execute(
                "INSERT INTO instance (sop_uid, sop_class, study_uid, series_uid, path, size, called_ae, "
                "calling_ae, calling_host, assoc_id, state, group_id, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    sop_uid,
                    sop_class,
                    study_uid,
                    series_uid,
                    str(path),
                    len(data),
                    called_ae,
                    calling_ae,
                    calling_host,
                    assoc_id,
                    gid,
                    now,
                ),
            ).lastrowid

    def release(self, assoc_id: str) -> int:
        """The association ended normally: its instances count toward their groups."""
        with self.db.write() as con:
            return con.execute(
                "UPDATE instance SET state = 'complete' WHERE assoc_id = ? AND state = 'pending'", (assoc_id,)
            ).rowcount

    def abort(self, assoc_id: str, *, keep: bool) -> int:
        """The association was aborted: keep its instances, or delete their rows and files."""
        if keep:
            return self.release(assoc_id)
        with self.db.write() as con:
            rows = con.execute(
                "SELECT id, path FROM instance WHERE assoc_id = ? AND state = 'pending'", (assoc_id,)
            ).fetchall()
            con.execute("DELETE FROM instance WHERE assoc_id = ? AND state = 'pending'", (assoc_id,))
        for r in rows:
            if not self.db.query_one("SELECT 1 FROM instance WHERE path = ?", (r["path"],)):
                Path(r["path"]).unlink(missing_ok=True)
        if rows:
            log.info("association %s aborted: dropped %d instance(s)", assoc_id, len(rows))
        return len(rows)

    def recover(self) -> int:
        """After a crash: remove partial temp files; keep instances the sender was told are stored."""
        for tmp in self.store_dir.glob("*/*.tmp"):
            tmp.unlink(missing_ok=True)
        with self.db.write() as con:
            return con.execute("UPDATE instance SET state = 'complete' WHERE state = 'pending'").rowcount

    def count(self, **where: str) -> int:
        clause = " AND ".join(f"{k} = ?" for k in where) or "1"
        return self.db.query_one(f"SELECT COUNT(*) AS n FROM instance WHERE {clause}", tuple(where.values()))["n"]

    # -- grouping --------------------------------------------------------------------------
    def close_ready_groups(self, config: ConfigStore, queue: JobQueue, now: float | None = None) -> list[str]:
        """Turn idle groups into jobs (one per pipeline of the AE); returns the new job ids."""
        now = time.time() if now is None else now
        job_ids: list[str] = []
        for grp in self.db.query("SELECT * FROM grp WHERE state = 'open' ORDER BY id"):
            ae = config.ae_by_title(grp["called_ae"])
            timeout = float(ae.timeout) if ae else DEFAULT_TIMEOUT_S
            if now - grp["last_at"] < timeout:
                continue
            pending = self.db.query_one(
                "SELECT COUNT(*) AS n FROM instance WHERE group_id = ? AND state = 'pending'", (grp["id"],)
            )["n"]
            if pending:
                continue  # an association is still sending into this group
            job_ids += self._close(grp, ae, config, queue)
        return job_ids

    def _close(self, grp, ae, config: ConfigStore, queue: JobQueue) -> list[str]:
        instances = self.db.query("SELECT path, sop_uid FROM instance WHERE group_id = ?", (grp["id"],))
        pipelines = [config.pipeline_or_register(name) for name in (ae.workflows if ae else [])]
        planned = []
        for p in pipelines:
            job_id = queue.new_id()
            input_dir = queue.jobs_dir / job_id / "input"
            input_dir.mkdir(parents=True, exist_ok=True)
            for inst in instances:
                link = input_dir / f"{inst['sop_uid']}.dcm"
                if not link.exists():
                    os.link(inst["path"], link)
            planned.append((p, job_id, input_dir))
        with self.db.write() as con:
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
        log.info(
            "group %s (%s, %d instances) closed: jobs %s",
            grp["group_uid"],
            grp["called_ae"],
            len(instances),
            [j for _, j, _ in planned],
        )
        return [j for _, j, _ in planned]
