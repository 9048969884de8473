"""The platform API over gRPC, beside REST: the same service calls, auth rule and error table.

Requests are validated by the same pydantic models REST uses (a bad field → INVALID_ARGUMENT
naming it); platform errors map to gRPC codes through one table (:data:`GRPC_CODES`). Beyond
loopback every call needs ``authorization: Bearer <token>`` (the service's ``api_token``);
the standard health and reflection services are on (health is open, like REST's /health).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import BaseModel, ValidationError

from clara_stream.loopback import is_loopback
from clara_stream.platform import execution
from clara_stream.platform.grpc import payloads
from clara_stream.platform.grpc import platform_pb2 as pb
from clara_stream.platform.grpc import platform_pb2_grpc as pb_grpc
from clara_stream.platform.pipeline_uploads import check_put, create_pipeline
from clara_stream.platform.schemas import JobSubmit, PipelineConfig, PipelineUpload
from clara_stream.platform.status import ConflictError, InvalidRequestError, NotFoundError, UnauthorizedError

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Platform"].full_name
GRPC_CODES: dict[type[BaseException], grpc.StatusCode] = {
    UnauthorizedError: grpc.StatusCode.UNAUTHENTICATED,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    ConflictError: grpc.StatusCode.ALREADY_EXISTS,
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    ValueError: grpc.StatusCode.INVALID_ARGUMENT,
}
TERMINAL = ("succeeded", "failed", "cancelled")
WATCH_POLL_S = 0.1


def _code(exc: BaseException) -> grpc.StatusCode | None:
    return next((code for cls, code in GRPC_CODES.items() if isinstance(exc, cls)), None)


def to_model(msg: Any, model: type[BaseModel]) -> Any:
    """A request message as the REST model; raises InvalidRequestError naming the bad field."""
    data = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or model.__name__
        raise InvalidRequestError(f"{field}: expected {first['msg'].lower()}; got {first.get('input')!r}") from None


def to_message(item: BaseModel | dict, cls: type) -> Any:
    data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
    return json_format.ParseDict({k: v for k, v in data.items() if v is not None}, cls(), ignore_unknown_fields=True)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map platform errors to gRPC codes with the REST message (one line)."""
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped or re-raised
            code = _code(exc)
            if code is None:
                raise
            context.abort(code, str(exc))
    return call


