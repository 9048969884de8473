"""``clara-stream package APP --out DIR``: write the app as a HAP-compatible package folder."""

from __future__ import annotations

from pathlib import Path

import typer

from clara_stream.errors import UserError


def package(
    app: str = typer.Argument(..., help="installed app name or app folder"),
    out: Path = typer.Option(..., "--out", "-o", help="parent folder; the package is OUT/<app>-<version>"),
    config: Path = typer.Option(None, "--config", "-c", help="app YAML to ship (default: the app's app.yaml)"),
    gpu: int = typer.Option(None, help="GPUs the app needs (default: from metadata.json requirements)"),
    gpu_memory: str = typer.Option(None, help="GPU memory it needs, e.g. 4Gi"),
    platform_config: str = typer.Option("dgpu", help="dgpu, or igpu for an IGX/AGX integrated GPU"),
    base_image: str = typer.Option("clara-stream/app:0.1.0-cpu", help="image the package Dockerfile builds on"),
) -> None:
    """Write APP as a Holoscan/MONAI Deploy App Package layout (app.json, pkg.json, models, config).

    Also writes a Dockerfile for the package image and helm-values.yaml for the clara-app chart.
    """
    from clara_stream.packaging import write_package

    try:
        pkg = write_package(app, out, config=config, gpu=gpu, gpu_memory=gpu_memory,
                            platform_config=platform_config, base_image=base_image)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise UserError(str(exc)) from None
    res = pkg.package_manifest["resources"]
    typer.echo(f"package: {pkg.root} (gpu {res['gpu']}, memory {res['memory']}, "
               f"{len(pkg.package_manifest['models'])} model folder(s))")


def register(app: typer.Typer) -> None:
    """Add ``package`` to the main CLI."""
    app.command("package")(package)
