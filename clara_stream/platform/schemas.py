"""Request/response payloads. Config payloads follow MONAI Informatics Gateway (camelCase).

Extensions beyond MIG are optional fields with defaults (``priority``, ``destinations`` on an AE;
the ``pipeline`` resource) so MIG clients' payloads are accepted unchanged.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUPING_STUDY = "0020,000D"
GROUPING_SERIES = "0020,000E"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
MIG_READ_ONLY = frozenset({"id", "dateTimeCreated", "dateTimeUpdated", "createdBy", "updatedBy"})

JobStatus = Literal["created", "queued", "running", "succeeded", "failed", "cancelled"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _ConfigModel(_Model):
    _mig = model_validator(mode="before")(classmethod(lambda cls, data: _drop_mig_read_only(data)))


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"expected 1-64 of A-Z a-z 0-9 _ . -; got {value!r}")
    return value


def check_ae_title(value: str) -> str:
    """An AE title by PS3.5 6.2: 1-16 characters of the default repertoire (ASCII 0x20-0x7E),
    no backslash, not only spaces; leading/trailing spaces are not significant. Also no ``/``
    and not ``.``/``..``, because the title names a folder of the store."""
    value = value.strip()
    bad = [c for c in value if not (0x20 <= ord(c) <= 0x7E) or c in "\\/"]
    if not value or len(value) > 16 or bad or value in (".", ".."):
        raise ValueError(
            "expected an AE title of 1-16 characters of the DICOM default repertoire (ASCII, no \\, "
            f"no control characters, no /); got {value!r}" + (f" (refused: {bad[0]!r})" if bad else "")
        )
    return value


def check_host(value: str) -> str:
    """An IP address, or a host name that resolves now (an unresolvable name could never match)."""
    value = value.strip()
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_RE.match(value):
        raise ValueError(f"expected an IP address or a host name; got {value!r}")
    try:
        socket.getaddrinfo(value, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"expected an IP address or a resolvable host name; got {value!r} ({exc})") from None
    return value


def _drop_mig_read_only(data):
    """MIG clients echo back the read-only fields MIG returns; accept and drop them."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in MIG_READ_ONLY}
    return data


class RetentionPolicy(_Model):
    """How long received instances are kept (per AE, or the service's global policy)."""

    max_age_days: float | None = Field(None, gt=0, description="delete instances received longer ago")
    max_total_gb: float | None = Field(None, gt=0, description="delete oldest first above this total")
    keep_until_exported: bool = Field(True, description="never delete before every result is sent")


class AeConfig(_ConfigModel):
    """A local AE title that receives instances and triggers pipelines (MIG ``/config/ae``)."""

    name: str
    ae_title: str
    grouping: Literal["0020,000D", "0020,000E"] = GROUPING_STUDY
    timeout: int = Field(5, ge=1, le=86400, description="idle seconds before a group becomes a job")
    workflows: list[str] = Field(default_factory=list, description="pipeline names to run per group")
    allowed_sop_classes: list[str] = Field(default_factory=list)
    ignored_sop_classes: list[str] = Field(default_factory=list)
    priority: int = Field(0, ge=-100, le=100, description="job priority (higher runs first)")
    destinations: list[str] = Field(default_factory=list, description="destination names for results")
    plugin_assemblies: list[str] = Field(
        default_factory=list, description="MIG input-data plug-ins; accepted and kept, not run (no .NET here)"
    )
    retention: RetentionPolicy | None = Field(None, description="overrides the global retention policy")

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _t = field_validator("ae_title")(classmethod(lambda cls, v: check_ae_title(v)))

    @field_validator("allowed_sop_classes", "ignored_sop_classes")
    @classmethod
    def _uids(cls, values: list[str]) -> list[str]:
        for v in values:
            if not _UID_RE.match(v):
                raise ValueError(f"expected SOP class UIDs (digits and dots); got {v!r}")
        return values


