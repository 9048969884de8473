"""Write ``platform.proto`` from the REST schemas, then its Python modules with grpcio-tools.

One source of truth: the pydantic models of :mod:`clara_stream.platform.schemas` (what REST
serves) define the messages; this module adds only the request wrappers and the service.
Usage: ``python -m clara_stream.platform.grpc.build [--out DIR]``. The generated
``platform.proto``, ``platform_pb2.py``, ``platform_pb2.pyi`` and ``platform_pb2_grpc.py`` are
committed; ``tests/platform/test_grpc_api.py`` regenerates them into a temporary folder and compares.
"""

from __future__ import annotations

import argparse
import enum
import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
PROTO = "platform.proto"
GENERATED = (PROTO, "platform_pb2.py", "platform_pb2.pyi", "platform_pb2_grpc.py")
_SCALARS = {str: "string", int: "int64", float: "double", bool: "bool"}

SERVICE = """
message Empty {}
message NameRequest { string name = 1; }
message IdRequest { string id = 1; }
message JobFilter { optional string status = 1; optional string pipeline = 2; optional int64 limit = 3; }
message PipelineList { repeated PipelineInfo items = 1; }
message JobList { repeated JobInfo items = 1; }
message ResultFilter { string job_id = 1; optional int64 limit = 2; }
message ResultList { repeated ResultInfo items = 1; }
// One piece of a file; the file's last piece carries the sha256 of the whole file. An upload ends
// with one chunk holding only end = true: a stream that stops without it was cut short (gRPC can
// hand a server a cancelled stream's end as a plain end), and nothing of it is registered.
message PayloadChunk { string path = 1; bytes data = 2; string sha256 = 3; bool end = 4; }
message Payload { string id = 1; string path = 2; repeated string files = 3; int64 bytes = 4; }
// A file of an uploaded payload or of a job's outputs (exactly one of payload, job).
message FileRequest { string payload = 1; string job = 2; string path = 3; }
// A job's operators (graph order) with the job's status when they were read.
message OperatorList { string job_id = 1; string status = 2; repeated OperatorProgress items = 3; }

// The REST operations, same semantics (clara_stream.platform.service); errors carry the REST message.
service Platform {
  rpc ListPipelines(Empty) returns (PipelineList);
  rpc GetPipeline(NameRequest) returns (PipelineConfig);
  rpc PutPipeline(PipelineConfig) returns (PipelineConfig);
  rpc CreatePipeline(PipelineUpload) returns (PipelineConfig);  // REST POST /pipelines: from the file's content
  rpc DeletePipeline(NameRequest) returns (PipelineConfig);
  rpc CreateJob(JobSubmit) returns (JobInfo);  // start = false: 'created' until StartJob
  rpc StartJob(IdRequest) returns (JobInfo);
  rpc GetJob(IdRequest) returns (JobInfo);
  rpc ListJobs(JobFilter) returns (JobList);
  rpc CancelJob(IdRequest) returns (JobInfo);
  rpc ListResults(ResultFilter) returns (ResultList);  // a job's output files and their export state
  rpc WatchJob(IdRequest) returns (stream JobInfo);  // every state change until the job ends
  rpc UploadPayload(stream PayloadChunk) returns (Payload);  // whole or nothing; Payload.path is a job input
  rpc Download(FileRequest) returns (stream PayloadChunk);
  rpc ListOperators(IdRequest) returns (OperatorList);  // REST GET /jobs/{id}/operators
  rpc WatchOperators(IdRequest) returns (stream OperatorList);  // on every change, until the job ends
}
"""


def _field_type(annotation: typing.Any) -> tuple[str, str]:
    """``(label, proto type)`` of a pydantic field annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"build: expected X | None; got {annotation}")
        return "optional ", _field_type(inner[0])[1]
    if typing.get_origin(annotation) is list:
        return "repeated ", _field_type(args[0])[1]
    if typing.get_origin(annotation) is typing.Literal and all(isinstance(a, str) for a in args):
        return "", "string"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "", "string"  # the enum's value, as REST sends it
    if annotation is dict or typing.get_origin(annotation) is dict:
        return "", "google.protobuf.Struct"  # free-form JSON object, as REST sends it
    if annotation in _SCALARS:
        return "", _SCALARS[annotation]
    raise TypeError(f"build: expected str, int, float, bool, an enum, list or optional; got {annotation}")


def message(model: type[BaseModel]) -> str:
    """A proto3 message with the model's fields, in order (numbers follow declaration order)."""
    lines = [f"message {model.__name__} {{"]
    for i, (name, info) in enumerate(model.model_fields.items(), start=1):
        label, kind = _field_type(info.annotation)
        lines.append(f"  {label}{kind} {name} = {i};")
    return "\n".join([*lines, "}"])


def proto_text() -> str:
    from clara_stream.platform.schemas import (
        JobInfo,
        JobSubmit,
        OperatorProgress,
        PipelineConfig,
        PipelineInfo,
        PipelineUpload,
        ResultInfo,
    )

    head = ('// Generated by clara_stream/platform/grpc/build.py from clara_stream/platform/schemas.py: do not edit.\n'
            'syntax = "proto3";\npackage clara_stream.platform;\nimport "google/protobuf/struct.proto";\n')
    body = "\n\n".join(message(m) for m in (PipelineConfig, PipelineInfo, JobSubmit, JobInfo, ResultInfo,
                                                      OperatorProgress, PipelineUpload))
    return f"{head}\n{body}\n{SERVICE}"


def build(out_dir: Path = HERE) -> list[Path]:
    """Write the proto and run protoc into ``out_dir``; return the generated files."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PROTO).write_text(proto_text())
    include = Path(protoc.__file__).resolve().parent / "_proto"  # grpcio-tools' well-known types
    rc = protoc.main(["grpc_tools.protoc", f"-I{out_dir}", f"-I{include}", f"--python_out={out_dir}",
                      f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", str(out_dir / PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc: expected exit status 0; got {rc} [{out_dir / PROTO}]")
    grpc_file = out_dir / "platform_pb2_grpc.py"
    text = re.sub(r"^import platform_pb2 as", "from clara_stream.platform.grpc import platform_pb2 as",
                  grpc_file.read_text(), flags=re.M)
    grpc_file.write_text(text)
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    for p in build(parser.parse_args(argv).out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
