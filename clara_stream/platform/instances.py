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


def durable_write(path: Path, parts: list, *, fsync: bool = True, tag: str = "") -> int:
    """Write ``parts`` (bytes or memoryviews) to ``path`` atomically; returns the size written.

    Temp file ``<name>.<tag>.<size>.tmp`` → (f)datasync → rename over ``path``. A crash leaves the
    old file, no file, or the complete new one at ``path``, plus maybe a temp file whose name
    says how long it must be, so :meth:`InstanceStore.recover` can tell complete from partial.
    """
    size = sum(len(p) for p in parts)
    tmp = path.with_name(f"{path.name}.{tag}.{size}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        views = [memoryview(p) for p in parts]
        while views:
            n = os.writev(fd, views)
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return size


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
        parts: list,
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
        size = durable_write(path, parts, fsync=self.fsync, tag=assoc_id)
        return self._index(
            path,
            size,
            sop_uid=sop_uid,
            sop_class=sop_class,
            study_uid=study_uid,
            series_uid=series_uid,
            called_ae=called_ae,
            calling_ae=calling_ae,
            calling_host=calling_host,
            assoc_id=assoc_id,
            grouping=grouping,
            state="pending",
        )

    def _index(
        self,
        path: Path,
        size: int,
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
        state: str,
    ) -> int:
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
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sop_uid,
                    sop_class,
                    study_uid,
                    series_uid,
                    str(path),
                    size,
                    called_ae,
                    calling_ae,
                    calling_host,
                    assoc_id,
                    state,
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

    def recover(self, config: ConfigStore | None = None) -> dict[str, int]:
        """After a crash or power cut, make the index match the files; returns what it did.

        - a temp file of full length (its name says the length) was written completely: it is
          renamed into place (a power cut may have lost the rename); shorter ones are deleted;
        - instance files with no row (a lost commit) are parsed and indexed as complete;
        - rows still 'pending' (their association was cut by our crash, not aborted by the peer)
          become complete: their senders were told they are stored.
        """
        done = {"promoted": 0, "deleted": 0, "indexed": 0, "completed": 0}
        for tmp in self.store_dir.glob("*/*.tmp"):
            name, _, rest = tmp.name.partition(".dcm.")
            expected = rest.rsplit(".", 2)[-2] if rest.count(".") >= 2 else ""
            if expected.isdigit() and tmp.stat().st_size == int(expected):
                os.replace(tmp, tmp.with_name(name + ".dcm"))
                done["promoted"] += 1
            else:
                tmp.unlink(missing_ok=True)
                done["deleted"] += 1
        known = {r["path"] for r in self.db.query("SELECT path FROM instance")}
        for path in sorted(self.store_dir.glob("*/*.dcm")):
            if str(path) not in known and self._index_orphan(path, config):
                done["indexed"] += 1
        with self.db.write() as con:
            done["completed"] = con.execute("UPDATE instance SET state = 'complete' WHERE state = 'pending'").rowcount
        return done

    def _index_orphan(self, path: Path, config: ConfigStore | None) -> bool:
        from pydicom import dcmread
        from pydicom.errors import InvalidDicomError

        try:
            ds = dcmread(
                path,
                stop_before_pixels=True,
                specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"],
            )
            ids = [str(ds[k].value) for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")]
        except (InvalidDicomError, KeyError, ValueError, OSError, EOFError):
            log.warning("recover: %s is not a readable instance; left in place, not indexed", path)
            return False
        called = path.parent.name
        ae = config.ae_by_title(called) if config is not None else None
        self._index(
            path,
            path.stat().st_size,
            sop_uid=ids[0],
            sop_class=ids[1],
            study_uid=ids[2],
            series_uid=ids[3],
            called_ae=called,
            calling_ae="",
            calling_host="",
            assoc_id="recovered",
            grouping=ae.grouping if ae else "0020,000D",
            state="complete",
        )
        return True

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
