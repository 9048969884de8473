"""Python client of the platform gRPC API (:mod:`clara_stream.platform.grpc.server`).

Returns the REST models (``PipelineConfig``, ``JobInfo``…), so callers see one schema whichever
transport they use; a refused call raises ``grpc.RpcError`` with the server's code and message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from clara_stream.platform.grpc import platform_pb2 as pb
from clara_stream.platform.grpc import platform_pb2_grpc as pb_grpc
from clara_stream.platform.grpc.payloads import send
from clara_stream.platform.schemas import JobInfo, JobSubmit, OperatorProgress, PipelineConfig, PipelineInfo, ResultInfo


def _model(msg: Any, model: type) -> Any:
    data = json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for name in model.model_fields:  # an unset ``optional`` field is REST's null
        data.setdefault(name, None)
    return model.model_validate(data)


def _msg(item: Any, cls: type) -> Any:
    data = item.model_dump(mode="json", exclude_none=True) if hasattr(item, "model_dump") else dict(item)
    return json_format.ParseDict(data, cls())


class PlatformClient:
    """``PlatformClient("127.0.0.1:50051", token=None)``; usable as a context manager."""

    def __init__(self, target: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.PlatformStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout_s = timeout_s

    def _call(self, name: str, request: Any) -> Any:
        return getattr(self.stub, name)(request, metadata=self.metadata, timeout=self.timeout_s)

    def pipelines(self) -> list[PipelineInfo]:
        return [_model(m, PipelineInfo) for m in self._call("ListPipelines", pb.Empty()).items]

    def pipeline(self, name: str) -> PipelineConfig:
        return _model(self._call("GetPipeline", pb.NameRequest(name=name)), PipelineConfig)

    def put_pipeline(self, item: PipelineConfig | dict) -> PipelineConfig:
        return _model(self._call("PutPipeline", _msg(item, pb.PipelineConfig)), PipelineConfig)

    def create_pipeline(self, pipeline_file: str | bytes | Path, *, name: str | None = None,
                        **options: Any) -> PipelineConfig:
        """Register a pipeline from a pipeline file's content (a ``Path`` is read here and sent, not named).

        ``options``: ``cpu_memory_mb``, ``gpu_memory_mb``, ``max_retries``, ``timeout_s``, ``overrides``.
        """
        if isinstance(pipeline_file, Path):
            pipeline_file = pipeline_file.read_bytes()
        text = pipeline_file.decode() if isinstance(pipeline_file, bytes) else pipeline_file
        req = pb.PipelineUpload(pipeline_file=text, **({"name": name} if name else {}), **options)
        return _model(self._call("CreatePipeline", req), PipelineConfig)

    def delete_pipeline(self, name: str) -> PipelineConfig:
        return _model(self._call("DeletePipeline", pb.NameRequest(name=name)), PipelineConfig)

    def submit(self, item: JobSubmit | dict) -> JobInfo:
        return _model(self._call("CreateJob", _msg(item, pb.JobSubmit)), JobInfo)

    def start(self, job_id: str) -> JobInfo:
        """Queue a job created with ``start=False``."""
        return _model(self._call("StartJob", pb.IdRequest(id=job_id)), JobInfo)

    def job(self, job_id: str) -> JobInfo:
        return _model(self._call("GetJob", pb.IdRequest(id=job_id)), JobInfo)

    def jobs(self, *, status: str | None = None, pipeline: str | None = None,
             limit: int | None = None) -> list[JobInfo]:
        req = pb.JobFilter(**{k: v for k, v in (("status", status), ("pipeline", pipeline), ("limit", limit)) if v})
        return [_model(m, JobInfo) for m in self._call("ListJobs", req).items]

    def results(self, job_id: str = "", limit: int | None = None) -> list[ResultInfo]:
        req = pb.ResultFilter(job_id=job_id, **({"limit": limit} if limit else {}))
        return [_model(m, ResultInfo) for m in self._call("ListResults", req).items]

    def cancel(self, job_id: str) -> JobInfo:
        return _model(self._call("CancelJob", pb.IdRequest(id=job_id)), JobInfo)

    def watch(self, job_id: str, timeout_s: float = 600.0) -> Iterator[JobInfo]:
        """Each state change of the job, until it ends."""
        for m in self.stub.WatchJob(pb.IdRequest(id=job_id), metadata=self.metadata, timeout=timeout_s):
            yield _model(m, JobInfo)

    def operators(self, job_id: str) -> tuple[str, list[OperatorProgress]]:
        """(job status, the job's operators) as REST's ``GET /jobs/{id}/operators``."""
        m = self._call("ListOperators", pb.IdRequest(id=job_id))
        return m.status, [_model(o, OperatorProgress) for o in m.items]

    def watch_operators(self, job_id: str, timeout_s: float = 600.0) -> Iterator[tuple[str, list[OperatorProgress]]]:
        """(job status, operators) now and on every change, until the job ends."""
        for m in self.stub.WatchOperators(pb.IdRequest(id=job_id), metadata=self.metadata, timeout=timeout_s):
            yield m.status, [_model(o, OperatorProgress) for o in m.items]

    def upload(self, folder: str | Path) -> Any:
        """Send every file under ``folder`` (sha256 on each file's last chunk, then the end chunk that
        says the upload is whole); returns the ``Payload``."""
        root = Path(folder)
        files = sorted(p for p in root.rglob("*") if p.is_file())

        def chunks() -> Iterator[Any]:
            for f in files:
                for data, digest in send(f):
                    yield pb.PayloadChunk(path=f.relative_to(root).as_posix(), data=data, sha256=digest)
            yield pb.PayloadChunk(end=True)
        return self.stub.UploadPayload(chunks(), metadata=self.metadata, timeout=self.timeout_s)

    def download(self, path: str, dest: str | Path, *, job: str = "", payload: str = "") -> Path:
        """Fetch one file of a job's outputs (or of a payload) to ``dest``; its sha256 is checked.

        Raises
        ------
        ValueError
            The received bytes do not match the server's checksum (``dest`` is removed).
        """
        out = Path(dest)
        digest, expected = hashlib.sha256(), ""
        with out.open("wb") as fh:
            for chunk in self.stub.Download(pb.FileRequest(job=job, payload=payload, path=path),
                                            metadata=self.metadata, timeout=self.timeout_s):
                fh.write(chunk.data)
                digest.update(chunk.data)
                expected = chunk.sha256 or expected
        if digest.hexdigest() != expected:
            out.unlink()
            raise ValueError(f"download: expected sha256 {expected or '(none sent)'}; got {digest.hexdigest()} "
                             f"[{path}]")
        return out

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
