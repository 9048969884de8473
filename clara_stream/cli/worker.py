"""``clara-stream worker``: run platform jobs delivered by RabbitMQ (the celery backend)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import typer

from clara_stream.errors import UserError


def worker(
    broker: str = typer.Option(None, help="RabbitMQ URL amqp://… [env CLARA_STREAM_BROKER_URL]"),
    database: str = typer.Option(None, help="PostgreSQL URL shared with the service [env CLARA_STREAM_DATABASE_URL]"),
    queues: str = typer.Option("cpu", help="queues to take jobs from, comma-separated: gpu, cpu"),
    data_dir: Path = typer.Option(..., help="this worker's own folder (run logs)"),
    shared_dir: list[Path] = typer.Option(
        ..., help="where job inputs/outputs lie: the service's data folder as mounted here (repeatable)"
    ),
    app_root: list[Path] = typer.Option(None, help="folder whose apps pipelines may name by path (repeatable)"),
    name: str = typer.Option(None, help="worker name shown per job (default <host>-<pid>)"),
    cpu_memory_mb: int = typer.Option(16384, min=0, help="largest CPU memory a job may declare here"),
    gpu_memory_mb: int = typer.Option(0, min=0, help="largest GPU memory a job may declare here"),
    poll_interval_s: float = typer.Option(0.2, min=0.01, help="how often a running job's cancel flag is read"),
    log_level: str = typer.Option("info", help="debug, info, warning"),
) -> None:
    """Take one job at a time from --queues and run it as the embedded scheduler does.

    Each job runs 'python -m clara_stream.cli run APP' in its own process group, with the pipeline's timeout,
    cancel (polled from the database) and retries; status and the worker's name go to the database.

    One process = one slot: run N workers for N concurrent jobs. A job larger than this worker's
    --cpu-memory-mb/--gpu-memory-mb is handed back to the broker for another worker.
    """
    from pydantic import ValidationError

    from clara_stream.platform.backends.celery import QUEUES, make_celery
    from clara_stream.platform.backends.worker import JobRunner, WorkerConfig, register_task
    from clara_stream.platform.db import DB_ERRORS, open_database
    from clara_stream.platform.settings import PlatformSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    broker = broker or os.environ.get("CLARA_STREAM_BROKER_URL")
    database = database or os.environ.get("CLARA_STREAM_DATABASE_URL")
    if not broker or not broker.startswith("amqp://"):
        raise UserError(f"worker: expected --broker amqp://…; got {broker.split('://')[0] if broker else 'none'}")
    if not database or not database.startswith(("postgresql://", "postgres://")):
        raise UserError("worker: expected --database postgresql://… (the service's database)")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if not wanted or set(wanted) - set(QUEUES):
        raise UserError(f"worker: expected --queues from {', '.join(QUEUES)}; got {queues!r}")
    roots = [p.resolve() for p in shared_dir]
    missing = [str(p) for p in roots if not p.is_dir()]
    if missing:
        raise UserError(f"worker: expected existing --shared-dir folders; got missing {missing}")
    try:
        settings = PlatformSettings(app_roots=app_root or [], data_dir=data_dir)
        db = open_database(database)
    except (ValidationError, *DB_ERRORS) as exc:
        raise UserError(f"worker: {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = WorkerConfig(
        data_dir=data_dir,
        shared_roots=roots,
        name=name or f"{socket.gethostname()}-{os.getpid()}",
        cpu_memory_mb=cpu_memory_mb,
        gpu_memory_mb=gpu_memory_mb,
        poll_interval_s=poll_interval_s,
        settings=settings,
    )
    app = make_celery(broker)
    register_task(app, JobRunner(db, cfg))
    app.Worker(
        hostname=f"{cfg.name}@clara",
        queues=wanted,
        pool="solo",
        concurrency=1,
        loglevel=log_level.upper(),
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        optimization="fair",
    ).start()


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command."""
    app.command("worker")(worker)
