"""The results service: job outputs on record, exported to destinations through a persisted outbox.

When a job succeeds, :meth:`ResultsService.collect` records each output file (job ↔ pipeline ↔ input
instances ↔ outputs) and queues one outbox row per DICOM output and destination. The exporter
thread sends due rows by C-STORE, one association per (job, destination), retrying with
exponential backoff; rows survive restarts because they live in SQLite.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from clara_stream.platform import scu
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import ResultInfo
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import NotFoundError, PeerError

log = logging.getLogger(__name__)


def _dicom_ids(path: Path) -> tuple[str | None, str | None]:
    """(SOPInstanceUID, SOPClassUID) if ``path`` is a DICOM Part 10 file, else (None, None)."""
    with open(path, "rb") as f:
        head = f.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        return None, None
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID", "SOPClassUID"])
    except (InvalidDicomError, ValueError, OSError):
        return None, None
    return str(ds.get("SOPInstanceUID", "")) or None, str(ds.get("SOPClassUID", "")) or None


class ResultsService:
    """Records outputs and runs the exporter thread.

    Parameters
    ----------
    db, queue, config : shared state.
    settings : ae_title (our calling AE), export_max_attempts, export_backoff_s, poll_interval_s.
    """

    def __init__(self, db: Database, queue: JobQueue, config: ConfigStore, settings: PlatformSettings) -> None:
        self.db = db
        self.queue = queue
        self.config = config
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording -------------------------------------------------------------------------
    def collect(self, job_id: str) -> list[int]:
        """Record a finished job's output files and queue their exports; returns result ids."""
        row = self.queue.row(job_id)
        out = Path(row["output_dir"])
        files = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
        destinations = json.loads(row["destinations"])
        now = time.time()
        ids = []
        entries = [(p, *_dicom_ids(p)) for p in files]
        with self.db.write() as con:
            con.execute("DELETE FROM outbox WHERE job_id = ?", (job_id,))
            con.execute("DELETE FROM result WHERE job_id = ?", (job_id,))
            for p, sop_uid, sop_class in entries:
                rid = con.execute(
                    "INSERT INTO result (job_id, path, size, sop_uid, sop_class, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (job_id, str(p), p.stat().st_size, sop_uid, sop_class, now),
                ).lastrowid
                ids.append(rid)
                if sop_uid is None:
                    continue
                for dest in destinations:
                    con.execute(
                        "INSERT INTO outbox (result_id, job_id, destination, state, next_at) "
                        "VALUES (?, ?, ?, 'pending', ?)",
                        (rid, job_id, dest, now),
                    )
        self._wake.set()
        return ids

    def results(self, *, job_id: str | None = None, result_id: int | None = None, limit: int = 500) -> list[ResultInfo]:
        """Newest first, optionally one job's or one result."""
        rows = self.db.query(
            "SELECT * FROM result WHERE (? IS NULL OR job_id = ?) AND (? IS NULL OR id = ?) ORDER BY id DESC LIMIT ?",
            (job_id, job_id, result_id, result_id, limit),
        )
        out = []
        for r in rows:
            exports = [
                dict(e)
                for e in self.db.query(
                    "SELECT destination, state, attempts, last_error, sent_at FROM outbox WHERE result_id = ?",
                    (r["id"],),
                )
            ]
            out.append(
                ResultInfo(
                    id=r["id"],
                    job_id=r["job_id"],
                    path=r["path"],
                    size=r["size"],
                    sop_uid=r["sop_uid"],
                    sop_class=r["sop_class"],
                    exports=exports,
                )
            )
        return out

    def result(self, result_id: int) -> ResultInfo:
        found = self.results(result_id=result_id, limit=1)
        if found:
            return found[0]
        raise NotFoundError(f"result: expected an existing id; got {result_id}")

    def retry(self, job_id: str) -> int:
        """Put a job's failed exports back in the outbox; returns how many."""
        self.queue.row(job_id)
        with self.db.write() as con:
            n = con.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ? WHERE job_id = ? AND state = 'failed'",
                (time.time(), job_id),
            ).rowcount
        self._wake.set()
        return n

    # -- exporter --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="exporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.export_due()
            except Exception:  # the exporter must outlive one bad row; logged once here
                log.exception("exporter pass failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def export_due(self, now: float | None = None) -> int:
        """Send every due outbox row (one association per job and destination); returns rows sent."""
        now = time.time() if now is None else now
        rows = self.db.query(
            "SELECT o.id, o.job_id, o.destination, o.attempts, r.path "
            "FROM outbox o JOIN result r ON r.id = o.result_id "
            "WHERE o.state = 'pending' AND o.next_at <= ? ORDER BY o.id",
            (now,),
        )
        batches: dict[tuple[str, str], list] = defaultdict(list)
        for r in rows:
            batches[(r["job_id"], r["destination"])].append(r)
        sent = 0
        for (_job_id, dest_name), batch in batches.items():
            if self._stop.is_set():
                break
            try:
                dest = self.config.destination(dest_name)
                report = scu.store(
                    [Path(r["path"]) for r in batch],
                    dest.host_ip,
                    dest.port,
                    dest.ae_title,
                    calling_ae=self.settings.ae_title,
                )
                errors = {str(p): e for p, e in report.failed.items()}
            except (NotFoundError, PeerError, OSError) as exc:
                errors = {r["path"]: str(exc) for r in batch}
            sent += self._record(batch, errors)
        return sent

    def _record(self, batch: list, errors: dict[str, str]) -> int:
        now = time.time()
        s = self.settings
        sent = 0
        with self.db.write() as con:
            for r in batch:
                err = errors.get(r["path"])
                if err is None:
                    con.execute(
                        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = ?, "
                        "last_error = NULL WHERE id = ?",
                        (now, r["id"]),
                    )
                    sent += 1
                    continue
                attempts = r["attempts"] + 1
                state = "failed" if attempts >= s.export_max_attempts else "pending"
                con.execute(
                    "UPDATE outbox SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                    (state, attempts, now + s.export_backoff_s * 2 ** (attempts - 1), err, r["id"]),
                )
                log.warning(
                    "export of %s to %s failed (attempt %d, %s): %s",
                    r["path"],
                    r["destination"],
                    attempts,
                    state,
                    err,
                )
        return sent
