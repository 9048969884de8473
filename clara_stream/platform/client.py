"""Python client of the platform gRPC API (:mod:`clara_stream.platform.grpc.server`).

Returns the REST models (``PipelineConfig``, ``JobInfo``…), so callers see one schema whichever
transport they use; a refused call raises ``grpc.RpcError`` with the server's code and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format

from clara_stream.platform.grpc import platform_pb2 as pb
from clara_stream.platform.grpc import platform_pb2_grpc as pb_grpc
from clara_stream.platform.schemas import JobInfo, JobSubmit, PipelineConfig, PipelineInfo


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

    def delete_pipeline(self, name: str) -> PipelineConfig:
        return _model(self._call("DeletePipeline", pb.NameRequest(name=name)), PipelineConfig)

    def submit(self, item: JobSubmit | dict) -> JobInfo:
        return _model(self._call("CreateJob", _msg(item, pb.JobSubmit)), JobInfo)

    def job(self, job_id: str) -> JobInfo:
        return _model(self._call("GetJob", pb.IdRequest(id=job_id)), JobInfo)

    def jobs(self, *, status: str | None = None, pipeline: str | None = None,
             limit: int | None = None) -> list[JobInfo]:
        req = pb.JobFilter(**{k: v for k, v in (("status", status), ("pipeline", pipeline), ("limit", limit)) if v})
        return [_model(m, JobInfo) for m in self._call("ListJobs", req).items]

    def cancel(self, job_id: str) -> JobInfo:
        return _model(self._call("CancelJob", pb.IdRequest(id=job_id)), JobInfo)

    def watch(self, job_id: str, timeout_s: float = 600.0) -> Iterator[JobInfo]:
        """Each state change of the job, until it ends."""
        for m in self.stub.WatchJob(pb.IdRequest(id=job_id), metadata=self.metadata, timeout=timeout_s):
            yield _model(m, JobInfo)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
