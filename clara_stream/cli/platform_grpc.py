"""``clara-stream grpc``: the platform's gRPC API from the shell, through :class:`PlatformClient`.

register a pipeline from a local pipeline file, upload a payload folder, submit a job on it,
watch its states, download an output file (checked against the server's sha256). The token,
when the service has one, comes from $CLARA_STREAM_API_TOKEN (never argv), as for ``jobs`` over REST.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from clara_stream.errors import UserError

grpc_app = typer.Typer(help="The platform gRPC API of a running `dicom serve --grpc-port`.", no_args_is_help=True)
TargetOpt = typer.Option(os.environ.get("CLARA_STREAM_GRPC", "127.0.0.1:50051"), help="HOST:PORT of the gRPC API")


@contextmanager
def _client(target: str, call: str) -> Iterator:
    """A client whose RPC errors become one line: the call, the status code, the service's words."""
    import grpc

    from clara_stream.platform.client import PlatformClient

    try:
        with PlatformClient(target, token=os.environ.get("CLARA_STREAM_API_TOKEN") or None, timeout_s=600) as c:
            yield c
    except grpc.RpcError as exc:
        code = exc.code()
        hint = f" (is `dicom serve --grpc-port` running at {target}?)" if code == grpc.StatusCode.UNAVAILABLE else ""
        raise UserError(f"grpc: {call} answered {code.name}: {exc.details()}{hint}") from None


@grpc_app.command("upload")
def upload_cmd(folder: Path, target: str = TargetOpt) -> None:
    """Send every file under FOLDER; prints the payload's path (a job input)."""
    if not folder.is_dir():
        raise typer.BadParameter(f"expected a folder; got {folder}", param_hint="FOLDER")
    with _client(target, "UploadPayload") as c:
        payload = c.upload(folder)
    typer.echo(f"{payload.id}  {len(payload.files)} files  {payload.bytes} bytes  {payload.path}")


@grpc_app.command("create-pipeline")
def create_pipeline_cmd(file: Path, name: str = typer.Option(None, help="default: the file's pipeline: name"),
                        overrides: list[str] = typer.Option([], "--set"), target: str = TargetOpt) -> None:
    """Register a pipeline from FILE's content (checked by the service before it is stored); prints its id."""
    if not file.is_file():
        raise typer.BadParameter(f"expected a pipeline file; got {file}", param_hint="FILE")
    with _client(target, "CreatePipeline") as c:  # the service's own message: every problem with its line
        typer.echo(c.create_pipeline(file, name=name, overrides=list(overrides)).id)


@grpc_app.command("submit")
def submit_cmd(pipeline: str, input: str = typer.Option(..., help="a folder the service may read (a payload path)"),
               priority: int = typer.Option(None), target: str = TargetOpt) -> None:
    """Create a job; prints its id."""
    body = {"pipeline": pipeline, "input": input, **({"priority": priority} if priority is not None else {})}
    with _client(target, "CreateJob") as c:
        typer.echo(c.submit(body).id)


@grpc_app.command("watch")
def watch_cmd(job_id: str, target: str = TargetOpt) -> None:
    """Print each state change until the job ends; exit 1 unless it succeeded."""
    last = None
    with _client(target, "WatchJob") as c:
        for job in c.watch(job_id):
            last = job
            typer.echo(f"{job.status}" + (f"  {job.error}" if job.error else ""))
    if last is None or last.status != "succeeded":
        raise typer.Exit(1)


@grpc_app.command("download")
def download_cmd(job_id: str, path: str, out: Path = typer.Option(..., help="file to write"),
                 target: str = TargetOpt) -> None:
    """Fetch PATH of a job's outputs; its sha256 is checked."""
    with _client(target, "Download") as c:
        typer.echo(str(c.download(path, out, job=job_id)))


def register(app: typer.Typer) -> None:
    app.add_typer(grpc_app, name="grpc")
