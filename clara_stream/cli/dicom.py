"""``clara-stream dicom``: serve the DICOM adapter + REST API, echo and send."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import typer
import yaml

from clara_stream.errors import UserError

dicom_app = typer.Typer(help="DICOM adapter: serve (SCP + REST + scheduler), echo, send.", no_args_is_help=True)


def seed_config(service, path: Path) -> dict[str, int]:
    """Upsert sources, destinations, pipelines and AEs from a YAML/JSON file; returns counts.

    File keys: ``sources``, ``destinations``, ``pipelines``, ``aes`` (lists of MIG-style payloads).
    """
    from pydantic import ValidationError

    from clara_stream.platform.schemas import AeConfig, DestinationConfig, PipelineConfig, SourceConfig
    from clara_stream.platform.status import NotFoundError

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"dicom serve: expected a readable YAML/JSON seed file; got {exc}") from None
    unknown = set(data) - {"sources", "destinations", "pipelines", "aes"}
    if unknown:
        raise UserError(f"dicom serve: expected seed keys sources, destinations, pipelines, aes; got {sorted(unknown)}")
    counts = {}
    try:
        for item in data.get("pipelines", []):
            service.config.put_pipeline(PipelineConfig.model_validate(item))
        for key, kind, model in (
            ("sources", "source", SourceConfig),
            ("destinations", "destination", DestinationConfig),
            ("aes", "ae", AeConfig),
        ):
            for item in data.get(key, []):
                obj = model.model_validate(item)
                try:
                    service.config.update(kind, obj)
                except NotFoundError:
                    service.config.create(kind, obj)
            counts[key] = len(data.get(key, []))
    except ValidationError as exc:
        raise UserError(f"dicom serve: seed file {path}: {exc}") from None
    counts["pipelines"] = len(data.get("pipelines", []))
    return counts


@dicom_app.command("serve")
def serve(
    data_dir: Path = typer.Option(None, help="state, store and job folders [env CLARA_STREAM_DATA_DIR]"),
    host: str = typer.Option(None, help="bind address (default 127.0.0.1)"),
    dicom_port: int = typer.Option(None, help="DICOM port; 0 picks a free one (default 104)"),
    http_port: int = typer.Option(None, help="REST/console port; 0 picks a free one (default 8000)"),
    ae_title: str = typer.Option(None, help="the SCP's own AE title"),
    seed: Path = typer.Option(None, help="YAML/JSON with sources, destinations, pipelines, aes to upsert"),
    max_associations: int = typer.Option(None, help="concurrent associations"),
    max_jobs: int = typer.Option(None, help="jobs running at once"),
    keep_aborted: bool = typer.Option(None, help="keep instances of aborted associations"),
    tls_cert: Path = typer.Option(None, help="PEM certificate (TLS on with --tls-key)"),
    tls_key: Path = typer.Option(None, help="PEM private key"),
    tls_ca: Path = typer.Option(None, help="PEM CA bundle; requires client certificates"),
    log_level: str = typer.Option("info", help="debug, info, warning"),
) -> None:
    """Run the DICOM SCP, grouper, scheduler, exporter and REST API (OpenAPI at /docs) in one process.

    Writes ``<data-dir>/service.json`` with the pid and bound ports once both servers listen.
    """
    import uvicorn
    from pydantic import ValidationError

    from clara_stream.platform.api.app import create_app
    from clara_stream.platform.service import PlatformService
    from clara_stream.platform.settings import PlatformSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    overrides = {
        k: v
        for k, v in dict(
            data_dir=data_dir,
            host=host,
            dicom_port=dicom_port,
            http_port=http_port,
            ae_title=ae_title,
            max_associations=max_associations,
            max_concurrent_jobs=max_jobs,
            keep_aborted=keep_aborted,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
        ).items()
        if v is not None
    }
    try:
        settings = PlatformSettings(**overrides)
    except ValidationError as exc:
        raise UserError(f"dicom serve: {exc}") from None
    service = PlatformService(settings)
    if seed is not None:
        seed_config(service, seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.http_port))
    except OSError as exc:
        raise UserError(
            f"dicom serve: expected a free HTTP port; got {exc} [{settings.host}:{settings.http_port}]",
            hint="pick another --http-port (0 picks a free one)",
        ) from None
    service.start()
    info = {
        "pid": os.getpid(),
        "dicomPort": service.dicom_port,
        "httpPort": sock.getsockname()[1],
        "host": settings.host,
        "aeTitle": settings.ae_title,
    }
    info_path = Path(settings.data_dir) / "service.json"
    info_path.with_suffix(".tmp").write_text(json.dumps(info))
    os.replace(info_path.with_suffix(".tmp"), info_path)  # readers never see half a file
    logging.getLogger(__name__).info(
        "REST API on http://%s:%d (console /console, OpenAPI /docs)", settings.host, info["httpPort"]
    )
    app = create_app(service, manage=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level.lower(), access_log=False))
    server.run(sockets=[sock])


@dicom_app.command("echo")
def echo_cmd(
    host: str = typer.Argument(..., help="peer address"),
    port: int = typer.Argument(..., help="peer port"),
    aec: str = typer.Option("ANY-SCP", "--aec", help="called AE title"),
    aet: str = typer.Option("CLARASTREAM", "--aet", help="calling AE title"),
) -> None:
    """C-ECHO a peer (exit 0 on success)."""
    from clara_stream.platform import scu
    from clara_stream.platform.status import PeerError

    try:
        status = scu.echo(host, port, aec, calling_ae=aet)
    except PeerError as exc:
        raise UserError(str(exc), hint="check host, port, AE titles and the peer's allow-list") from None
    typer.echo(f"C-ECHO {aec}@{host}:{port}: status 0x{status:04X}")
    raise typer.Exit(0 if status == 0 else 1)


@dicom_app.command("send")
def send_cmd(
    folder: Path = typer.Argument(..., help="folder of DICOM files (searched recursively)"),
    host: str = typer.Argument(...),
    port: int = typer.Argument(...),
    aec: str = typer.Option(..., "--aec", help="called AE title (selects the pipeline)"),
    aet: str = typer.Option("CLARASTREAM", "--aet", help="calling AE title"),
) -> None:
    """C-STORE every DICOM file under FOLDER in one association."""
    from clara_stream.platform import scu
    from clara_stream.platform.status import PeerError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_dicom(p)) if folder.is_dir() else []
    if not files:
        raise UserError(f"dicom send: expected DICOM files under {folder}; got none")
    try:
        report = scu.store(files, host, port, aec, calling_ae=aet)
    except PeerError as exc:
        raise UserError(str(exc), hint="is the calling AE a configured source?") from None
    typer.echo(f"sent {len(report.sent)} of {len(files)} to {aec}@{host}:{port}")
    for p, err in report.failed.items():
        typer.echo(f"  failed {p}: {err}", err=True)
    raise typer.Exit(0 if not report.failed else 1)


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def register(app: typer.Typer) -> None:
    """Add the ``dicom`` group to the main CLI."""
    app.add_typer(dicom_app, name="dicom")
