"""Core commands: run, validate, graph, sample, apps, doctor, version."""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clara_stream.errors import GraphValidationError, UserError

app = typer.Typer(
    name="clara-stream",
    help="Real-time medical AI pipelines on the Holoscan engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="App YAML (default: the app's app.yaml).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value (repeatable).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and engine logs.")]
InputOpt = Annotated[Path | None, typer.Option("--input", "-i", help="Input file or folder.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Output folder.")]
RunInputOpt = Annotated[list[str] | None, typer.Option(
    "--input", "-i", help="Input file or folder, or a live stream URI (rtsp://…); repeat for multi-source apps.")]


def report_error(exc: BaseException) -> int:
    """Print one clear line (plus a hint) for ``exc`` and return the exit code."""
    debug = os.environ.get("CLARA_STREAM_DEBUG") == "1"
    if isinstance(exc, click.exceptions.Abort):
        from clara_stream.runtime import stack

        err_console.print("aborted")
        return 143 if stack.last_stop_signal == 15 else 130
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if debug:
        err_console.print(traceback.format_exc(), markup=False, highlight=False)
    if isinstance(exc, GraphValidationError):
        err_console.print(f"[bold red]error:[/] {escape(exc.app_name)}: graph refused before run", highlight=False)
        for line in exc.errors:
            err_console.print(f"  - {line}", markup=False, highlight=False)
        err_console.print("[dim]hint: `clara-stream validate APP` lists every port and contract[/]")
        return 1
    notes = [str(n) for n in getattr(exc, "__notes__", ())]  # later failures of the same run, in order
    if isinstance(exc, UserError):
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        for note in notes:
            err_console.print(f"  {note}", markup=False, highlight=False)
        if exc.hint:
            err_console.print(f"[dim]hint: {escape(exc.hint)}[/]", highlight=False)
        return 2
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(message)}", highlight=False)
    for note in notes:
        err_console.print(f"  {note}", markup=False, highlight=False)
    if not debug:
        err_console.print("[dim]hint: run again with --debug for the traceback[/]")
    return 1


def _extra(scheduler: str | None, threads: int | None, log_level: str | None, debug: bool,
           check: bool | None) -> list[str]:
    extra = []
    if scheduler:
        extra.append(f"app.scheduler={scheduler}")
    if threads:
        extra.append(f"app.threads={threads}")
    # --log-level / --debug win over the YAML's app.log_level; without them the YAML's applies.
    if log_level or debug:
        extra.append(f"app.log_level={log_level or 'info'}")
    if check is not None:
        extra.append(f"app.check_contracts={'true' if check else 'false'}")
    return extra


def _engine_args(driver: bool, worker: bool, address: str | None, worker_address: str | None,
                 fragments: str | None) -> list[str]:
    """Holoscan's distributed-app options, passed through as Holoscan documents them."""
    args = ["--driver"] if driver else []
    args += ["--worker"] if worker else []
    args += ["--address", address] if address else []
    args += ["--worker-address", worker_address] if worker_address else []
    args += ["--fragments", fragments] if fragments else []
    return args


@app.command()
def run(
    app_name: Annotated[str, typer.Argument(
        metavar="APP", help="Installed app name, path to an app, or a pipeline .yaml.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    input: RunInputOpt = None,
    output: OutputOpt = None,
    scheduler: Annotated[str | None, typer.Option(help="greedy | event | multithread")] = None,
    threads: Annotated[int | None, typer.Option(help="Worker threads (event/multithread).")] = None,
    log_level: Annotated[str | None, typer.Option(help="Engine log level (default: the YAML's app.log_level).")] = None,
    check_contracts: Annotated[bool | None, typer.Option("--check-contracts/--no-check-contracts",
                                                         help="Check every emitted value.")] = None,
    driver: Annotated[bool, typer.Option("--driver", help="Distributed: run the driver (app.fragments on).")] = False,
    worker: Annotated[bool, typer.Option("--worker", help="Distributed: run a worker (app.fragments on).")] = False,
    address: Annotated[str | None, typer.Option(help="Distributed: the driver's HOST:PORT.")] = None,
    worker_address: Annotated[str | None, typer.Option(help="Distributed: this worker's HOST:PORT.")] = None,
    fragments: Annotated[str | None, typer.Option(help="Distributed: fragments to run here (NAME,… or all).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Run an app to completion and say where its outputs are.

    With ``--driver`` / ``--worker`` the app runs as Holoscan fragments over UCX (``app.fragments``
    is switched on); Holoscan's ``HOLOSCAN_*`` environment variables apply as it documents them.
    """
    for item in input or []:  # a URI (rtsp://…) is a stream, not a path: the app's source checks it
        if "://" not in item and not Path(item).exists():
            raise UserError(f"run: expected an existing --input; got no file or folder at {item}")
    input = "\n".join(input) if input else None  # several inputs reach the app as app.input, one a line
    engine = _engine_args(driver, worker, address, worker_address, fragments)
    extra = _extra(scheduler, threads, log_level, debug, check_contracts) + (["app.fragments=true"] if engine else [])
    instance = _load(app_name, config=config, overrides=set_ or [], input=input, output=output,
                     extra=extra, engine_args=engine)
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(f"running {instance.app_name}…"):
            instance.run()
    else:
        instance.run()
    elapsed = time.perf_counter() - start
    console.print(f"[green]done:[/] {instance.app_name} in {elapsed:.2f} s", highlight=False)
    if instance.output_path is not None:
        console.print(f"outputs: {instance.output_path.resolve()}", highlight=False)


def _composed(app_name: str, config: Path | None, set_: list[str] | None, input: Path | None,
              output: Path | None) -> Any:
    """An app built for inspection (validate, graph): engine logs silenced, nothing run."""
    return _load(app_name, config=config, overrides=set_ or [], input=input, output=output,
                 extra=["app.log_level=critical"])


def _load(app_name: str, *, config: Path | None, **kwargs: Any) -> Any:
    """An installed app or app path, or a declarative pipeline file (``.yaml`` / ``.yml``)."""
    from clara_stream.pipeline import is_pipeline_file, load_pipeline
    from clara_stream.runtime import load_app

    if not is_pipeline_file(app_name):
        return load_app(app_name, config=config, **kwargs)
    if config is not None:
        raise UserError(f"run: expected no --config with a pipeline file (its operators hold their args); "
                        f"got --config {config}", hint="use --set OPERATOR.KEY=VALUE to override")
    return load_pipeline(app_name, **kwargs)


@app.command()
def validate(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    input: InputOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print every operator, port and contract, then every wiring problem (exit 1 if any)."""
    from clara_stream.ports import is_canonical

    instance = _composed(app_name, config, set_, input, output)
    errors = instance.validate()
    table = Table(title=f"{instance.app_name}: operators and ports")
    for col in ("operator", "class", "dir", "port", "contract"):
        table.add_column(col)
    for op in instance.operators:
        rows = [("in", p) for p in getattr(op, "inputs", ())] + [("out", p) for p in getattr(op, "outputs", ())]
        if not rows:
            table.add_row(op.name, type(op).__name__, "", "", "(untyped)")
        for i, (direction, port) in enumerate(rows):
            name = port.name + (" (optional)" if port.optional else "")
            table.add_row(op.name if i == 0 else "", type(op).__name__ if i == 0 else "", direction, name,
                          port.contract.describe())
    console.print(table)
    for e in instance.edges:
        console.print(f"  {e.src.name}.{e.out_port} → {e.dst.name}.{e.in_port}", highlight=False)
    odd = sorted({f"{op.name}.{p.name}" for op in instance.operators
                  for p in (*getattr(op, "inputs", ()), *getattr(op, "outputs", ())) if not is_canonical(p.name)})
    if odd:
        console.print(f"[yellow]warning:[/] port names outside the vocabulary (clara_stream.ports): {', '.join(odd)}")
    if errors:
        console.print(f"[bold red]{len(errors)} problem(s):[/]")
        for line in errors:
            console.print(f"  - {line}", markup=False, highlight=False)
        raise typer.Exit(1)
    console.print("[green]graph OK[/]")


@app.command()
def graph(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    out: Annotated[Path, typer.Option("--out", help="Picture to write: .svg or .png (or .dot, or .json data).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    input: InputOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write a picture of the app's graph (Graphviz)."""
    from clara_stream.cli.graphviz_export import write_graph

    instance = _composed(app_name, config, set_, input, output)
    instance.validate()
    if out.suffix.lower() == ".json":  # the graph description the console draws (GET /pipelines/{id}/graph)
        from clara_stream.runtime.progress import graph_description  # also in every job's progress file

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(graph_description(instance), indent=1))
        console.print(f"graph written: {out}", highlight=False)
        return
    path = write_graph(instance, out)
    console.print(f"graph written: {path}", highlight=False)


@app.command()
def sample(
    kind: Annotated[str, typer.Argument(help="What to generate (see `clara-stream sample --help`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (created).")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed → same data).")] = 0,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Generate synthetic sample data: `video` (H.264 + ground truth) or `ct` (phantom DICOM + labels)."""
    from clara_stream.config import parse_override
    from clara_stream.samples import write_sample

    options: dict[str, Any] = {}
    for item in set_ or []:
        parts, value = parse_override(item)
        options[".".join(parts)] = value
    with console.status(f"writing sample {kind}…") if console.is_terminal else _null():
        paths = write_sample(kind, out, seed=seed, **options)
    for key, path in paths.items():
        console.print(f"{key}: {path}", highlight=False)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@app.command("apps")
def apps_cmd() -> None:
    """List the installed apps."""
    from clara_stream.runtime import list_apps

    for name in list_apps():
        console.print(name)


@app.command()
def doctor(
    voice: Annotated[bool, typer.Option("--voice/--no-voice", help="Run each voice backend once (a few s).")] = True,
    riva_uri: Annotated[str, typer.Option("--riva-uri", help="Also check this Riva server (HOST:PORT).")] = "",
) -> None:
    """Report the engine, GPU, codecs, optional packages, external tools and usable voice backends."""
    from clara_stream.doctor import collect

    table = Table(title="clara-stream doctor")
    for col in ("check", "status", "detail"):
        table.add_column(col)
    for check, ok, detail in collect(voice=voice, riva_uri=riva_uri):
        table.add_row(escape(check), "[green]ok[/]" if ok else "[yellow]missing[/]", escape(detail))
    console.print(table)


@app.command()
def version() -> None:
    """Print the clara-stream and Holoscan versions."""
    import clara_stream
    from clara_stream.runtime import holoscan_version

    console.print(f"clara-stream {clara_stream.__version__} (holoscan {holoscan_version()})", highlight=False)
