"""Services a pipeline needs (a tritonserver, any loopback server): started, checked, stopped.

Each service starts on loopback, is polled for health for at most ``timeout_s`` (bounded; a
server that exits or stays unhealthy is stopped and refused with its log tail), and exposes its
connections (``url``, ``http_url``, ``repository``…) that operators read as
``${services.NAME.KEY}``. :class:`ServiceGroup` starts them in file order before any operator
and stops them in reverse after the last; a failure part-way stops those already started.

``type: command`` runs ``command`` (``command[0]`` an absolute path or ``{python}``, this
interpreter) with ``{port}`` / ``{host}`` filled in; ``health`` is ``{http: URL}`` (2xx/3xx)
or ``{tcp: HOST:PORT}``; ``connection`` maps keys to templates. ``type: triton`` starts the
pinned tritonserver of :mod:`clara_stream.inference.triton_server` on a ``model_repository``
folder or on ``models: {name: model.onnx}`` served through its Python backend.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clara_stream.errors import UserError
from clara_stream.inference.triton_server import free_port
from clara_stream.pipeline.spec import ServiceSpec

HOST = "127.0.0.1"
MAX_TIMEOUT_S = 600.0
_COMMAND_KEYS = {"command", "health", "timeout_s", "connection"}
_TRITON_KEYS = {"model_repository", "models", "max_batch_size", "timeout_s"}
TRITON_CONNECTIONS = ("url", "http_url", "repository")


class ServiceError(UserError, RuntimeError):
    """A pipeline service did not start or never became healthy (nothing of the graph ran)."""


def _timeout(options: dict[str, Any]) -> float:
    return float(options.get("timeout_s", 30.0 if "command" in options else 120.0))


def check_service(spec: ServiceSpec) -> list[tuple[str, str]]:
    """``(key, problem)`` for each bad option of a service (empty: it may start)."""
    o, problems = spec.options, []
    allowed = _COMMAND_KEYS if spec.type == "command" else _TRITON_KEYS
    problems += [(k, f"expected keys {sorted(allowed)}; got unknown {k!r}") for k in sorted(set(o) - allowed)]
    t = o.get("timeout_s", 1.0)
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= MAX_TIMEOUT_S:
        problems.append(("timeout_s", f"expected timeout_s in (0, {MAX_TIMEOUT_S:g}] seconds; got {t!r}"))
    if spec.type == "command":
        cmd = o.get("command")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str | int | float) for c in cmd):
            problems.append(("command", f"expected command: a non-empty list of strings; got {cmd!r}"))
        elif cmd[0] != "{python}" and not (Path(cmd[0]).is_absolute() and os.access(cmd[0], os.X_OK)):
            problems.append(("command", f"expected command[0] an absolute path to an executable or {{python}}; "
                                        f"got {cmd[0]!r}"))
        health = o.get("health")
        if not (isinstance(health, dict) and len(health) == 1 and next(iter(health)) in ("http", "tcp")
                and isinstance(next(iter(health.values())), str)):
            problems.append(("health", f"expected health: {{http: URL}} or {{tcp: HOST:PORT}}; got {health!r}"))
        conn = o.get("connection", {})
        if not isinstance(conn, dict) or not all(isinstance(v, str) for v in conn.values()):
            problems.append(("connection", f"expected connection: a mapping of key -> template; got {conn!r}"))
    else:
        if ("model_repository" in o) == ("models" in o):
            problems.append(("models", "expected exactly one of model_repository (a folder) or models "
                                       "({name: model.onnx}); got " + ("both" if "models" in o else "neither")))
        models = o.get("models", {})
        if not isinstance(models, dict) or not all(isinstance(v, str) for v in models.values()):
            problems.append(("models", f"expected models: a mapping of name -> ONNX file; got {models!r}"))
    return problems


def connection_keys(spec: ServiceSpec) -> list[str]:
    if spec.type == "triton":
        return list(TRITON_CONNECTIONS)
    conn = spec.options.get("connection")
    return ["port", *conn] if isinstance(conn, dict) else ["port"]


def _resolve(here: Path, value: str) -> Path:
    p = Path(value.replace("${here}", str(here)))
    return p if p.is_absolute() else here / p


class CommandService:
    """A process started from ``command``, healthy when ``health`` answers."""

    def __init__(self, spec: ServiceSpec, here: Path) -> None:
        self.spec, self.here = spec, here
        self.port = free_port(HOST)  # chosen now, so operators are built with the real connection
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_pid: int | None = None  # kept after stop, so callers can check the process is gone
        self.log = Path(tempfile.mkdtemp(prefix=f"service-{spec.name}-")) / "service.log"

    def _fill(self, text: Any) -> str:
        return str(text).replace("{port}", str(self.port)).replace("{host}", HOST).replace("{python}", sys.executable)

    def connections(self) -> dict[str, str]:
        conn = {k: self._fill(v) for k, v in (self.spec.options.get("connection") or {}).items()}
        return {"port": str(self.port), **conn}

    def healthy(self) -> bool:
        kind, target = next(iter(self.spec.options["health"].items()))
        target = self._fill(target)
        try:
            if kind == "http":
                with urllib.request.urlopen(target, timeout=1) as r:
                    return 200 <= r.status < 400
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        cmd = [self._fill(c) for c in self.spec.options["command"]]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.here,
                                         start_new_session=True)
        self.last_pid = self.proc.pid

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class TritonService:
    """The pinned tritonserver on a model repository (written from ``models:`` when given)."""

    def __init__(self, spec: ServiceSpec, here: Path) -> None:
        self.spec, self.here = spec, here
        self.server: Any = None
        self._repo_tmp: Path | None = None
        self.ports = {k: free_port(HOST) for k in ("http", "grpc", "metrics")}

    @property
    def proc(self) -> Any:
        return self.server._proc if self.server else None

    def connections(self) -> dict[str, str]:
        o = self.spec.options
        repo = "" if "models" in o else str(_resolve(self.here, o["model_repository"]))
        if self.server is not None:
            repo = str(self.server.repository)
        return {"url": f"{HOST}:{self.ports['grpc']}", "http_url": f"{HOST}:{self.ports['http']}", "repository": repo}

    def start(self) -> None:
        from clara_stream.inference.triton_server import TritonServer, write_onnx_python_model

        o = self.spec.options
        if "models" in o:
            self._repo_tmp = Path(tempfile.mkdtemp(prefix=f"service-{self.spec.name}-repo-"))
            for name, onnx in o["models"].items():
                write_onnx_python_model(self._repo_tmp, name, _resolve(self.here, onnx),
                                        max_batch_size=int(o.get("max_batch_size", 8)))
            repo = self._repo_tmp
        else:
            repo = _resolve(self.here, o["model_repository"])
        self.server = TritonServer(repo, host=HOST, http_port=self.ports["http"], grpc_port=self.ports["grpc"],
                                   metrics_port=self.ports["metrics"], startup_timeout_s=_timeout(o))

    def wait(self) -> None:
        try:
            self.server.start()  # polls /v2/health/ready within startup_timeout_s, stops itself on failure
        except (RuntimeError, FileNotFoundError) as exc:
            raise ServiceError(f"{self.spec.where}: pipeline: service {self.spec.name!r}: {exc}") from None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._repo_tmp is not None:
            shutil.rmtree(self._repo_tmp, ignore_errors=True)


def make_service(spec: ServiceSpec, here: Path) -> CommandService | TritonService:
    return TritonService(spec, here) if spec.type == "triton" else CommandService(spec, here)


def _wait_command(svc: CommandService) -> None:
    limit = _timeout(svc.spec.options)
    deadline = time.monotonic() + limit
    while True:
        code = svc.exited()
        if code is not None:
            raise ServiceError(f"{svc.spec.where}: pipeline: service {svc.spec.name!r}: expected a running, "
                               f"healthy process; got exit {code}\n{svc.log_tail()}")
        if svc.healthy():
            return
        if time.monotonic() >= deadline:
            raise ServiceError(f"{svc.spec.where}: pipeline: service {svc.spec.name!r}: expected healthy within "
                               f"{limit:g} s; got no answer from {svc.spec.options['health']}\n{svc.log_tail()}")
        time.sleep(0.1)


Service = CommandService | TritonService


@contextmanager
def run_services(services: list[Service]) -> Iterator[None]:
    """Start each service in order and wait until it is healthy; stop all (reverse order) afterwards."""
    started: list[Service] = []
    try:
        for svc in services:
            started.append(svc)
            svc.start()
            if isinstance(svc, TritonService):
                svc.wait()
            else:
                _wait_command(svc)
        yield
    finally:
        for svc in reversed(started):
            svc.stop()