class PlatformServicer(pb_grpc.PlatformServicer):
    def __init__(self, service: Any, payload_root: Path) -> None:
        self.svc = service
        self.payload_root = payload_root

    @_guard
    def ListPipelines(self, request: Any, context: Any) -> Any:
        return pb.PipelineList(items=[to_message(p, pb.PipelineInfo) for p in self.svc.config.pipelines()])

    @_guard
    def GetPipeline(self, request: Any, context: Any) -> Any:
        return to_message(self.svc.config.pipeline(request.name), pb.PipelineConfig)

    @_guard
    def PutPipeline(self, request: Any, context: Any) -> Any:
        item = to_model(request, PipelineConfig)
        check_put(self.svc, item)
        return to_message(self.svc.config.put_pipeline(item), pb.PipelineConfig)

    @_guard
    def CreatePipeline(self, request: Any, context: Any) -> Any:
        return to_message(create_pipeline(self.svc, to_model(request, PipelineUpload)), pb.PipelineConfig)

    @_guard
    def DeletePipeline(self, request: Any, context: Any) -> Any:
        return to_message(self.svc.config.delete_pipeline(request.name), pb.PipelineConfig)

    @_guard
    def CreateJob(self, request: Any, context: Any) -> Any:
        return to_message(self.svc.submit(to_model(request, JobSubmit)), pb.JobInfo)

    @_guard
    def StartJob(self, request: Any, context: Any) -> Any:
        info = self.svc.queue.start(request.id)
        self.svc.scheduler.wake()
        return to_message(info, pb.JobInfo)

    @_guard
    def GetJob(self, request: Any, context: Any) -> Any:
        return to_message(self.svc.queue.get(request.id), pb.JobInfo)

    @_guard
    def ListJobs(self, request: Any, context: Any) -> Any:
        limit = request.limit if request.HasField("limit") else 200
        if not 1 <= limit <= 10000:
            raise InvalidRequestError(f"limit: expected 1 <= limit <= 10000; got {limit}")
        status = request.status if request.HasField("status") else None
        if status is not None and status not in ("created", "queued", "running", *TERMINAL):
            raise InvalidRequestError(f"status: expected one of created, queued, running, {', '.join(TERMINAL)}; "
                                      f"got {status!r}")
        jobs = self.svc.queue.list(status=status, pipeline=request.pipeline or None, limit=limit)
        return pb.JobList(items=[to_message(j, pb.JobInfo) for j in jobs])

    @_guard
    def ListResults(self, request: Any, context: Any) -> Any:
        limit = request.limit if request.HasField("limit") else 500
        if not 1 <= limit <= 100000:
            raise InvalidRequestError(f"limit: expected 1 <= limit <= 100000; got {limit}")
        if request.job_id:
            self.svc.queue.row(request.job_id)  # NOT_FOUND for an unknown job, as REST's 404
        rows = self.svc.results.results(job_id=request.job_id or None, limit=limit)
        return pb.ResultList(items=[to_message(r, pb.ResultInfo) for r in rows])

    @_guard
    def CancelJob(self, request: Any, context: Any) -> Any:
        return to_message(self.svc.cancel(request.id), pb.JobInfo)

    @_guard
    def UploadPayload(self, request_iterator: Any, context: Any) -> Any:
        pid, files, size = payloads.receive(request_iterator, self.payload_root)
        return pb.Payload(id=pid, path=str(self.payload_root / pid), files=files, bytes=size)

    def Download(self, request: Any, context: Any) -> Iterator[Any]:
        try:
            if bool(request.payload) == bool(request.job):
                raise InvalidRequestError("payload: expected exactly one of payload or job; got "
                                          + ("both" if request.payload else "neither"))
            if request.payload:
                root = self.payload_root / payloads.safe_relative(request.payload, "payload")
            else:
                root = Path(self.svc.queue.get(request.job).output_dir)
            file = payloads.confined(root, request.path)
        except (InvalidRequestError, NotFoundError) as exc:
            context.abort(_code(exc), str(exc))
        for data, digest in payloads.send(file):
            yield pb.PayloadChunk(path=request.path, data=data, sha256=digest)

    def WatchJob(self, request: Any, context: Any) -> Iterator[Any]:
        """Each change of the job's status (and attempt), first its current state, until it ends."""
        last = None
        while context.is_active():
            try:
                job = self.svc.queue.get(request.id)
            except NotFoundError as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            key = (job.status, job.attempts)
            if key != last:
                last = key
                yield to_message(job, pb.JobInfo)
            if job.status in TERMINAL:
                return
            threading.Event().wait(WATCH_POLL_S)


    def _operators(self, job_id: str) -> Any:
        status = self.svc.queue.get(job_id).status  # read first: rows stored before the end state are seen
        items = [to_message(o, pb.OperatorProgress) for o in execution.operators(self.svc.db, job_id)]
        return pb.OperatorList(job_id=job_id, status=status, items=items)

    @_guard
    def ListOperators(self, request: Any, context: Any) -> Any:
        return self._operators(request.id)

    def WatchOperators(self, request: Any, context: Any) -> Iterator[Any]:
        """The job's operators, first as they are, then on every change (state, messages, time,
        error, job status), until the job has ended."""
        last = None
        while context.is_active():
            try:
                msg = self._operators(request.id)
            except NotFoundError as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            key = msg.SerializeToString(deterministic=True)
            if key != last:
                last = key
                yield msg
            if msg.status in TERMINAL:
                return
            threading.Event().wait(WATCH_POLL_S)


#: server-streaming methods (refused with a streaming handler)
_STREAMS = ("/WatchJob", "/WatchOperators", "/Download")


class _TokenInterceptor(grpc.ServerInterceptor):
    """The REST rule: with a token configured every Platform call must carry it."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "gRPC: expected metadata 'authorization: Bearer <token>'; got none or a wrong token")
        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not details.method.startswith(f"/{SERVICE_NAME}/"):
            return continuation(details)  # health and reflection stay open
        given = dict(details.invocation_metadata).get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), self.token):
            return continuation(details)
        return self._deny_stream if details.method.endswith(_STREAMS) else self._deny




def serve(service: Any, host: str = "127.0.0.1", port: int = 0, workers: int = 8) -> tuple[grpc.Server, int]:
    """Start the gRPC API for a PlatformService; returns the server and its bound port.

    Raises
    ------
    InvalidRequestError
        ``host`` beyond loopback while the service has no API token.
    """
    token = service.api_token.get_secret_value() if service.api_token is not None else None
    if token is None and not is_loopback(host):
        raise InvalidRequestError(f"grpc_host: expected loopback without an API token; got {host!r}")
    interceptors = [_TokenInterceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=interceptors)
    payload_root = Path(service.settings.data_dir) / "payloads"
    payload_root.mkdir(parents=True, exist_ok=True)  # one of the service's input_roots: a payload is a job input
    pb_grpc.add_PlatformServicer_to_server(PlatformServicer(service, payload_root), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    checker.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound
