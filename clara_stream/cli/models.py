"""``clara-stream models``: the local model repository (Triton layout, versions, catalog)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from clara_stream.errors import UserError

models_app = typer.Typer(help="Model repository: add, list, show, remove, path.", no_args_is_help=True)
RepoOpt = typer.Option(None, "--repo", help="repository root [env CLARA_STREAM_MODELS]")


def _repo(root: Path | None):
    from clara_stream.models import ModelRepository

    return ModelRepository(root)


@models_app.command("add")
def add(
    name: str = typer.Argument(..., help="model name (Triton rules)"),
    file: Path = typer.Argument(..., help="model file: .onnx, .pt/.ts, .plan/.engine, .py"),
    version: int = typer.Option(None, help="version number (default: next)"),
    description: str = typer.Option(None, help="one line about the model"),
    config: Path = typer.Option(None, help="config.pbtxt to use instead of the generated one"),
    repo: Path = RepoOpt,
) -> None:
    """Copy FILE into the repository as a new version of NAME."""
    try:
        v = _repo(repo).add(name, file, version=version, description=description, config=config)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    typer.echo(f"added {name} v{v.version} ({v.size} bytes, sha256 {v.sha256[:12]})")


@models_app.command("list")
def list_cmd(repo: Path = RepoOpt) -> None:
    """One line per model: name, format, versions, description."""
    entries = _repo(repo).list()
    if not entries:
        typer.echo("no models")
    for e in entries:
        versions = ",".join(str(v.version) for v in e.versions)
        typer.echo(f"{e.name}\t{e.format}\tversions {versions}\t{e.description}")


@models_app.command("show")
def show(name: str, repo: Path = RepoOpt) -> None:
    """Every version of NAME with checksum, size, date and tensors."""
    try:
        e = _repo(repo).show(name)
    except LookupError as exc:
        raise UserError(str(exc)) from None
    typer.echo(f"{e.name} ({e.format}) {e.description}")
    for v in e.versions:
        when = dt.datetime.fromtimestamp(v.added_at, dt.timezone.utc).isoformat(timespec="seconds")
        typer.echo(f"  v{v.version}  {v.file}  {v.size} B  sha256 {v.sha256[:16]}  added {when}")
        for io in v.inputs:
            typer.echo(f"      in  {io['name']} {io['data_type']} {io['dims']}")
        for io in v.outputs:
            typer.echo(f"      out {io['name']} {io['data_type']} {io['dims']}")


@models_app.command("remove")
def remove(name: str, version: int = typer.Option(None, help="only this version"), repo: Path = RepoOpt) -> None:
    """Remove NAME (or one of its versions)."""
    try:
        removed = _repo(repo).remove(name, version)
    except LookupError as exc:
        raise UserError(str(exc)) from None
    typer.echo(f"removed {name} version(s) {', '.join(map(str, removed))}")


@models_app.command("path")
def path(name: str, version: int = typer.Option(None), verify: bool = False, repo: Path = RepoOpt) -> None:
    """Print the file path of NAME (latest version unless --version)."""
    try:
        typer.echo(str(_repo(repo).resolve(name, version, verify=verify)))
    except (LookupError, ValueError) as exc:
        raise UserError(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to the main CLI."""
    app.add_typer(models_app, name="models")
