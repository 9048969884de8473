"""The persistent job queue: order, cancel, recovery, bad input (SQLite only, no workers)."""

from __future__ import annotations

import pytest

from clara_stream.platform.db import Database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import PipelineConfig
from clara_stream.platform.status import ConflictError, InvalidRequestError, NotFoundError

P = PipelineConfig(name="p", app="hello_stream")


@pytest.fixture
def queue(tmp_path) -> JobQueue:
    return JobQueue(Database(tmp_path / "s.sqlite"), tmp_path / "jobs")


def test_higher_priority_first_then_fifo(queue, tmp_path):
    ids = {}
    for name, prio in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)]:
        ids[name] = queue.submit(P, tmp_path, priority=prio)
    order = [r["id"] for r in queue.queued()]
    assert order == [ids[n] for n in ["b", "d", "a", "c", "e"]]


def test_queue_survives_reopen(tmp_path):
    q1 = JobQueue(Database(tmp_path / "s.sqlite"), tmp_path / "jobs")
    a = q1.submit(P, tmp_path, priority=1)
    b = q1.submit(P, tmp_path, priority=2)
    q1.mark_running(a, pid=999999, worker_started=0.0)
    q2 = JobQueue(Database(tmp_path / "s.sqlite"), tmp_path / "jobs")
    assert [r["id"] for r in q2.queued()] == [b]
    assert [r["id"] for r in q2.recover()] == [a]
    q2.requeue(a, error="interrupted")
    assert [r["id"] for r in q2.queued()] == [b, a]


def test_cancel_queued_and_refuse_finished(queue, tmp_path):
    jid = queue.submit(P, tmp_path)
    assert queue.cancel(jid).status == "cancelled"
    with pytest.raises(ConflictError, match="expected queued or running"):
        queue.cancel(jid)
    with pytest.raises(NotFoundError, match="nope"):
        queue.cancel("nope")


def test_cancel_running_is_a_request(queue, tmp_path):
    jid = queue.submit(P, tmp_path)
    queue.mark_running(jid, pid=1, worker_started=0.0)
    info = queue.cancel(jid)
    assert info.status == "running"
    assert queue.row(jid)["cancel_requested"] == 1


def test_missing_input_folder_is_named(queue, tmp_path):
    with pytest.raises(InvalidRequestError, match="input: expected an existing folder"):
        queue.submit(P, tmp_path / "missing")
    assert queue.list() == []
