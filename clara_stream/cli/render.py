"""``clara-stream render``: serve the render trio, register datasets, list them, render a snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clara_stream.errors import UserError

render_app = typer.Typer(
    help="Render service: serve (gRPC + web viewer), register, list, snapshot.", no_args_is_help=True
)


@render_app.command("serve")
def serve(
    root: list[Path] = typer.Option([], help="dataset root; only paths under a root may be registered"),
    state_dir: Path = typer.Option(Path.home() / ".clara-stream" / "render", help="registrations and settings"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    grpc_port: int = typer.Option(50051, help="gRPC port (0 = free port)"),
    http_port: int = typer.Option(8080, help="web viewer port (0 = free port)"),
    token: str = typer.Option("", envvar="CLARA_STREAM_RENDER_TOKEN", help="bearer token for gRPC and web"),
    register: list[str] = typer.Option([], help="PATH or PATH::MASK to register at start"),
    demo: bool = typer.Option(False, help="register the shared CT and slides, or synthetic data if absent"),
    ready_file: Path = typer.Option(None, help="write the bound addresses here (JSON) when ready"),
    max_loaded_gb: float = typer.Option(8.0, help="memory budget for loaded volumes (LRU beyond it)"),
    role: str = typer.Option("all", help="all (one process), or one of the trio: gateway, renderer, datasets"),
    render_server: str = typer.Option("", help="HOST:PORT of the render server (--role gateway)"),
    dataset_service: str = typer.Option("", help="HOST:PORT of the dataset service (--role renderer, gateway)"),
) -> None:
    """Serve the dataset + render gRPC services and the touch-enabled web viewer until Ctrl-C.

    Without --root or --register it serves the demo data: the real CT and slides from ../shared/data
    when present, synthetic data otherwise. --role splits the trio into three processes (the
    chart's three containers): datasets, renderer --dataset-service, gateway --render-server.
    """
    from clara_stream.render.serve import check_role, run, shared_data_dir

    own_data = role in ("all", "datasets")
    demo = demo or (own_data and not (root or register))
    roots = list(root) or ([shared_data_dir()] if demo and shared_data_dir().is_dir() else [])
    problem = check_role(role, render_server, dataset_service, bool(register) or demo)
    if problem:
        raise UserError(problem)
    if not roots and not demo and role != "gateway":
        raise UserError("render serve: expected at least one --root for --register", hint="or pass --demo")
    try:
        code = run(
            roots, state_dir, host, grpc_port, http_port, token, register, demo, ready_file, max_loaded_gb,
            role=role, render_server=render_server, dataset_service=dataset_service,
        )  # fmt: skip
    except (ValueError, PermissionError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    raise typer.Exit(code)


def _client(address: str, token: str):
    from clara_stream.render.client import RenderClient

    return RenderClient(address, token=token, timeout_s=120)


def _rpc(fn, *args, **kw):
    import grpc

    try:
        return fn(*args, **kw)
    except grpc.RpcError as exc:
        raise UserError(f"render: {exc.code().name}: {exc.details()}") from None


ADDRESS = typer.Option("127.0.0.1:50051", help="render gRPC address")
TOKEN = typer.Option("", envvar="CLARA_STREAM_RENDER_TOKEN", help="bearer token")


@render_app.command("register")
def register_cmd(
    path: str,
    mask: str = typer.Option("", help="label map"),
    name: str = "",
    dataset_id: str = typer.Option("", "--id"),
    address: str = ADDRESS,
    token: str = TOKEN,
) -> None:
    """Register a folder (seed layout, DICOM series), NIfTI/MHD file or slide with a running server."""
    from google.protobuf import json_format

    with _client(address, token) as c:
        info = _rpc(c.register, path, name=name, mask_path=mask, dataset_id=dataset_id)
        typer.echo(json.dumps(json_format.MessageToDict(info, preserving_proto_field_name=True), indent=2))


@render_app.command("list")
def list_cmd(address: str = ADDRESS, token: str = TOKEN) -> None:
    """List registered datasets (id, kind, name, path)."""
    with _client(address, token) as c:
        for d in _rpc(c.list):
            typer.echo(f"{d.id}\t{d.kind and ['', 'volume', 'slide', 'image'][d.kind]}\t{d.name}\t{d.path}")


@render_app.command("snapshot")
def snapshot_cmd(
    dataset_id: str,
    out: Path,
    mode: str = typer.Option("", help="axial, coronal, sagittal, oblique, mip, composite"),
    zoom: float = 1.0,
    address: str = ADDRESS,
    token: str = TOKEN,
) -> None:
    """Render one frame of a dataset to a JPEG/PNG file (format from the file suffix)."""
    from clara_stream.render.convert import FORMAT_TO_PB

    with _client(address, token) as c:
        s = _rpc(c.open, dataset_id)
        try:
            view = s.view
            view.format = FORMAT_TO_PB["png" if out.suffix.lower() == ".png" else "jpeg"]
            _rpc(c.set_view, s.session_id, view)
            if mode:
                _rpc(c.interact, s.session_id, mode=mode)
            if zoom != 1.0:
                _rpc(c.interact, s.session_id, zoom=zoom)
            frame = _rpc(c.render, s.session_id)
        finally:
            _rpc(c.close, s.session_id)
    out.write_bytes(frame.data)
    typer.echo(f"{out} {frame.width}x{frame.height} {frame.units_per_px:.4g} {frame.unit}/px")


def register(app: typer.Typer) -> None:
    """Add ``render`` to the main CLI."""
    app.add_typer(render_app, name="render")
