"""Schema migrations shared by the SQLite and PostgreSQL data layers.

Version 1 is :data:`clara_stream.platform.db.SCHEMA` (created with ``IF NOT EXISTS``, so files made
before versioning upgrade in place). Later versions are listed in :data:`MIGRATIONS` as portable
steps: ``("column", table, name, decl)`` adds a column if it is missing, a string is one statement.
The applied version is kept in ``schema_version``; each step runs once, in order, in the caller's
transaction.
"""

from __future__ import annotations

import re

#: (version, what, steps)
MIGRATIONS: tuple[tuple[int, str, tuple], ...] = (
    (
        2,
        "distributed backend: the worker per job, the dispatch mark, one row per attempt",
        (
            ("column", "job", "worker", "TEXT"),
            ("column", "job", "dispatched_at", "REAL"),
            ("column", "job", "progress", "TEXT"),
            "CREATE TABLE IF NOT EXISTS job_attempt (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "job_id TEXT NOT NULL, attempt INTEGER NOT NULL, worker TEXT NOT NULL, started_at REAL NOT NULL, "
            "finished_at REAL, outcome TEXT)",
            "CREATE INDEX IF NOT EXISTS job_attempt_job ON job_attempt(job_id)",
        ),
    ),
    (
        3,
        "pipeline ids: a registered pipeline is represented by an id (Clara Deploy), kept across updates",
        (
            ("column", "pipeline", "id", "TEXT"),
            "CREATE UNIQUE INDEX IF NOT EXISTS pipeline_id ON pipeline(id)",
        ),
    ),
    (
        4,
        "execution view: per-operator progress of a job's latest attempt, and the graph that ran",
        (
            ("column", "job", "graph", "TEXT"),
            "CREATE TABLE IF NOT EXISTS job_operator (job_id TEXT NOT NULL, attempt INTEGER NOT NULL, "
            "seq INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL, "
            "messages INTEGER NOT NULL, time_ms REAL NOT NULL, p50_ms REAL, p95_ms REAL, error TEXT, "
            "updated_at REAL NOT NULL, PRIMARY KEY (job_id, name))",
        ),
    ),
    (
        5,
        "claims: an association acknowledged the same bytes another association's pending row holds",
        (
            "CREATE TABLE IF NOT EXISTS instance_claim (instance_id INTEGER NOT NULL, assoc_id TEXT NOT NULL, "
            "PRIMARY KEY (instance_id, assoc_id))",
            "CREATE INDEX IF NOT EXISTS instance_claim_assoc ON instance_claim(assoc_id)",
        ),
    ),
)
LATEST = MIGRATIONS[-1][0]


def to_postgres(sql: str) -> str:
    """SQLite DDL in PostgreSQL's words (serial keys, double precision, 64-bit integers)."""
    sql = re.sub(r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bINTEGER\b", "BIGINT", sql)


def _has_column(con, dialect: str, table: str, column: str) -> bool:
    if dialect == "sqlite":
        return any(r["name"] == column for r in con.execute(f"PRAGMA table_info({table})").fetchall())
    row = con.execute(
        "SELECT 1 AS x FROM information_schema.columns WHERE table_name = ? AND column_name = ?", (table, column)
    ).fetchone()
    return row is not None


def migrate(con, dialect: str) -> int:
    """Apply the migrations ``con`` has not seen; returns the schema version reached."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = con.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
    current = row["v"] or 1
    for version, _what, steps in MIGRATIONS:
        if version <= current:
            continue
        for step in steps:
            if isinstance(step, tuple):
                _, table, column, decl = step
                if not _has_column(con, dialect, table, column):
                    decl = to_postgres(decl) if dialect == "postgresql" else decl
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            else:
                con.execute(to_postgres(step) if dialect == "postgresql" else step)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        current = version
    return current
