"""Group commit of the instance index (``platform/group_commit.py``): instances arriving together
share one SQLite transaction, a row that fails fails alone, and no status is sent before the
instance's fdatasync and the batch's COMMIT. Real SQLite, real sockets (the hand-written SCU of
``test_fast_receive``); the database's own trigger refuses one row."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading

import pytest

from clara_stream.platform import db as db_module
from clara_stream.platform import instances
from clara_stream.platform.adapter import DicomAdapter
from clara_stream.platform.db import Database
from clara_stream.platform.group_commit import GroupCommit

from .conftest import wait_until
from .test_fast_receive import RawScu, env, p_data, pdv, split_file, store_rq

__all__ = ["env"]  # the fixture, imported for this module's tests


def _store_one(port: int, body: bytes, sop_class: str, sop_uid: str, ts: str, out: dict) -> None:
    scu = RawScu(port)
    scu.associate([(1, sop_class, [ts])])
    scu.send(p_data(pdv(1, store_rq(1, sop_class, sop_uid), command=True, last=True)))
    scu.send(p_data(pdv(1, body, command=False, last=True)))
    out[sop_uid] = scu.response()["Status"]
    scu.release()


def _insert(gc: GroupCommit, k: int, got: dict) -> None:
    """Insert ``k`` into table t through ``gc``; its row id or the error, in ``got[k]``."""
    try:
        got[k] = gc.run(lambda con: con.execute("INSERT INTO t VALUES (?)", (k,)).lastrowid)
    except sqlite3.Error as exc:
        got[k] = exc


def test_rows_queued_together_commit_together_and_a_failing_row_fails_alone(tmp_path):
    """Four writers queue while the write lock is held: one transaction of four; the row that
    breaks the primary key raises in its own thread and the other three are committed. Fails if
    every writer commits alone, or one bad row rolls back the whole batch."""
    db = Database(tmp_path / "s.sqlite")
    with db.write() as con:
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        con.execute("INSERT INTO t VALUES (99)")
    gc = GroupCommit(db)
    got: dict[int, object] = {}

    with db.write():  # the leader waits here; the others queue behind it
        threads = [threading.Thread(target=_insert, args=(gc, k, got)) for k in (1, 2, 99, 3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(gc._queue) == 4, "four writers queued")
    for t in threads:
        t.join(60)
    assert gc.batches == [4]
    assert {k: v for k, v in got.items() if k != 99} == {1: 1, 2: 2, 3: 3}
    assert isinstance(got[99], sqlite3.IntegrityError)
    assert [r["k"] for r in db.query("SELECT k FROM t ORDER BY k")] == [1, 2, 3, 99]
    assert gc.run(lambda con: con.execute("INSERT INTO t VALUES (4)").lastrowid) == 4  # a lone writer
    assert gc.batches == [4, 1]


def test_concurrent_c_stores_good_refused_and_truncated_get_their_own_statuses(env, ct_small, monkeypatch):
    """Four associations at once while the index is held: two good instances, one the database
    refuses (a trigger), one truncated. The good ones are acknowledged (0x0000) after one shared
    COMMIT, after their own fdatasync; the refused one gets 0x0110 and leaves no file; the
    truncated one 0xC000 without reaching the index. Fails if a status goes out before the sync
    or the commit, if the refused row takes the batch down, or its file stays."""
    files = [split_file(p) for p in sorted(ct_small.iterdir())[:4]]
    (b0, cls, u0, ts), (b1, _, u1, _), (b2, _, u2, _), (b3, _, u3, _) = files
    with env.db.write() as con:
        con.execute(
            f"CREATE TRIGGER refuse_one BEFORE INSERT ON instance WHEN NEW.sop_uid = '{u2}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        )
    events: list[tuple[str, str]] = []
    fds: dict[int, str] = {}
    real_open, real_sync = os.open, os.fdatasync

    def rec_open(path, flags, mode=0o777, **kw):
        fd = real_open(path, flags, mode, **kw)
        if str(path).endswith(".tmp"):
            fds[fd] = os.path.basename(path).split(".dcm.")[0]
        return fd

    def rec_sync(fd):
        real_sync(fd)
        events.append(("fdatasync", fds.get(fd, "?")))

    real_write = db_module.Database.write

    @contextlib.contextmanager
    def rec_write(self):
        with real_write(self) as con:
            yield con
        # which rows this commit made durable: the batch's is the first to hold u0 and u1
        events.append(("commit", frozenset(r["sop_uid"] for r in self.query("SELECT sop_uid FROM instance"))))

    real_receive = DicomAdapter.receive_instance

    def rec_receive(self, **kw):
        rsp = real_receive(self, **kw)
        events.append(("status", kw["sop_uid"]))
        return rsp

    monkeypatch.setattr(instances.os, "open", rec_open)
    monkeypatch.setattr(instances.os, "fdatasync", rec_sync)
    monkeypatch.setattr(db_module.Database, "write", rec_write)
    monkeypatch.setattr(DicomAdapter, "receive_instance", rec_receive)
    statuses: dict[str, int] = {}
    sends = [(b0, u0), (b1, u1), (b2, u2), (b3[:-1001], u3)]
    with real_write(env.db):  # hold the index: the three that get that far queue for one batch
        threads = [
            threading.Thread(target=_store_one, args=(env.port, body, cls, uid, ts, statuses)) for body, uid in sends
        ]
        for t in threads:
            t.start()
        wait_until(lambda: len(env.store._commits._queue) == 3 and u3 in statuses, "three queued, one refused")
    for t in threads:
        t.join(60)
    assert statuses == {u0: 0x0000, u1: 0x0000, u2: 0x0110, u3: 0xC000}
    assert env.store._commits.batches == [3]  # one transaction for the three that reached the index
    commit = next(i for i, e in enumerate(events) if e[0] == "commit" and {u0, u1} <= e[1])
    for uid in (u0, u1):
        assert events.index(("fdatasync", uid)) < commit < events.index(("status", uid)), events
    assert {r["sop_uid"] for r in env.db.query("SELECT sop_uid FROM instance")} == {u0, u1}
    assert sorted(p.name for p in env.files()) == sorted(f"{u}.dcm" for u in (u0, u1))


@pytest.mark.parametrize("size", [1, 3])
def test_a_failed_commit_fails_every_row_of_the_batch(tmp_path, monkeypatch, size):
    """The COMMIT itself fails (as when the database is full): every writer of the batch gets the
    error, nobody a result. Fails if a row is reported committed when its transaction was not."""
    db = Database(tmp_path / "s.sqlite")
    with db.write() as con:
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    gc = GroupCommit(db)
    real_write = db_module.Database.write

    @contextlib.contextmanager
    def failing(self):
        with real_write(self) as con:
            yield con
            raise sqlite3.OperationalError("database or disk is full")  # rolls the transaction back

    got: dict[int, object] = {}

    with db.write():
        monkeypatch.setattr(db_module.Database, "write", failing)
        threads = [threading.Thread(target=_insert, args=(gc, k, got)) for k in range(size)]
        for t in threads:
            t.start()
        wait_until(lambda: len(gc._queue) == size, "writers queued")
    for t in threads:
        t.join(60)
    assert gc.batches == [size]
    assert all(isinstance(v, sqlite3.OperationalError) for v in got.values()) and len(got) == size
    assert db.query("SELECT k FROM t") == []
