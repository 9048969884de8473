"""The distributed backend: jobs published to RabbitMQ as Celery tasks, state in the database.

Queues are durable, declared with ``x-max-priority``; messages are persistent and published with
publisher confirms; workers ack late with prefetch 1 (RabbitMQ's priority queues only order what
is not yet delivered). A job goes to the ``gpu`` queue when its pipeline declares GPU memory,
else to ``cpu``.

The database is the truth, the message only a wake-up: each dispatch writes a token
(``job.dispatched_at``) before publishing and the message carries it, so a message for an older
dispatch (republished after a restart, a retry) is dropped by the worker. Retries and restarts
re-dispatch from the database; nothing lives only in a message.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from kombu import Exchange, Queue

from clara_stream.platform.db import DB_ERRORS
from clara_stream.platform.jobs import JobQueue

log = logging.getLogger(__name__)

TASK = "clara_stream.run_job"
EXCHANGE = Exchange("clara-stream", type="direct", durable=True)
QUEUES = ("gpu", "cpu")
#: broker priority levels 0..MAX_PRIORITY; job priorities -100..100 map onto them in order
MAX_PRIORITY = 10


def broker_priority(priority: int) -> int:
    """A job priority (-100..100, higher first) as a RabbitMQ priority (0..10, higher first)."""
    return max(0, min(MAX_PRIORITY, round((int(priority) + 100) * MAX_PRIORITY / 200)))


def route(row) -> str:
    """The queue a job goes to: ``gpu`` when its pipeline declares GPU memory, else ``cpu``."""
    return "gpu" if row["gpu_memory_mb"] > 0 else "cpu"


def make_celery(broker_url: str) -> Celery:
    """The Celery app both the service (publisher) and workers (consumers) use."""
    app = Celery("clara_stream", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[
            Queue(q, EXCHANGE, routing_key=q, durable=True, queue_arguments={"x-max-priority": MAX_PRIORITY})
            for q in QUEUES
        ],
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_delivery_mode="persistent",
        broker_transport_options={"confirm_publish": True},
        broker_heartbeat=0,  # a long job blocks the solo pool; a dead worker's socket closes anyway
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_track_started=False,
    )
    return app


class CeleryDispatcher:
    """The service side: publishes queued jobs; the ``JobScheduler`` of the celery backend.

    Parameters
    ----------
    queue : the job queue (in the shared database).
    broker_url : ``amqp://user:pass@host:port/vhost``.
    poll_interval_s : how often queued, undispatched jobs are looked for (``wake`` shortens it).
    """

    def __init__(self, queue: JobQueue, broker_url: str, poll_interval_s: float = 0.2) -> None:
        self.queue = queue
        self.app = make_celery(broker_url)
        self.poll_interval_s = poll_interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Re-dispatch every queued job (messages of an earlier service run become stale), then loop."""
        with self.app.connection_for_write() as conn:
            for q in self.app.conf.task_queues:
                q.bind(conn.default_channel).declare()
        self._redispatch_all()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing; running jobs keep running on their workers."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _redispatch_all(self) -> None:
        try:
            with self.queue.db.write() as con:
                con.execute("UPDATE job SET dispatched_at = NULL WHERE status = 'queued'")
        except DB_ERRORS:
            log.exception("dispatcher: could not reset dispatch marks; the loop retries")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch()
            except DB_ERRORS as exc:  # database away: try again next pass (reconnects on its own)
                log.warning("dispatcher: database unavailable (%s); retrying", exc)
            except Exception:  # the loop must outlive a broker outage; logged once here
                log.exception("dispatcher: dispatch failed; retrying")
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()

    def dispatch(self) -> int:
        """Publish each queued, undispatched job (priority order); returns how many were published."""
        rows = self.queue.db.query(
            "SELECT * FROM job WHERE status = 'queued' AND dispatched_at IS NULL ORDER BY priority DESC, seq ASC"
        )
        sent = 0
        with self.app.producer_or_acquire() as producer:
            for row in rows:
                if self._stop.is_set():
                    break
                token = time.time()
                with self.queue.db.write() as con:
                    n = con.execute(
                        "UPDATE job SET dispatched_at = ? WHERE id = ? AND status = 'queued' AND dispatched_at IS NULL",
                        (token, row["id"]),
                    ).rowcount
                if not n:
                    continue  # cancelled or dispatched meanwhile
                q = route(row)
                try:
                    self.app.send_task(
                        TASK,
                        args=[row["id"], token],
                        queue=q,
                        routing_key=q,
                        exchange=EXCHANGE,
                        priority=broker_priority(row["priority"]),
                        producer=producer,
                        retry=False,
                    )
                except Exception:
                    with self.queue.db.write() as con:  # not on the broker: dispatch it again later
                        con.execute(
                            "UPDATE job SET dispatched_at = NULL WHERE id = ? AND dispatched_at = ?", (row["id"], token)
                        )
                    raise
                sent += 1
        return sent
