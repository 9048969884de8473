"""The instance store: durable writes of received instances, their index, and conflicts.

A received instance is written to ``<store>/<called AE>/<study UID>/<series UID>/<SOP UID>.dcm``
through a temp file that is fdatasync'ed and renamed, then indexed in SQLite; only then does the
C-STORE handler answer success. The key is the whole study/series/instance triple, so one SOP
Instance UID sent in two studies (broken modalities, re-sent anonymised data) is two files, never
one overwriting the other. The same bytes again are idempotent (no rewrite); different bytes under
the same key are kept beside the first (``<SOP UID>.<digest>.dcm``). Either kind of clash is
recorded in ``instance.conflict`` and shown with the job's instances.

Instances of one association stay *pending* until it is released; an aborted association's
pending instances are dropped or kept (``keep_aborted``). Grouping into jobs is in
:mod:`clara_stream.platform.grouper`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import time
from pathlib import Path

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from clara_stream.platform import grouper
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.group_commit import GroupCommit
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import GROUPING_SERIES

log = logging.getLogger(__name__)


def durable_write(path: Path, parts: list, *, fsync: bool = True, tag: str = "", exclusive: bool = False) -> int:
    """Write ``parts`` (bytes or memoryviews) to ``path`` atomically; returns the size written.

    Temp file ``<name>.<tag>.<size>.tmp`` → (f)datasync → rename over ``path``. A crash leaves the
    old file, no file, or the complete new one at ``path``, plus maybe a temp file whose name
    says how long it must be, so :meth:`InstanceStore.recover` can tell complete from partial.
    A failed write (disk full) removes its temp file before raising. ``exclusive``: publish with
    a hard link instead, which raises FileExistsError rather than replace a file another thread
    or acceptor process published meanwhile (patient data is never overwritten).
    """
    size = sum(len(p) for p in parts)
    tmp = path.with_name(f"{path.name}.{tag}.{size}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
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
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _meta_element(elem: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 2, elem, vr, len(value)) + value
    return struct.pack("<HH2sH", 2, elem, vr, len(value)) + value


def file_head(sop_class: str, sop_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and File Meta Information (PS3.10 §7.1, explicit VR little endian) of a
    received instance, as pynetdicom's SCP writes them. Encoded here: pydicom's writer took ~5 % of
    the C-STORE path; the bytes are the same (tested against pydicom)."""
    body = b"".join(
        (
            _meta_element(0x0001, b"OB", b"\x00\x01", b"\x00"),
            _meta_element(0x0002, b"UI", sop_class.encode(), b"\x00"),
            _meta_element(0x0003, b"UI", sop_uid.encode(), b"\x00"),
            _meta_element(0x0010, b"UI", transfer_syntax.encode(), b"\x00"),
            _meta_element(0x0012, b"UI", PYNETDICOM_IMPLEMENTATION_UID.encode(), b"\x00"),
            _meta_element(0x0013, b"SH", PYNETDICOM_IMPLEMENTATION_VERSION.encode(), b" "),
        )
    )
    return b"\x00" * 128 + b"DICM" + _meta_element(0x0000, b"UL", struct.pack("<I", len(body)), b"") + body


def space_shortfall(path: Path, min_free_mb: float, min_free_percent: float) -> str | None:
    """Why the file system of ``path`` is below its low-space watermark, or None.

    The watermark is the smaller of ``min_free_mb`` and ``min_free_percent`` of the file system,
    so a small disk is not refused for being small, nor a big one allowed to fill.
    """
    usage = shutil.disk_usage(path)
    floor = min(min_free_mb * 2**20, usage.total * min_free_percent / 100)
    if usage.free >= floor:
        return None
    return (
        f"low space: {usage.free / 2**20:.1f} MiB free on the store's file system, below the watermark "
        f"{floor / 2**20:.1f} MiB (min of --min-free-mb {min_free_mb:g} and --min-free-percent {min_free_percent:g})"
    )


