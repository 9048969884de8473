"""Fixtures of the distributed-backend tests: one RabbitMQ node and one PostgreSQL cluster per
session (real servers from the Debian packages, 127.0.0.1, free ports), a fresh database and
empty queues per test, ``dicom serve --scheduler celery`` and ``clara-stream worker`` processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clara_stream.platform import devpeers

from .conftest import APPS, ServeProcess, stop_pid, wait_until

PG_BIN = devpeers.PG_BIN / "postgres"


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory, peer) -> Iterator[devpeers.RabbitNode]:
    peer(str(devpeers.RABBITMQ_SERVER), ["--help"], None)
    peer(str(devpeers.EPMD), ["-help"], None)
    node = devpeers.RabbitNode(tmp_path_factory.mktemp("rabbit")).start()
    yield node
    node.close()


@pytest.fixture(scope="session")
def pg_cluster(peer) -> Iterator[devpeers.PgCluster]:
    peer(str(PG_BIN), ["--version"], "PostgreSQL) 15")
    cluster = devpeers.PgCluster().init().start()
    yield cluster
    cluster.close()


def purge(url: str) -> None:
    """Empty the platform's queues (they are shared by the tests of one session)."""
    import kombu

    from clara_stream.platform.backends.celery import EXCHANGE, MAX_PRIORITY, QUEUES

    with kombu.Connection(url) as conn:
        ch = conn.channel()
        for q in QUEUES:
            kombu.Queue(q, EXCHANGE, routing_key=q, durable=True,
                        queue_arguments={"x-max-priority": MAX_PRIORITY})(ch).declare()
            ch.queue_purge(q)


def queue_state(url: str, name: str = "cpu") -> tuple[int, int]:
    """(messages ready, consumers) of one queue, asked of the broker."""
    import kombu

    with kombu.Connection(url) as conn:
        _, messages, consumers = conn.channel().queue_declare(name, passive=True)
    return messages, consumers


class Scale:
    """One test's distributed setup: database URL, broker URL, serve and worker processes."""

    def __init__(self, tmp: Path, rabbit: devpeers.RabbitNode, db_url: str) -> None:
        self.tmp, self.rabbit, self.db_url = tmp, rabbit, db_url
        self.workers: dict[str, subprocess.Popen] = {}
        self.serves: list[ServeProcess] = []

    def serve(self, seed: Path | None = None, data_dir: Path | None = None) -> ServeProcess:
        extra = ["--scheduler", "celery", "--broker", self.rabbit.url, "--database", self.db_url]
        sp = ServeProcess(data_dir or self.tmp / "serve", seed, extra)
        self.serves.append(sp)
        return sp.start()

    def worker(self, name: str, queues: str = "cpu", **opts) -> subprocess.Popen:
        """Start ``clara-stream worker`` with its own data dir; the tmp folder is the shared store."""
        data = self.tmp / f"node-{name}"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "clara_stream.cli", "worker", "--broker", self.rabbit.url,
               "--database", self.db_url, "--queues", queues, "--data-dir", str(data),
               "--shared-dir", str(self.tmp), "--app-root", str(APPS), "--name", name,
               "--poll-interval-s", "0.05"]
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        log = open(data / "worker.log", "ab")  # noqa: SIM115 - closed when the test ends
        self.workers[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        return self.workers[name]

    def wait_consumers(self, n: int, queue: str = "cpu") -> None:
        wait_until(lambda: queue_state(self.rabbit.url, queue)[1] == n, f"{n} worker(s) consuming {queue}", 90)

    def kill9(self, name: str) -> None:
        proc = self.workers[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.workers.values():
            stop_pid(proc, signal.SIGQUIT)  # Celery's cold shutdown; the app dies with its worker
        for sp in self.serves:
            sp.stop()


@pytest.fixture
def scale(tmp_path, rabbit, pg_cluster) -> Iterator[Scale]:
    purge(rabbit.url)
    url = pg_cluster.create_database(f"t{uuid.uuid4().hex[:12]}")
    setup = Scale(tmp_path, rabbit, url)
    yield setup
    setup.close()
