"""``clara-stream loadgen``: submit jobs at a rate to a running service and print throughput/latency."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from clara_stream.errors import UserError

DEFAULT_API = os.environ.get("CLARA_STREAM_API", "http://127.0.0.1:8000")


def loadgen(
    pipeline: str = typer.Option(..., help="registered pipeline to load"),
    dataset: Path = typer.Option(..., help="folder of cases (subfolders) or one case"),
    jobs: int = typer.Option(10, help="jobs to submit"),
    rate: float = typer.Option(1.0, help="jobs per second (0: as fast as possible)"),
    order: str = typer.Option("sequential", help="sequential | random case order"),
    priority: int = typer.Option(0, help="job priority (api only; DICOM jobs take their AE's)"),
    via: str = typer.Option("api", help="api (POST /jobs) | dicom (C-STORE to the pipeline's AE)"),
    api: str = typer.Option(DEFAULT_API, help="service URL [env CLARA_STREAM_API]"),
    aet: str = typer.Option("LOADGEN", help="calling AE title for --via dicom (must be a configured source)"),
    seed: int = typer.Option(0, help="seed for --order random"),
    timeout_s: float = typer.Option(600.0, help="give up waiting after this long"),
) -> None:
    """Drive a running `clara-stream dicom serve` and print throughput and job latency percentiles."""
    import httpx

    from clara_stream.platform.loadgen import LoadGenerator

    gen = LoadGenerator(api, timeout_s=timeout_s, calling_ae=aet)
    try:
        report = gen.run(
            pipeline=pipeline,
            dataset=dataset,
            jobs=jobs,
            rate=rate,
            order=order,
            priority=priority,
            via=via,
            seed=seed,
        )
    except (ValueError, TimeoutError) as exc:
        raise UserError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise UserError(
            f"loadgen: expected the service at {api}; got {exc}", hint="start `clara-stream dicom serve`"
        ) from None
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(0 if report.failed == 0 else 1)


def register(app: typer.Typer) -> None:
    """Add the ``loadgen`` command to the main CLI."""
    app.command("loadgen")(loadgen)