def _same_bytes(path: Path, parts: list, size: int) -> bool:
    try:
        if path.stat().st_size != size:
            return False
        return path.read_bytes() == b"".join(bytes(p) for p in parts)
    except FileNotFoundError:
        return False


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
        self._commits = GroupCommit(db)  # index rows of instances arriving together: one transaction

    def path_for(self, called_ae: str, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where an instance lives: keyed by AE, study, series and instance (all checked UIDs)."""
        return self.store_dir / called_ae / study_uid / series_uid / f"{sop_uid}.dcm"

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
        """Write and index one instance; returns its row id. Raises OSError on disk failure.

        Same key and same bytes: nothing is rewritten. Same key, other bytes: both are kept and
        the clash is recorded. The same SOP Instance UID under another study or series: recorded.
        """
        path = self.path_for(called_ae, study_uid, series_uid, sop_uid)
        size = sum(len(p) for p in parts)
        base, conflict, written = path, None, False
        while True:
            if path.exists():
                if _same_bytes(path, parts, size):
                    break  # idempotent: these exact bytes are stored under this key already
                if path != base:
                    raise FileExistsError(f"store: expected {path} to hold the bytes its digest names; got others")
                digest = hashlib.sha256(b"".join(bytes(p) for p in parts)).hexdigest()[:16]
                path = base.with_name(f"{sop_uid}.{digest}.dcm")
                conflict = f"same study/series/SOP Instance UID received before, other content (kept as {path.name})"
                continue
            try:
                durable_write(path, parts, fsync=self.fsync, tag=assoc_id, exclusive=True)
                written = True
                break
            except FileExistsError:
                continue  # published meanwhile by another association: compare with it
            except FileNotFoundError:
                if path.parent.is_dir():
                    raise
                path.parent.mkdir(parents=True, exist_ok=True)  # a new series (or a folder removed by hand)
        try:
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
                conflict=conflict,
            )
        except BaseException:  # database full: the sender gets a failure, so no file may stay
            if written:
                path.unlink(missing_ok=True)
            raise

    def _index(self, path: Path, size: int, **row) -> int:
        """Index one instance; committed when this returns. Instances indexed at the same time
        share one transaction (:class:`~clara_stream.platform.group_commit.GroupCommit`)."""
        return self._commits.run(lambda con: self._index_rows(con, path, size, **row))

    def _index_rows(
        self,
        con,
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
        conflict: str | None = None,
    ) -> int:
        group_uid = series_uid if grouping == GROUPING_SERIES else study_uid
        now = time.time()
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
        same = con.execute(
            "SELECT id, path, study_uid, series_uid, called_ae, state, assoc_id, group_id FROM instance "
            "WHERE sop_uid = ?",
            (sop_uid,),
        ).fetchall()
        for r in same:
            if r["path"] == str(path) and r["state"] != "superseded" and r["group_id"] == gid:
                if r["state"] == "pending" and r["assoc_id"] != assoc_id:
                    # acknowledged to this association too: the row must outlive the other's abort
                    con.execute(
                        "INSERT INTO instance_claim (instance_id, assoc_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (r["id"], assoc_id),
                    )
                return r["id"]  # the same bytes again into the same open group: idempotent
        others = [r for r in same if (r["study_uid"], r["series_uid"]) != (study_uid, series_uid)]
        if others:
            o = others[0]
            conflict = (
                f"SOP Instance UID also received in study {o['study_uid']} series {o['series_uid']} "
                f"(AE {o['called_ae']}); kept apart"
            )
        # a newer version under the same key replaces the older one in this group's job only
        con.execute(
            "UPDATE instance SET state = 'superseded' WHERE group_id = ? AND sop_uid = ? AND path != ?",
            (gid, sop_uid, str(path)),
        )
        iid = con.execute(
            "INSERT INTO instance (sop_uid, sop_class, study_uid, series_uid, path, size, called_ae, "
            "calling_ae, calling_host, assoc_id, state, group_id, received_at, conflict) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                conflict,
            ),
        ).lastrowid
        if conflict:
            con.execute(
                "UPDATE instance SET conflict = COALESCE(conflict, ?) WHERE sop_uid = ? AND id != ?",
                (f"SOP Instance UID received again as instance #{iid}: {conflict}", sop_uid, iid),
            )
            log.warning("instance conflict %s (%s): %s", sop_uid, called_ae, conflict)
        return iid

    def release(self, assoc_id: str) -> int:
        """The association ended normally: its instances count toward their groups, and so do
        pending rows of other associations it was acknowledged the same bytes of (its claims)."""
        with self.db.write() as con:
            n = con.execute(
                "UPDATE instance SET state = 'complete' WHERE assoc_id = ? AND state = 'pending'", (assoc_id,)
            ).rowcount
            n += con.execute(
                "UPDATE instance SET state = 'complete' WHERE state = 'pending' AND id IN "
                "(SELECT instance_id FROM instance_claim WHERE assoc_id = ?)",
                (assoc_id,),
            ).rowcount
            con.execute("DELETE FROM instance_claim WHERE assoc_id = ?", (assoc_id,))
            return n

    def abort(self, assoc_id: str, *, keep: bool) -> int:
        """The association was aborted: keep its instances, or delete their rows and files."""
        if keep:
            return self.release(assoc_id)
        with self.db.write() as con:
            con.execute("DELETE FROM instance_claim WHERE assoc_id = ?", (assoc_id,))  # its claims on others' rows
            rows = []
            for r in con.execute(
                "SELECT id, path FROM instance WHERE assoc_id = ? AND state = 'pending'", (assoc_id,)
            ).fetchall():
                heir = con.execute(
                    "SELECT assoc_id FROM instance_claim WHERE instance_id = ? ORDER BY assoc_id LIMIT 1", (r["id"],)
                ).fetchone()
                if heir is not None:  # acknowledged to an association still open: it owns the row now
                    con.execute("UPDATE instance SET assoc_id = ? WHERE id = ?", (heir["assoc_id"], r["id"]))
                    con.execute(
                        "DELETE FROM instance_claim WHERE instance_id = ? AND assoc_id = ?", (r["id"], heir["assoc_id"])
                    )
                else:
                    con.execute("DELETE FROM instance WHERE id = ?", (r["id"],))
                    rows.append(r)
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
        for tmp in self.store_dir.rglob("*.tmp"):
            name, _, rest = tmp.name.partition(".dcm.")
            expected = rest.rsplit(".", 2)[-2] if rest.count(".") >= 2 else ""
            if expected.isdigit() and tmp.stat().st_size == int(expected):
                os.replace(tmp, tmp.with_name(name + ".dcm"))
                done["promoted"] += 1
            else:
                tmp.unlink(missing_ok=True)
                done["deleted"] += 1
        known = {r["path"] for r in self.db.query("SELECT path FROM instance")}
        for path in sorted(self.store_dir.glob("*/*/*/*.dcm")):  # <AE>/<study>/<series>/<file>
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
        called = path.parents[2].name
        if (path.parents[1].name, path.parent.name) != (ids[2], ids[3]):
            log.warning("recover: %s holds study %s series %s, not its folder's; not indexed", path, ids[2], ids[3])
            return False
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

    def close_ready_groups(self, config: ConfigStore, queue: JobQueue, now: float | None = None) -> list[str]:
        """Idle groups → jobs (:func:`clara_stream.platform.grouper.close_ready_groups`)."""
        return grouper.close_ready_groups(self.db, config, queue, now)
