"""PostgreSQL behind the same interface as :class:`clara_stream.platform.db.Database`.

The platform's SQL is written once, in the subset SQLite and PostgreSQL share; this module adapts
the rest: ``?`` placeholders, ``lastrowid`` (``RETURNING id``), dict rows, ``BEGIN IMMEDIATE``
(a transaction under one process-wide lock, plus row locks PostgreSQL takes itself).

Notes
-----
One connection per thread, client-side parameter binding (``ClientCursor``: ``? IS NULL`` needs
no declared type). A connection the server dropped (restart, failover) is discarded and the next
call opens a new one, so the service's loops resume after the database returns; reads are
retried once on a fresh connection.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterator

import psycopg
from psycopg.rows import dict_row

from clara_stream.platform.migrations import migrate, to_postgres

#: tables whose key is a serial ``id`` (an INSERT into one reports it as ``lastrowid``)
_SERIAL = frozenset({"grp", "instance", "result", "outbox", "job_attempt"})
#: a per-cluster lock held while the schema is created or migrated (several processes start at once)
_SCHEMA_LOCK = 0x636C6172


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, bool]:
    """(PostgreSQL SQL, whether ``RETURNING id`` was added) for one statement in SQLite's words."""
    out = sql.replace("%", "%%").replace("?", "%s")
    m = re.match(r"\s*INSERT INTO (\w+)", out, re.IGNORECASE)
    returning = bool(m and m.group(1) in _SERIAL and "RETURNING" not in out.upper())
    return (out + " RETURNING id" if returning else out), returning


class _Cursor:
    def __init__(self, cur: psycopg.Cursor, returning: bool) -> None:
        self._cur, self._returning, self._id = cur, returning, None

    @property
    def lastrowid(self) -> int | None:
        if self._returning and self._id is None:
            self._id = self._cur.fetchone()["id"]
        return self._id

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self):
        return self._cur.fetchone()

    def fetchall(self):
        return self._cur.fetchall()


class PgConnection:
    """A psycopg connection that speaks the platform's SQLite-style statements."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: tuple | dict = ()) -> _Cursor:
        text, returning = translate(sql)
        return _Cursor(self.raw.execute(text, params or None, prepare=False), returning)


class PgDatabase:
    """PostgreSQL state with per-thread connections; the interface of ``Database``.

    Parameters
    ----------
    url : ``postgresql://user@host:port/dbname`` (libpq URI; ``?host=/socket/dir`` for a socket).
    connect_timeout_s : how long one connection attempt may take.
    """

    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        from clara_stream.platform.db import SCHEMA  # one schema, written once

        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._write_lock = threading.RLock()
        with self.write() as con:
            con.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for stmt in filter(str.strip, to_postgres(SCHEMA).split(";")):
                con.execute(stmt)
            self.version = migrate(con, self.dialect)

    def connect(self) -> PgConnection:
        """This thread's connection (opened on first use, reopened after the server dropped it)."""
        con = getattr(self._local, "con", None)
        if con is None or con.raw.closed or con.raw.broken:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                cursor_factory=psycopg.ClientCursor,
                connect_timeout=max(1, int(self.connect_timeout_s)),
            )
            con = self._local.con = PgConnection(raw)
        return con

    def _drop(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            with contextlib.suppress(psycopg.Error):
                con.raw.close()
            self._local.con = None

    @contextlib.contextmanager
    def write(self) -> Iterator[PgConnection]:
        """A write transaction (rolled back on error; a dropped connection is reopened next time)."""
        with self._write_lock:
            con = self.connect()
            try:
                with con.raw.transaction():
                    yield con
            except psycopg.OperationalError:
                self._drop()
                raise

    def _read(self, sql: str, params: tuple | dict, one: bool):
        for attempt in (1, 2):
            try:
                cur = self.connect().execute(sql, params)
                return cur.fetchone() if one else cur.fetchall()
            except psycopg.OperationalError:
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        """Run a read query (retried once on a fresh connection)."""
        return self._read(sql, params, one=False)

    def query_one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        """First row of a read query, or None."""
        return self._read(sql, params, one=True)

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()
