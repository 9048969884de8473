"""Group commit: index rows of instances that arrive together share one SQLite transaction.

A commit in WAL mode appends every page the transaction touched (the instance table, its three
indexes, the group row) to the log; measured here, one instance per transaction cost ~0.25 ms
and four per transaction ~0.14 ms each. The way databases do it: the first writer to arrive leads,
takes whatever queued behind it while it waited for the write lock, runs each as a SAVEPOINT in
one BEGIN IMMEDIATE … COMMIT, and wakes the others; a lone writer commits at once (no window, no
added latency). A row that fails rolls back its own savepoint only; a failed COMMIT fails every
row of the batch, so no caller answers success for a row that is not committed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from clara_stream.platform.db import Database


class _Pending:
    __slots__ = ("work", "done", "result", "error", "lead", "shared")

    def __init__(self, work: Callable[[Any], Any]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.lead = False  # woken to lead the next batch rather than with a result
        self.shared = False  # error is the batch's (BEGIN/COMMIT), raised in every caller's thread


class GroupCommit:
    """Runs ``work(connection)`` callables in shared write transactions of at most ``max_batch``."""

    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        self.db, self.max_batch = db, max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        self.batches: list[int] = []  # sizes of the last batches committed (tests, benchmarks)

    def run(self, work: Callable[[Any], Any]) -> Any:
        """``work(con)`` inside a committed write transaction; its result, or its exception."""
        me = _Pending(work)
        with self._lock:
            self._queue.append(me)
            me.lead = not self._leading
            self._leading = True
        if not me.lead:
            me.done.wait()  # woken with our result, or to lead the next batch
        if me.lead:
            self._lead()  # we are the head of the queue: our own row is in the batch we take
        if me.error is not None:
            if me.shared:  # one object raised in many threads would collect all their tracebacks
                try:
                    own = copy.copy(me.error)
                except Exception:  # noqa: BLE001 - an exception type that cannot be copied: raise it as is
                    raise me.error from None
                raise own from me.error
            raise me.error
        return me.result

    def _take(self) -> list[_Pending]:
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    def _lead(self) -> None:
        batch: list[_Pending] = []
        try:
            with self.db.write() as con:  # while we wait for the write lock, others queue behind us
                batch = self._take()
                self._rows(con, batch)
        except BaseException as exc:  # BEGIN or COMMIT failed: no row of the batch is stored
            batch = batch or self._take()
            for p in batch:
                if p.error is None:
                    p.error, p.result, p.shared = exc, None, True
        del self.batches[:-100]
        self.batches.append(len(batch))
        with self._lock:
            if self._queue:  # they arrived after the batch was taken: the first of them leads next
                nxt = self._queue[0]
                nxt.lead = True
                nxt.done.set()
            else:
                self._leading = False
        for p in batch:
            p.lead = False
            p.done.set()

    @staticmethod
    def _rows(con, batch: list[_Pending]) -> None:
        if len(batch) == 1:  # a lone writer: its own transaction, as without group commit
            batch[0].result = batch[0].work(con)
            return
        for p in batch:
            con.execute("SAVEPOINT one")
            try:
                p.result = p.work(con)
            except Exception as exc:  # this row only: the rest of the batch goes on
                con.execute("ROLLBACK TO one")
                p.error = exc
            con.execute("RELEASE one")
