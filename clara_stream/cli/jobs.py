"""``clara-stream jobs``: list, show, submit, start, cancel, retry jobs of a running service over REST,
and show a job's per-operator progress."""

from __future__ import annotations

import datetime as dt
import os

import typer

from clara_stream.errors import UserError

# The bearer token, when the service has one, comes from $CLARA_STREAM_API_TOKEN (never argv).
jobs_app = typer.Typer(
    help=(
        "Jobs of a running `dicom serve`: list, show, submit, start, cancel, retry, operators, log. "
        "The service's bearer token "
        "(required when it listens beyond loopback) is read from $CLARA_STREAM_API_TOKEN, never argv; "
        "a job's input must lie under the service's store or an --input-root."
    ),
    no_args_is_help=True,
)
ApiOpt = typer.Option(os.environ.get("CLARA_STREAM_API", "http://127.0.0.1:8000"), help="service URL")


def _call(api: str, method: str, path: str, **kwargs) -> dict | list | str:
    import httpx

    try:
        token = os.environ.get("CLARA_STREAM_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.request(method, api.rstrip("/") + path, timeout=30.0, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise UserError(
            f"jobs: expected the service at {api}; got {exc}", hint="start `clara-stream dicom serve`"
        ) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise UserError(f"jobs: {method} {path} answered {r.status_code}: {detail}")
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else "-"


def _line(j: dict) -> str:
    dur = f"{j['durationS']:.1f}s" if j["durationS"] is not None else "-"
    start = _when(j["startedAt"])
    return f"{j['id']}  {j['status']:<9}  p{j['priority']:<4} {j['pipeline']:<20} start {start}  {dur}"


@jobs_app.command("list")
def list_cmd(status: str = typer.Option(None), pipeline: str = typer.Option(None), api: str = ApiOpt) -> None:
    """Newest first."""
    params = {k: v for k, v in {"status": status, "pipeline": pipeline}.items() if v}
    for j in _call(api, "GET", "/jobs", params=params):
        typer.echo(_line(j))


@jobs_app.command("show")
def show(job_id: str, api: str = ApiOpt) -> None:
    j = _call(api, "GET", f"/jobs/{job_id}")
    for k, v in j.items():
        typer.echo(f"{k}: {v}")


@jobs_app.command("submit")
def submit(
    pipeline: str,
    input: str,
    priority: int = typer.Option(None),
    destination: list[str] = typer.Option([], help="destination name (repeatable)"),
    start: bool = typer.Option(True, "--start/--no-start", help="--no-start: created, queued by `jobs start`"),
    api: str = ApiOpt,
) -> None:
    """Queue PIPELINE on INPUT (a folder the server can read); prints the job id."""
    body = {
        "pipeline": pipeline,
        "input": os.path.abspath(input),
        "priority": priority,
        "destinations": destination,
        "start": start,
    }
    typer.echo(_call(api, "POST", "/jobs", json=body)["id"])


@jobs_app.command("cancel")
def cancel(job_id: str, api: str = ApiOpt) -> None:
    typer.echo(_line(_call(api, "POST", f"/jobs/{job_id}/cancel")))


@jobs_app.command("start")
def start_cmd(job_id: str, api: str = ApiOpt) -> None:
    """Queue a job submitted with --no-start."""
    typer.echo(_line(_call(api, "POST", f"/jobs/{job_id}/start")))


@jobs_app.command("retry")
def retry(job_id: str, api: str = ApiOpt) -> None:
    """Run a finished job again (same pipeline, input, priority, destinations); prints the new job."""
    typer.echo(_line(_call(api, "POST", f"/jobs/{job_id}/retry")))


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


@jobs_app.command("operators")
def operators(job_id: str, api: str = ApiOpt) -> None:
    """Each operator of the job's latest attempt: state, messages, total / p50 / p95 ms, error."""
    for o in _call(api, "GET", f"/jobs/{job_id}/operators"):
        line = (f"{o['name']:<20} {o['state']:<8} {o['messages']:>8} msg  total {_ms(o['timeMs'])} ms  "
                f"p50 {_ms(o['p50Ms'])}  p95 {_ms(o['p95Ms'])}")
        typer.echo(line + (f"  {o['error']}" if o["error"] else ""))


@jobs_app.command("log")
def log(job_id: str, api: str = ApiOpt) -> None:
    typer.echo(_call(api, "GET", f"/jobs/{job_id}/log"))


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` group to the main CLI."""
    app.add_typer(jobs_app, name="jobs")
