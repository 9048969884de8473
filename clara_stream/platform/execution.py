"""The execution view's data: per-operator rows read from a running app's progress file.

Both backends start each job's app with ``CLARA_STREAM_PROGRESS`` naming a file in a folder of
their own (the embedded scheduler: the job's folder; a Celery worker: its own data folder), poll it
while the app runs and store the rows in the shared database, where REST, gRPC and the console
read them. The file comes from the job's app, so it is checked and bounded before it is stored.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from clara_stream.platform.schemas import OperatorProgress

#: = clara_stream.runtime.progress.ENV (not imported: the service never imports the engine)
PROGRESS_ENV = "CLARA_STREAM_PROGRESS"
MAX_FILE_BYTES = 4 << 20
MAX_OPERATORS = 1000
MAX_TEXT = 2000
STATES = ("waiting", "running", "done", "failed")


def _number(value: Any, *, whole: bool = False) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return int(value) if whole else float(value)


def _row(item: Any) -> dict[str, Any] | None:
    """One operator entry of the file as a row, or None when it is malformed."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item.get("state") not in STATES:
        return None
    messages, total = _number(item.get("messages"), whole=True), _number(item.get("time_ms"))
    if messages is None or total is None:
        return None
    error = item.get("error")
    return {"name": item["name"][:200], "type": str(item.get("type") or "")[:200], "state": item["state"],
            "messages": messages, "time_ms": total, "p50_ms": _number(item.get("p50_ms")),
            "p95_ms": _number(item.get("p95_ms")), "error": error[:MAX_TEXT] if isinstance(error, str) else None}


def read_progress(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
    """``(operator rows, graph)`` from a progress file; None when absent, too large or not JSON."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("operators"), list):
        return None
    rows = [r for r in map(_row, data["operators"][:MAX_OPERATORS]) if r is not None]
    graph = data.get("graph")
    ok = isinstance(graph, dict) and isinstance(graph.get("operators"), list) and isinstance(graph.get("edges"), list)
    return rows, graph if ok else None


class ProgressPoller:
    """Reads one attempt's progress file when it changed and stores it for the job."""

    def __init__(self, db: Any, job_id: str, attempt: int, path: Path) -> None:
        self.db, self.job_id, self.attempt, self.path = db, job_id, attempt, Path(path)
        self._mark: tuple[int, int, int] | None = None
        self._graph_stored = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a file from an earlier service run is not this attempt's

    def poll(self) -> bool:
        """Store the file's rows if it changed since the last call; True when something was stored."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mark = (st.st_mtime_ns, st.st_size, st.st_ino)
        if mark == self._mark:
            return False
        got = read_progress(self.path)
        if got is None:
            return False
        self._mark = mark
        rows, graph = got
        store(self.db, self.job_id, self.attempt, rows, None if self._graph_stored else graph)
        self._graph_stored = self._graph_stored or graph is not None
        return True


def store(db: Any, job_id: str, attempt: int, rows: list[dict[str, Any]], graph: dict[str, Any] | None) -> None:
    """Replace the job's operator rows with this attempt's (one transaction)."""
    now = time.time()
    with db.write() as con:
        con.execute("DELETE FROM job_operator WHERE job_id = ? AND attempt <> ?", (job_id, attempt))
        for seq, r in enumerate(rows):
            con.execute(
                "INSERT INTO job_operator (job_id, attempt, seq, name, type, state, messages, time_ms, p50_ms, "
                "p95_ms, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, name) "
                "DO UPDATE SET attempt = excluded.attempt, seq = excluded.seq, type = excluded.type, "
                "state = excluded.state, messages = excluded.messages, time_ms = excluded.time_ms, "
                "p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, error = excluded.error, "
                "updated_at = excluded.updated_at",
                (job_id, attempt, seq, r["name"], r["type"], r["state"], r["messages"], r["time_ms"], r["p50_ms"],
                 r["p95_ms"], r["error"], now),
            )
        if graph is not None:
            con.execute("UPDATE job SET graph = ? WHERE id = ?", (json.dumps(graph), job_id))


def operators(db: Any, job_id: str) -> list[OperatorProgress]:
    """The job's operators in graph order (empty before its app first reported)."""
    rows = db.query(
        "SELECT name, type, state, messages, time_ms, p50_ms, p95_ms, error, attempt, updated_at FROM job_operator "
        "WHERE job_id = ? ORDER BY seq", (job_id,))
    return [OperatorProgress(**dict(r)) for r in rows]


def job_graph(db: Any, job_id: str) -> dict[str, Any] | None:
    """The graph the job's app reported (None before it started)."""
    row = db.query_one("SELECT graph FROM job WHERE id = ?", (job_id,))
    return json.loads(row["graph"]) if row and row["graph"] else None
