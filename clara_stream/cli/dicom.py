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
    from clara_stream.platform.status import NotFoundError, PlatformError

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
    except (ValidationError, PlatformError) as exc:
        raise UserError(f"dicom serve: seed file {path}: {exc}") from None
    counts["pipelines"] = len(data.get("pipelines", []))
    return counts


@dicom_app.command("serve")
def serve(
    data_dir: Path = typer.Option(None, help="state, store and job folders [env CLARA_STREAM_DATA_DIR]"),
    host: str = typer.Option(None, help="DICOM bind address (default 127.0.0.1) [env CLARA_STREAM_HOST]"),
    http_host: str = typer.Option(
        None, help="REST/console bind address (default 127.0.0.1); beyond loopback a token is required"
    ),
    dicom_port: int = typer.Option(None, help="DICOM port; 0 picks a free one (default 104)"),
    http_port: int = typer.Option(None, help="REST/console port; 0 picks a free one (default 8000)"),
    grpc_port: int = typer.Option(None, help="platform gRPC API port on the REST host and token; 0 picks one (off)"),
    ae_title: str = typer.Option(None, help="the SCP's own AE title"),
    seed: Path = typer.Option(None, help="YAML/JSON with sources, destinations, pipelines, aes to upsert"),
    api_token_file: Path = typer.Option(
        None, help="file holding the REST bearer token [env CLARA_STREAM_API_TOKEN]; never on argv"
    ),
    app_root: list[Path] = typer.Option(None, help="folder whose apps pipelines may name by path (repeatable)"),
    input_root: list[Path] = typer.Option(None, help="folder REST job inputs may lie under (repeatable)"),
    allow_pipeline_commands: bool = typer.Option(
        None, "--allow-pipeline-commands", help="accept `type: command` services in uploaded pipeline files (off)"),
    max_associations: int = typer.Option(None, help="concurrent associations admitted, exactly (default 32)"),
    acceptors: int = typer.Option(None, help="SCP processes sharing the DICOM port (default 1)"),
    receive_path: str = typer.Option(
        None, help="fast (default: our own DICOM upper-layer loop) or pynetdicom [env CLARA_STREAM_RECEIVE_PATH]"
    ),
    max_jobs: int = typer.Option(None, help="jobs running at once"),
    keep_aborted: bool = typer.Option(None, help="keep instances of aborted associations"),
    min_free_mb: int = typer.Option(None, help="low-space watermark in MiB (default 2048)"),
    min_free_percent: float = typer.Option(None, help="low-space watermark in percent of the disk (default 5)"),
    acse_timeout_s: float = typer.Option(None, help="ACSE timeout (default 30 s)"),
    dimse_timeout_s: float = typer.Option(None, help="DIMSE timeout (default 120 s)"),
    network_timeout_s: float = typer.Option(None, help="idle network timeout (default 120 s)"),
    tls_cert: Path = typer.Option(None, help="PEM certificate (TLS on with --tls-key)"),
    tls_key: Path = typer.Option(None, help="PEM private key"),
    tls_ca: Path = typer.Option(None, help="PEM CA bundle; requires client certificates"),
    retention_max_age_days: float = typer.Option(None, help="delete instances older than this (global policy)"),
    retention_max_total_gb: float = typer.Option(None, help="delete oldest instances above this total"),
    scheduler: str = typer.Option(None, help="embedded (default: SQLite + local subprocesses) or celery"),
    broker: str = typer.Option(None, help="celery: RabbitMQ URL amqp://… [env CLARA_STREAM_BROKER_URL]"),
    database: str = typer.Option(None, help="celery: PostgreSQL URL postgresql://… [env CLARA_STREAM_DATABASE_URL]"),
    log_level: str = typer.Option("info", help="debug, info, warning"),
) -> None:
    """Run the DICOM SCP, grouper, scheduler, exporter and REST API (OpenAPI at /docs) in one process.

    Binding: both listeners bind 127.0.0.1 unless --host (DICOM) or --http-host (REST, console) say otherwise.

    Auth: REST beyond loopback requires 'Authorization: Bearer <token>' (--api-token-file, $CLARA_STREAM_API_TOKEN).

    Without one, a token is generated on first start into <data-dir>/api-token (mode 0600) and printed once.

    Only installed apps, or apps under --app-root, may run; REST job inputs must lie under the store or --input-root.

    Low space: below min(--min-free-mb, --min-free-percent) free, associations are refused and C-STOREs get 0xA700.

    Retention: --retention-max-age-days / --retention-max-total-gb (or an AE's "retention"), hourly and `dicom gc`.

    Retention never deletes instances of an open group, of a queued or running job, or with results in the outbox.

    Scale: --scheduler celery --broker amqp://… --database postgresql://… hands jobs to `clara-stream worker`s.

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
            http_host=http_host,
            max_associations=max_associations,
            acceptors=acceptors,
            receive_path=receive_path,
            max_concurrent_jobs=max_jobs,
            keep_aborted=keep_aborted,
            min_free_mb=min_free_mb,
            min_free_percent=min_free_percent,
            acse_timeout_s=acse_timeout_s,
            dimse_timeout_s=dimse_timeout_s,
            network_timeout_s=network_timeout_s,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            app_roots=app_root or None,
            input_roots=input_root or None,
            allow_pipeline_commands=allow_pipeline_commands,
            retention_max_age_days=retention_max_age_days,
            retention_max_total_gb=retention_max_total_gb,
            scheduler=scheduler,
            broker_url=broker,
            database_url=database,
        ).items()
        if v is not None
    }
    if api_token_file is not None:
        try:
            overrides["api_token"] = api_token_file.read_text().strip()
        except OSError as exc:
            raise UserError(f"dicom serve: expected a readable --api-token-file; got {exc}") from None
    try:
        settings = PlatformSettings(**overrides)
    except ValidationError as exc:
        raise UserError(f"dicom serve: {exc}") from None
    try:
        service = PlatformService(settings)
    except PermissionError as exc:
        raise UserError(f"dicom serve: {exc}") from None
    if service.token_generated:
        typer.echo(
            f"REST listens beyond loopback: generated API token (shown once; kept in "
            f"{Path(settings.data_dir) / 'api-token'}, mode 0600): {service.api_token.get_secret_value()}",
            err=True,
        )
    if seed is not None:
        seed_config(service, seed)
    family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.http_host, settings.http_port))
    except OSError as exc:
        raise UserError(
            f"dicom serve: expected a free HTTP port; got {exc} [{settings.http_host}:{settings.http_port}]",
            hint="pick another --http-port (0 picks a free one)",
        ) from None
    service.start()
    grpc_server, grpc_bound = None, None
    if grpc_port is not None:  # the platform gRPC API beside REST: same host, token rule and service calls
        from clara_stream.platform.grpc.server import serve as serve_grpc

        grpc_server, grpc_bound = serve_grpc(service, host=settings.http_host, port=grpc_port)
    info = {
        "pid": os.getpid(),
        "grpcPort": grpc_bound,
        "dicomPort": service.dicom_port,
        "httpPort": sock.getsockname()[1],
        "host": settings.host,
        "httpHost": settings.http_host,
        "aeTitle": settings.ae_title,
    }
    info_path = Path(settings.data_dir) / "service.json"
    info_path.with_suffix(".tmp").write_text(json.dumps(info))
    os.replace(info_path.with_suffix(".tmp"), info_path)  # readers never see half a file
    logging.getLogger(__name__).info(
        "REST API on http://%s:%d (console /console, OpenAPI /docs)%s",
        settings.http_host,
        info["httpPort"],
        "; bearer token required" if service.api_token is not None else " (loopback only, no token)",
    )
    app = create_app(service, manage=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level.lower(), access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=None)


@dicom_app.command("gc")
def gc_cmd(
    data_dir: Path = typer.Option(None, help="the service's data folder [env CLARA_STREAM_DATA_DIR]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be deleted; delete nothing"),
    max_age_days: float = typer.Option(None, help="global policy: delete instances older than this"),
    max_total_gb: float = typer.Option(None, help="global policy: delete oldest instances above this total"),
    keep_until_exported: bool = typer.Option(True, help="keep instances until their results are exported"),
    database: str = typer.Option(None, help="celery backend: postgresql://… [env CLARA_STREAM_DATABASE_URL]"),
) -> None:
    """Apply the retention policy (global options + each AE's "retention") to the instance store.

    Never deletes an instance of an open group, of a queued or running job, or with results in the outbox.

    Safe beside a running service (the same SQLite database, WAL).
    """
    from pydantic import ValidationError

    from clara_stream.platform import retention
    from clara_stream.platform.configstore import ConfigStore
    from clara_stream.platform.db import database_for
    from clara_stream.platform.settings import PlatformSettings

    overrides = dict(
        database_url=database,
        retention_max_age_days=max_age_days,
        retention_max_total_gb=max_total_gb,
        retention_keep_until_exported=keep_until_exported,
    )
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = PlatformSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise UserError(f"dicom gc: {exc}") from None
    state = Path(settings.data_dir) / "state.sqlite"
    if settings.database_url is None and not state.is_file():
        raise UserError(f"dicom gc: expected a service data folder with state.sqlite; got {settings.data_dir}")
    db = database_for(settings)
    found = retention.plan(db, ConfigStore(db), retention.default_policy(settings))
    for c in found:
        typer.echo(f"{'would delete' if dry_run else 'delete'} {c.path} ({c.size} B, {c.called_ae}): {c.reason}")
    if not dry_run:
        retention.apply(db, found, Path(settings.data_dir) / "store")
    total = sum(c.size for c in found)
    typer.echo(f"{'dry run: ' if dry_run else ''}{len(found)} instance(s), {total} bytes")


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
