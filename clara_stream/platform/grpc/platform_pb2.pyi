from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PipelineConfig(_message.Message):
    __slots__ = ("name", "app", "cpu_memory_mb", "gpu_memory_mb", "max_retries", "timeout_s", "overrides", "id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    CPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    app: str
    cpu_memory_mb: int
    gpu_memory_mb: int
    max_retries: int
    timeout_s: float
    overrides: _containers.RepeatedScalarFieldContainer[str]
    id: str
    def __init__(self, name: _Optional[str] = ..., app: _Optional[str] = ..., cpu_memory_mb: _Optional[int] = ..., gpu_memory_mb: _Optional[int] = ..., max_retries: _Optional[int] = ..., timeout_s: _Optional[float] = ..., overrides: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ...) -> None: ...

class PipelineInfo(_message.Message):
    __slots__ = ("name", "app", "cpu_memory_mb", "gpu_memory_mb", "max_retries", "timeout_s", "overrides", "id", "registered_at", "queued", "running")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    CPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    name: str
    app: str
    cpu_memory_mb: int
    gpu_memory_mb: int
    max_retries: int
    timeout_s: float
    overrides: _containers.RepeatedScalarFieldContainer[str]
    id: str
    registered_at: float
    queued: int
    running: int
    def __init__(self, name: _Optional[str] = ..., app: _Optional[str] = ..., cpu_memory_mb: _Optional[int] = ..., gpu_memory_mb: _Optional[int] = ..., max_retries: _Optional[int] = ..., timeout_s: _Optional[float] = ..., overrides: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ..., registered_at: _Optional[float] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ...) -> None: ...

class JobSubmit(_message.Message):
    __slots__ = ("pipeline", "input", "priority", "destinations", "start")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    input: str
    priority: int
    destinations: _containers.RepeatedScalarFieldContainer[str]
    start: bool
    def __init__(self, pipeline: _Optional[str] = ..., input: _Optional[str] = ..., priority: _Optional[int] = ..., destinations: _Optional[_Iterable[str]] = ..., start: _Optional[bool] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("id", "pipeline", "app", "priority", "status", "source", "created_at", "started_at", "finished_at", "duration_s", "attempts", "max_retries", "error", "exit_code", "input_dir", "output_dir", "destinations", "conflicts", "worker")
    ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    INPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    id: str
    pipeline: str
    app: str
    priority: int
    status: str
    source: str
    created_at: float
    started_at: float
    finished_at: float
    duration_s: float
    attempts: int
    max_retries: int
    error: str
    exit_code: int
    input_dir: str
    output_dir: str
    destinations: _containers.RepeatedScalarFieldContainer[str]
    conflicts: int
    worker: str
    def __init__(self, id: _Optional[str] = ..., pipeline: _Optional[str] = ..., app: _Optional[str] = ..., priority: _Optional[int] = ..., status: _Optional[str] = ..., source: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., duration_s: _Optional[float] = ..., attempts: _Optional[int] = ..., max_retries: _Optional[int] = ..., error: _Optional[str] = ..., exit_code: _Optional[int] = ..., input_dir: _Optional[str] = ..., output_dir: _Optional[str] = ..., destinations: _Optional[_Iterable[str]] = ..., conflicts: _Optional[int] = ..., worker: _Optional[str] = ...) -> None: ...

class ResultInfo(_message.Message):
    __slots__ = ("id", "job_id", "path", "size", "sop_uid", "sop_class", "exports")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SOP_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_CLASS_FIELD_NUMBER: _ClassVar[int]
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    id: int
    job_id: str
    path: str
    size: int
    sop_uid: str
    sop_class: str
    exports: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, id: _Optional[int] = ..., job_id: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., sop_uid: _Optional[str] = ..., sop_class: _Optional[str] = ..., exports: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class OperatorProgress(_message.Message):
    __slots__ = ("name", "type", "state", "messages", "time_ms", "p50_ms", "p95_ms", "error", "attempt", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    state: str
    messages: int
    time_ms: float
    p50_ms: float
    p95_ms: float
    error: str
    attempt: int
    updated_at: float
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., state: _Optional[str] = ..., messages: _Optional[int] = ..., time_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ..., updated_at: _Optional[float] = ...) -> None: ...

class PipelineUpload(_message.Message):
    __slots__ = ("pipeline_file", "name", "cpu_memory_mb", "gpu_memory_mb", "max_retries", "timeout_s", "overrides")
    PIPELINE_FILE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    pipeline_file: str
    name: str
    cpu_memory_mb: int
    gpu_memory_mb: int
    max_retries: int
    timeout_s: float
    overrides: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pipeline_file: _Optional[str] = ..., name: _Optional[str] = ..., cpu_memory_mb: _Optional[int] = ..., gpu_memory_mb: _Optional[int] = ..., max_retries: _Optional[int] = ..., timeout_s: _Optional[float] = ..., overrides: _Optional[_Iterable[str]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class IdRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class JobFilter(_message.Message):
    __slots__ = ("status", "pipeline", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    pipeline: str
    limit: int
    def __init__(self, status: _Optional[str] = ..., pipeline: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PipelineList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[PipelineInfo]
    def __init__(self, items: _Optional[_Iterable[_Union[PipelineInfo, _Mapping]]] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, items: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class ResultFilter(_message.Message):
    __slots__ = ("job_id", "limit")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    limit: int
    def __init__(self, job_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ResultList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ResultInfo]
    def __init__(self, items: _Optional[_Iterable[_Union[ResultInfo, _Mapping]]] = ...) -> None: ...

class PayloadChunk(_message.Message):
    __slots__ = ("path", "data", "sha256", "end")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    sha256: str
    end: bool
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., sha256: _Optional[str] = ..., end: _Optional[bool] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("id", "path", "files", "bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    path: str
    files: _containers.RepeatedScalarFieldContainer[str]
    bytes: int
    def __init__(self, id: _Optional[str] = ..., path: _Optional[str] = ..., files: _Optional[_Iterable[str]] = ..., bytes: _Optional[int] = ...) -> None: ...

class FileRequest(_message.Message):
    __slots__ = ("payload", "job", "path")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    payload: str
    job: str
    path: str
    def __init__(self, payload: _Optional[str] = ..., job: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class OperatorList(_message.Message):
    __slots__ = ("job_id", "status", "items")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    items: _containers.RepeatedCompositeFieldContainer[OperatorProgress]
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., items: _Optional[_Iterable[_Union[OperatorProgress, _Mapping]]] = ...) -> None: ...
