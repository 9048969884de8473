"""``clara-stream bench APP …`` and ``clara-stream bench compare A.json B.json``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clara_stream.errors import UserError

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _run(app_name: str, out: Path, input: str | None, config: str | None, set_: list[str], frames: int | None,
         runs: int, instances: int, scheduler: str | None, threads: int | None, realtime: bool) -> None:
    from clara_stream.bench.harness import GLASS, BenchOptions, primary_path, run_bench
    from clara_stream.bench.report import STAT_ORDER, write_all

    opts = BenchOptions(app=app_name, out=out, input=input, config=config, overrides=set_,
                        frames=frames, runs=runs,
                        instances=instances, scheduler=scheduler, threads=threads, realtime=realtime)
    with Progress(TextColumn("[bold]bench[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"{app_name}: runs × instances", total=runs * instances)
        results = run_bench(opts, on_progress=lambda done, total: progress.update(task, completed=done))
    files = write_all(results, out)
    table = Table(title=f"{app_name}: end-to-end latency (ms), {runs} run(s) × {instances} instance(s)")
    table.add_column("path")
    for s in STAT_ORDER:
        table.add_column(s, justify="right")
    for path, v in results["paths"].items():
        table.add_row(path, *[str(v["latency_ms"][s]) if s == "count" else f"{v['latency_ms'][s]:.2f}"
                              for s in STAT_ORDER])
    console.print(table)
    primary = primary_path(results)
    if primary.startswith(GLASS):
        console.print(f"primary: {primary} — the app's own per-frame clocks, every thread's queueing included; "
                      "the tracked paths stamp compute calls only", highlight=False)
    ops = Table(title=f"per operator (ms): {primary}")
    for col in ("operator", "mean", "p50", "p95", "p99", "max"):
        ops.add_column(col, justify="right" if col != "operator" else "left")
    for name, st in results["paths"][primary]["operators_ms"].items():
        ops.add_row(name, *[f"{st[c]:.3f}" for c in ("mean", "p50", "p95", "p99", "max")])
    console.print(ops)
    cpu = results["cpu"]["process_pct_mean"]
    console.print(f"throughput {results['throughput_fps']:.1f} msg/s · dropped frames {results['dropped_frames']} · "
                  f"CPU {cpu if cpu is None else round(cpu, 1)} % · GPU {results['gpu'] or 'n/a'}", highlight=False)
    console.print(f"report: {files['report']}  results: {files['results']}", highlight=False)


def _compare(a: Path, b: Path) -> None:
    from clara_stream.bench.compare import compare, load

    rows = compare(load(a), load(b))
    table = Table(title=f"B / A  (A = {a}, B = {b})")
    for col in ("path", "metric", "A", "B", "B/A", "note"):
        table.add_column(col)
    noisy = 0
    for r in rows:
        note = "[yellow]within run-to-run spread[/]" if r.within_noise else ""
        noisy += r.within_noise
        table.add_row(r.path, r.metric, f"{r.a:.3f}", f"{r.b:.3f}", f"{r.ratio:.3f}", note)
    console.print(table)
    if noisy:
        console.print(f"[yellow]warning:[/] {noisy} metric(s) differ by less than their run-to-run spread; "
                      "run more --runs before trusting those ratios")


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": False})
    def bench(
        target: Annotated[str, typer.Argument(metavar="APP|compare", help="App to benchmark, or `compare`.")],
        files: Annotated[list[Path] | None, typer.Argument(help="compare: A.json B.json")] = None,
        input: Annotated[str | None, typer.Option(
            "--input", "-i", help="The app's input: a file or folder, or a live stream URI (rtsp://…).")] = None,
        config: Annotated[str | None, typer.Option("--config", "-c")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override section.key=value.")] = None,
        frames: Annotated[int | None, typer.Option(help="Frames per run (the app's app.frames_key).")] = None,
        runs: Annotated[int, typer.Option(help="Sequential runs.")] = 3,
        instances: Annotated[int, typer.Option(help="Concurrent instances per run.")] = 1,
        scheduler: Annotated[str | None, typer.Option(help="greedy | event | multithread")] = None,
        threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
        realtime: Annotated[bool, typer.Option(help="Pace the source (the app's app.realtime_key).")] = False,
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the report.")] = Path("bench-output"),
        debug: Annotated[bool, typer.Option("--debug")] = False,
    ) -> None:
        """Latency benchmark of an app (percentiles, tail, flatness, CDF plots), or compare two results."""
        if target == "compare":
            if not files or len(files) != 2:
                raise UserError("bench compare: expected two results.json files; got "
                                f"{len(files or [])}", hint="clara-stream bench compare A/results.json B/results.json")
            _compare(files[0], files[1])
            return
        if files:
            raise UserError(f"bench: expected only an app name; got extra arguments {[str(f) for f in files]}")
        if input is not None and "://" not in input and not Path(input).exists():  # a URI: the app's source checks it
            raise UserError(f"bench: expected an existing --input; got no file or folder at {input}")
        _run(target, out, input, config, set_ or [], frames, runs, instances, scheduler, threads, realtime)
