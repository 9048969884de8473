"""``clara-stream pipelines``: register, list, show, delete pipelines of a running service (by name or id).

Registering gives a pipeline an id (Clara Deploy: "once a pipeline is registered, it is represented
with an ID"); ``show``/``delete`` and AE titles' workflows accept the id or the name. Talks to the
service's REST API (``/pipelines``) with the bearer token from $CLARA_STREAM_API_TOKEN, as ``jobs``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from clara_stream.cli.jobs import ApiOpt, _call

pipelines_app = typer.Typer(help="Pipelines of a running `dicom serve`: create, list, show, delete (name or id).",
                            no_args_is_help=True)  # fmt: skip


@pipelines_app.command("create")
def create_cmd(name: str = typer.Argument(None, help="pipeline name (with --file: default the file's pipeline:)"),
               app: str = typer.Option(None, help="installed app name, or an app folder under an --app-root"),
               file: Path = typer.Option(None, "--file", help="a pipeline .yaml here, uploaded to the service"),
               cpu_memory_mb: int = typer.Option(512), gpu_memory_mb: int = typer.Option(0),
               max_retries: int = typer.Option(0), overrides: list[str] = typer.Option([], "--set"),
               api: str = ApiOpt) -> None:  # fmt: skip
    """Register (or update) a pipeline by app, or from an uploaded pipeline file; prints its id."""
    if (app is None) == (file is None):
        raise typer.BadParameter("expected exactly one of --app or --file", param_hint="--app/--file")
    body = {"cpuMemoryMb": cpu_memory_mb, "gpuMemoryMb": gpu_memory_mb, "maxRetries": max_retries,
            "overrides": list(overrides)}  # fmt: skip
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"expected a readable UTF-8 pipeline file; got {file} ({exc})",
                                     param_hint="--file") from None
        body = {**body, "pipelineFile": text, **({"name": name} if name else {})}
        typer.echo(_call(api, "POST", "/pipelines", json=body)["id"])
        return
    if name is None:
        raise typer.BadParameter("expected a NAME with --app", param_hint="NAME")
    body = {**body, "name": name, "app": app}
    typer.echo(_call(api, "PUT", f"/pipelines/{name}", json=body)["id"])


@pipelines_app.command("list")
def list_cmd(api: str = ApiOpt) -> None:
    """id, name, app, queued and running jobs."""
    for p in _call(api, "GET", "/pipelines"):
        typer.echo(f"{p['id']}  {p['name']:<24} {p['app']:<28} queued {p['queued']}  running {p['running']}")


@pipelines_app.command("show")
def show_cmd(name_or_id: str, api: str = ApiOpt) -> None:
    for key, value in _call(api, "GET", f"/pipelines/{name_or_id}").items():
        typer.echo(f"{key}: {value}")


@pipelines_app.command("delete")
def delete_cmd(name_or_id: str, api: str = ApiOpt) -> None:
    p = _call(api, "DELETE", f"/pipelines/{name_or_id}")
    typer.echo(f"deleted {p['name']} ({p['id']})")


def register(app: typer.Typer) -> None:
    """Add the ``pipelines`` group to the main CLI."""
    app.add_typer(pipelines_app, name="pipelines")
