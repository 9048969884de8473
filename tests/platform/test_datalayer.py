"""One data layer on SQLite and PostgreSQL: the same queue, config and results code on both, and
schema migrations (an old SQLite file is upgraded in place; a fresh PostgreSQL database too)."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import SCHEMA, Database, open_database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.migrations import LATEST, MIGRATIONS
from clara_stream.platform.schemas import DestinationConfig, PipelineConfig
from clara_stream.platform.status import ConflictError

from . import distributed

pg_cluster = distributed.pg_cluster  # fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return Database(tmp_path / "state.sqlite")
    cluster = request.getfixturevalue("pg_cluster")
    return open_database(cluster.create_database(f"d{uuid.uuid4().hex[:12]}"))


def test_queue_config_and_ids_behave_the_same_on_both_engines(db, tmp_path):
    """Fails if placeholders, serial ids (lastrowid), integrity errors or ``MAX(a, b)`` differ by
    engine: priority order, requeue without using a retry, 409 on a duplicate, ids 1, 2, 3."""
    q = JobQueue(db, tmp_path / "jobs")
    box = tmp_path / "in"
    box.mkdir()
    pipe = PipelineConfig(name="p", app="x", cpu_memory_mb=1)
    ids = [q.submit(pipe, box, priority=p) for p in (0, 5, -3, 5)]
    assert [r["id"] for r in q.queued()] == [ids[1], ids[3], ids[0], ids[2]]
    q.mark_running(ids[1], 123, 1.5)
    q.requeue(ids[1], error="stopped", interrupted=True)
    assert q.row(ids[1])["attempts"] == 0 and q.row(ids[1])["status"] == "queued"
    assert q.cancel(ids[2]).status == "cancelled"
    with pytest.raises(ConflictError):
        q.cancel(ids[2])
    cfg = ConfigStore(db)
    dest = DestinationConfig(name="d", ae_title="D", host_ip="127.0.0.1", port=104)
    cfg.create("destination", dest)
    with pytest.raises(ConflictError):
        cfg.create("destination", dest)
    with db.write() as con:
        rids = [con.execute("INSERT INTO result (job_id, path, size, created_at) VALUES (?, ?, ?, ?)",
                            (ids[0], f"/r{i}", i, 1.0)).lastrowid for i in range(3)]
    assert rids == [1, 2, 3]
    rows = db.query("SELECT path FROM result WHERE (? IS NULL OR job_id = ?) ORDER BY id", (None, None))
    assert [r["path"] for r in rows] == ["/r0", "/r1", "/r2"]
    assert db.version == LATEST


def test_old_sqlite_file_is_migrated_in_place(tmp_path):
    """A state file from before versioning (no worker/dispatch columns, no job_attempt table)
    keeps its rows and gains the new schema. Fails if a migration is skipped or run twice."""
    path = tmp_path / "state.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.execute("INSERT INTO pipeline (name, body, registered_at) VALUES ('old', '{}', 1.0)")
    con.commit()
    con.close()
    db = Database(path)
    cols = {r["name"] for r in db.query("PRAGMA table_info(job)")}
    assert {"worker", "dispatched_at", "progress"} <= cols
    assert db.query("SELECT name FROM pipeline")[0]["name"] == "old"
    assert db.query_one("SELECT COUNT(*) AS n FROM job_attempt")["n"] == 0
    again = Database(path)  # reopening applies nothing twice
    assert [r["version"] for r in again.query("SELECT version FROM schema_version ORDER BY version")] == [
        v for v, *_ in MIGRATIONS
    ]


def test_unknown_database_url_is_refused_by_name():
    with pytest.raises(ValueError, match="expected a postgresql:// URL or a SQLite file path; got 'mysql://x'"):
        open_database("mysql://x")


def test_a_failed_commit_rolls_back_and_the_next_write_works(db):
    """A COMMIT refused by a deferred foreign key stores nothing and leaves no open transaction:
    with SQLite, the next BEGIN on the same connection failed ("within a transaction") before."""
    if isinstance(db, Database):
        db.connect().execute("PRAGMA foreign_keys = ON")
    with db.write() as con:
        con.execute("CREATE TABLE fk_parent (id INTEGER PRIMARY KEY)")
        con.execute(
            "CREATE TABLE fk_child (pid INTEGER REFERENCES fk_parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    with pytest.raises(Exception, match="(?i)foreign key"):
        with db.write() as con:
            con.execute("INSERT INTO fk_child (pid) VALUES (7)")  # checked only at COMMIT
    with db.write() as con:
        con.execute("INSERT INTO fk_parent (id) VALUES (1)")
        con.execute("INSERT INTO fk_child (pid) VALUES (1)")
    assert [r["pid"] for r in db.query("SELECT pid FROM fk_child")] == [1]
