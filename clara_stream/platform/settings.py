"""Service settings (pydantic-settings): environment ``CLARA_STREAM_*`` or CLI options.

Kept apart from app graph YAML; validated once at start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


class PlatformSettings(BaseSettings):
    """Settings of ``clara-stream dicom serve``.

    Parameters
    ----------
    data_dir : folder holding ``state.sqlite``, the instance store, job folders and logs
        (default ``$XDG_DATA_HOME/clara-stream/platform``, i.e. ~/.local/share/...).
    host : address the DICOM listener binds (127.0.0.1 by default; never 0.0.0.0 unless asked).
    http_host : address the REST API and console bind, set apart from ``host`` (127.0.0.1 by
        default). Beyond loopback an API token is required: ``api_token``, or one generated on
        first start into ``<data_dir>/api-token`` (mode 0600) and printed once.
    dicom_port : C-STORE/C-ECHO port (0 picks a free one; the bound port is logged).
    http_port : REST/console port.
    ae_title : the SCP's own AE title (answers C-ECHO for it and every configured AE).
    max_associations : concurrent associations admitted, exactly; more are rejected (transient,
        local limit exceeded).
    acceptors : SCP processes sharing the DICOM port (SO_REUSEPORT); more than one lets
        concurrent associations use more than one core (pynetdicom is CPU-bound per process).
    receive_path : ``fast`` (our own upper-layer loop, :mod:`clara_stream.platform.fast_scp`) or
        ``pynetdicom`` (pynetdicom's AE with its reactor threads); same checks, store and statuses.
    fast_poll : shorten pynetdicom's 1 ms reactor sleeps while C-STOREs flow
        (:mod:`clara_stream.platform.pacing`); idle associations keep 1 ms (pynetdicom path).
    acse_timeout_s, dimse_timeout_s, network_timeout_s : pynetdicom's ACSE, DIMSE and idle
        network timeouts; a silent peer is cut after them and never blocks others.
    tls_handshake_timeout_s : a TLS client must finish its handshake within this; the handshake
        runs on the association's own thread, never on the accept thread.
    min_free_mb, min_free_percent : low-space watermark of the store's file system. When free
        space falls below the smaller of the two, new associations are refused (transient,
        temporary congestion) and C-STOREs answer 0xA700 (out of resources) before the disk fills.
    keep_aborted : keep instances of an aborted association (False drops them, like MIG).
    drain_timeout_s : on stop (SIGTERM: a reboot, an upgrade) associations in progress get this
        long to finish while new ones are refused (A-ASSOCIATE-RJ transient); then they are cut.
        Keep it under the pod's ``terminationGracePeriodSeconds`` (30 s by default).
    fsync : fsync every instance before answering success (turn off only for benchmarks).
    tls_cert, tls_key, tls_ca : PEM files; cert+key turn TLS on, ca also requires client certs.
    max_concurrent_jobs : jobs running at once.
    cpu_memory_budget_mb, gpu_memory_budget_mb : what running jobs' declared needs may add up to.
    poll_interval_s : how often the grouper, scheduler and outbox look for work.
    export_max_attempts, export_backoff_s : C-STORE SCU retries (exponential backoff).
    worker_python : interpreter that runs ``-m clara_stream.cli run`` for each job.
    models_dir : model repository root shared with ``clara-stream models``.
    api_token : bearer token for every REST route but /health, /console and the docs
        (``Authorization: Bearer <token>``; the console takes it from ``/console#token=…``).
    app_roots : folders whose apps a pipeline may name by path; otherwise only installed apps
        (``clara_stream.apps.<name>``) may run.
    input_roots : folders a REST job's input may lie under, besides the instance store.
    allow_pipeline_commands : accept ``type: command`` services in uploaded pipeline files (default
        off: an API caller could run any program); see :mod:`clara_stream.platform.pipeline_uploads`.
    upload_allowed_hosts : hosts beside loopback that addresses in uploaded pipeline files may name
        (a camera, a Triton server, a stream receiver; ``CLARA_STREAM_UPLOAD_ALLOWED_HOSTS='["cam1"]'``);
        empty by default: an uploaded pipeline reaches loopback only (:mod:`clara_stream.platform.upload_rules`).
    retention_max_age_days, retention_max_total_gb, retention_keep_until_exported : the global
        retention policy (per-AE ``retention`` overrides it); see :mod:`clara_stream.platform.retention`.
    retention_interval_s : how often the service applies it (0: never; ``clara-stream dicom gc``).
    scheduler : ``embedded`` (SQLite + worker subprocesses here) or ``celery`` (jobs published to
        ``broker_url``, run by ``clara-stream worker`` processes; state in ``database_url``).
    broker_url : ``amqp://user:pass@host:port/vhost`` of RabbitMQ (celery scheduler).
    database_url : ``postgresql://…`` shared by the service and its workers (celery scheduler);
        unset: ``<data_dir>/state.sqlite``.
    """

    model_config = SettingsConfigDict(env_prefix="CLARA_STREAM_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: _data_home() / "clara-stream" / "platform")
    host: str = "127.0.0.1"
    http_host: str = "127.0.0.1"
    dicom_port: int = Field(104, ge=0, le=65535)
    http_port: int = Field(8000, ge=0, le=65535)
    ae_title: str = "CLARASTREAM"
    max_associations: int = Field(32, ge=1)
    acceptors: int = Field(1, ge=1, le=64)
    receive_path: Literal["fast", "pynetdicom"] = "fast"
    fast_poll: bool = True
    acse_timeout_s: float = Field(30.0, gt=0)
    dimse_timeout_s: float = Field(120.0, gt=0)
    network_timeout_s: float = Field(120.0, gt=0)
    tls_handshake_timeout_s: float = Field(10.0, gt=0)
    min_free_mb: int = Field(2048, ge=0)
    min_free_percent: float = Field(5.0, ge=0, le=100)
    keep_aborted: bool = False
    drain_timeout_s: float = Field(20.0, ge=0)
    fsync: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    max_concurrent_jobs: int = Field(2, ge=1)
    cpu_memory_budget_mb: int = Field(16384, ge=0)
    gpu_memory_budget_mb: int = Field(0, ge=0)
    poll_interval_s: float = Field(0.2, gt=0)
    export_max_attempts: int = Field(5, ge=1)
    export_backoff_s: float = Field(1.0, ge=0)
    worker_python: str = sys.executable
    models_dir: Path | None = None
    api_token: SecretStr | None = None
    app_roots: list[Path] = Field(default_factory=list)
    input_roots: list[Path] = Field(default_factory=list)
    allow_pipeline_commands: bool = False
    upload_allowed_hosts: list[str] = Field(default_factory=list)
    retention_max_age_days: float | None = Field(None, gt=0)
    retention_max_total_gb: float | None = Field(None, gt=0)
    retention_keep_until_exported: bool = True
    retention_interval_s: float = Field(3600.0, ge=0)
    scheduler: Literal["embedded", "celery"] = "embedded"
    broker_url: SecretStr | None = None
    database_url: SecretStr | None = None

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        from clara_stream.platform.schemas import check_ae_title

        return check_ae_title(value)

    @model_validator(mode="after")
    def _check_scheduler(self) -> PlatformSettings:
        db = self.database_url.get_secret_value() if self.database_url else ""
        if self.scheduler == "celery" and not (self.broker_url and db.startswith(("postgresql://", "postgres://"))):
            raise ValueError(
                "scheduler: expected --broker amqp://… and --database postgresql://… with the celery scheduler; "
                f"got broker {'set' if self.broker_url else 'unset'}, database {db.split('://')[0] or 'unset'}"
            )
        return self

    @property
    def tls_enabled(self) -> bool:
        """True when a certificate and key are configured."""
        return self.tls_cert is not None and self.tls_key is not None
