"""One scheduler interface, two backends.

``embedded`` (default): SQLite + worker subprocesses in the service (:mod:`.embedded`).
``celery``: the service publishes jobs to RabbitMQ; ``clara-stream worker`` processes on any node
run them, with state in PostgreSQL (:mod:`.celery`, :mod:`.worker`).

Both satisfy :class:`JobScheduler`: the service only calls ``start``, ``stop`` and ``wake``.
"""

from __future__ import annotations

from typing import Protocol


class JobScheduler(Protocol):
    """What the platform service needs from a backend."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...