class SourceConfig(_ConfigModel):
    """A calling AE allowed to send (MIG ``/config/source``); unknown sources are refused."""

    name: str
    ae_title: str
    host_ip: str

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _t = field_validator("ae_title")(classmethod(lambda cls, v: check_ae_title(v)))
    _h = field_validator("host_ip")(classmethod(lambda cls, v: check_host(v)))


class DestinationConfig(_ConfigModel):
    """A C-STORE SCP that receives results (MIG ``/config/destination``)."""

    name: str
    ae_title: str
    host_ip: str
    port: int = Field(ge=1, le=65535)

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _t = field_validator("ae_title")(classmethod(lambda cls, v: check_ae_title(v)))
    _h = field_validator("host_ip")(classmethod(lambda cls, v: check_host(v)))


class PipelineConfig(_Model):
    """A registered pipeline: the app it runs and the resources one run needs."""

    name: str
    app: str = Field(description="app name (clara_stream.apps.<name>) or path to an app folder/file")
    cpu_memory_mb: int = Field(512, ge=0)
    gpu_memory_mb: int = Field(0, ge=0)
    max_retries: int = Field(0, ge=0, le=10)
    timeout_s: float | None = Field(None, gt=0)
    overrides: list[str] = Field(default_factory=list, description="--set key=value for every run")
    id: str | None = Field(None, description="assigned by the platform at first registration; read-only "
                           "(ignored on PUT); GET/DELETE /pipelines/{id} and AE workflows accept it")  # fmt: skip

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class PipelineUpload(_Model):
    """A pipeline created from an uploaded pipeline file (REST ``POST /pipelines``, gRPC ``CreatePipeline``)."""

    pipeline_file: str = Field(description="the YAML pipeline file itself (at most 256 KiB), not a path")
    name: str | None = Field(None, description="default: the file's pipeline: name")
    cpu_memory_mb: int = Field(512, ge=0)
    gpu_memory_mb: int = Field(0, ge=0)
    max_retries: int = Field(0, ge=0, le=10)
    timeout_s: float | None = Field(None, gt=0)
    overrides: list[str] = Field(default_factory=list, description="--set key=value for every run")

    _n = field_validator("name")(classmethod(lambda cls, v: v if v is None else _check_name(v)))


class PipelineInfo(PipelineConfig):
    """A pipeline as listed: its config plus registration time and queue depth."""

    registered_at: float
    queued: int
    running: int


class JobSubmit(_Model):
    """A job submitted over REST: run ``pipeline`` on a folder the server can read."""

    pipeline: str
    input: str = Field(description="folder on the server's file system")
    priority: int | None = Field(None, ge=-100, le=100)
    destinations: list[str] = Field(default_factory=list)
    start: bool | None = Field(None, description="false: 'created' until POST /jobs/{id}/start (default: queued)")


class JobInfo(_Model):
    """A job's state."""

    id: str
    pipeline: str
    app: str
    priority: int
    status: JobStatus
    source: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    attempts: int
    max_retries: int
    error: str | None
    exit_code: int | None
    input_dir: str
    output_dir: str
    destinations: list[str]
    conflicts: int = Field(0, description="instances of this job whose SOP Instance UID clashed (kept apart)")
    worker: str | None = Field(None, description="the worker that ran (or runs) the job's last attempt")


OperatorState = Literal["waiting", "running", "done", "failed"]


class OperatorProgress(_Model):
    """One operator of a job's latest attempt, as its app reports it (the console's execution view)."""

    name: str
    type: str = Field(description="the operator's class")
    state: OperatorState
    messages: int = Field(description="computes finished")
    time_ms: float = Field(description="total compute time")
    p50_ms: float | None = Field(description="median compute time per message")
    p95_ms: float | None
    error: str | None = Field(description="why it failed (state 'failed')")
    attempt: int
    updated_at: float


class ResultInfo(_Model):
    """One output file of a job and its export state per destination."""

    id: int
    job_id: str
    path: str
    size: int
    sop_uid: str | None
    sop_class: str | None
    exports: list[dict]


class EchoResult(_Model):
    """Outcome of a C-ECHO to a destination."""

    name: str
    success: bool
    status: int | None
    detail: str
