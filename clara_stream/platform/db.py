"""SQLite state shared by the adapter, scheduler, results service and REST API.

One file, WAL journal, one connection per thread. Writers serialise on a process-wide lock so
that a burst of C-STORE threads never sees ``database is locked``; readers never block writers.
Every table is created here so the schema is visible in one place.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from clara_stream.platform.migrations import migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS ae (
    name TEXT PRIMARY KEY, ae_title TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS source (
    name TEXT PRIMARY KEY, ae_title TEXT NOT NULL, host_ip TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS destination (
    name TEXT PRIMARY KEY, ae_title TEXT NOT NULL, host_ip TEXT NOT NULL, port INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pipeline (
    name TEXT PRIMARY KEY, body TEXT NOT NULL, registered_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS job (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    app TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '[]',
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 0,
    timeout_s REAL,
    cpu_memory_mb INTEGER NOT NULL DEFAULT 0,
    gpu_memory_mb INTEGER NOT NULL DEFAULT 0,
    input_dir TEXT NOT NULL,
    output_dir TEXT NOT NULL,
    source TEXT NOT NULL,
    group_id INTEGER,
    destinations TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    exit_code INTEGER,
    worker_pid INTEGER,
    worker_started REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS job_queue ON job(status, priority DESC, seq);
CREATE TABLE IF NOT EXISTS grp (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    called_ae TEXT NOT NULL,
    group_uid TEXT NOT NULL,
    opened_at REAL NOT NULL,
    last_at REAL NOT NULL,
    state TEXT NOT NULL,
    error TEXT);
CREATE INDEX IF NOT EXISTS grp_open ON grp(state, called_ae, group_uid);
CREATE TABLE IF NOT EXISTS instance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_uid TEXT NOT NULL,
    sop_class TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    called_ae TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    calling_host TEXT NOT NULL,
    assoc_id TEXT NOT NULL,
    state TEXT NOT NULL,
    group_id INTEGER NOT NULL,
    received_at REAL NOT NULL,
    conflict TEXT);
CREATE INDEX IF NOT EXISTS instance_assoc ON instance(assoc_id);
CREATE INDEX IF NOT EXISTS instance_sop ON instance(sop_uid);
CREATE INDEX IF NOT EXISTS instance_group ON instance(group_id);
CREATE TABLE IF NOT EXISTS result (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sop_uid TEXT,
    sop_class TEXT,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS result_job ON result(job_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    sent_at REAL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_at);
"""

#: Columns added after the first release: (table, column, declaration), added to older files.
ADDED_COLUMNS = (("grp", "error", "TEXT"), ("instance", "conflict", "TEXT"))


def _driver_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    try:
        import psycopg
    except ImportError:  # the scale extra is not installed: SQLite only
        return (sqlite3.Error,), (sqlite3.IntegrityError,)
    return (sqlite3.Error, psycopg.Error), (sqlite3.IntegrityError, psycopg.IntegrityError)


#: what a failing database raises, on either engine (catch these, not ``sqlite3.Error``)
DB_ERRORS, INTEGRITY_ERRORS = _driver_errors()


def open_database(target: str | Path):
    """The data layer for ``target``: a ``postgresql://`` URL, else a SQLite file path."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from clara_stream.platform.pgdb import PgDatabase  # the scale extra

        return PgDatabase(text)
    if "://" in text:
        raise ValueError(f"database: expected a postgresql:// URL or a SQLite file path; got {text!r}")
    return Database(Path(text))


def database_for(settings) -> Database:
    """The service's state: ``settings.database_url`` (PostgreSQL), else ``<data_dir>/state.sqlite``."""
    if settings.database_url is not None:
        return open_database(settings.database_url.get_secret_value())
    return Database(Path(settings.data_dir) / "state.sqlite")


class Database:
    """A SQLite file in WAL mode with per-thread connections and one write lock.

    Parameters
    ----------
    path : Path
        Database file; its folder is created. ``synchronous=NORMAL`` in WAL mode: a committed
        transaction survives the process being killed (the OS still has it); only a power cut can
        lose the last commits, which the instance store's file fsync and start-up re-index cover.
    """

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        with self._write_lock:
            con = self.connect()
            for table, column, decl in ADDED_COLUMNS:  # before the indexes that may use them
                cols = {r["name"] for r in con.execute(f"PRAGMA table_info({table})")}
                if cols and column not in cols:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            con.executescript(SCHEMA)  # executescript manages its own transaction
            with self.write() as tx:
                self.version = migrate(tx, self.dialect)

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            self._local.con = con
        return con

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        with self._write_lock:
            con = self.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (a deferred constraint, SQLITE_FULL, SQLITE_BUSY) can leave the
                # transaction open: every later BEGIN on this thread's connection would then fail
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run a read query on this thread's connection."""
        return self.connect().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        """First row of a read query, or None."""
        return self.connect().execute(sql, params).fetchone()

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
