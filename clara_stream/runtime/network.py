"""The network side of a distributed run: ports no other process can take, and bounded waits.

Holoscan 4.6 picks a worker's gRPC port (no ``--worker-address`` port) and its UCX receiver ports
(no ``HOLOSCAN_UCX_PORTS``) by probing upward from 10000: bind, close, take the first that worked.
Two workers or two apps starting together on one host therefore pick the same port. gRPC sets
SO_REUSEPORT, so both workers then listen on it, the driver sees one worker id twice and waits
forever for the other ("1/2 fragments scheduled"); a second UCX listener fails ("Device is busy")
or a transmitter reaches another app's receiver ("Failed to establish connection"). Here each port
comes from the kernel (bind to port 0 never returns a bound port) and stays bound, SO_REUSEADDR
and never listening, until the run ends: the engine's own sockets (gRPC; UCX with
``UCX_TCP_CM_REUSEADDR=y``, which Holoscan's docs recommend) bind it, nothing else can.

A worker also waits, bounded, for its driver to accept connections (Holoscan gives up after ten
1 s retries and the run then reports nothing), and a process whose fragments never start fails
after ``CLARA_STREAM_CONNECT_TIMEOUT_S`` naming the driver's address instead of waiting forever.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from clara_stream.errors import UserError

CONNECT_TIMEOUT_S = 60.0  # default bound on every wait for a peer (CLARA_STREAM_CONNECT_TIMEOUT_S)
_LOOPBACK = ("127.", "localhost", "::1")


class FragmentConnectionError(UserError, ConnectionError):
    """The driver or the workers of a distributed run did not connect within the bound."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="start the driver and every worker with the same --address, one "
                                       "--fragments set each; CLARA_STREAM_CONNECT_TIMEOUT_S waits longer")


def connect_timeout_s() -> float:
    """The bound on peer waits: ``CLARA_STREAM_CONNECT_TIMEOUT_S`` (> 0) or 60 s."""
    raw = os.environ.get("CLARA_STREAM_CONNECT_TIMEOUT_S")
    if raw is None:
        return CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"CLARA_STREAM_CONNECT_TIMEOUT_S: expected seconds > 0; got {raw!r}")
    return value


def reserve_port(host: str = "0.0.0.0") -> socket.socket:
    """A TCP port chosen by the kernel on ``host``, held (bound, SO_REUSEADDR, not listening) until closed.

    A server that sets SO_REUSEADDR may bind and listen on it meanwhile (in any process); the
    kernel gives it to no ``bind(port 0)`` and no outgoing connection.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def split_address(address: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``HOST[:PORT]`` as Holoscan's ``--address`` reads it (an empty host means every interface)."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, ""
    if port and not port.isdigit():
        raise UserError(f"--address: expected HOST[:PORT]; got {address!r}")
    return host or "0.0.0.0", int(port) if port else default_port


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class DistributedRun:
    """Ports, environment and waits for one process of a distributed app (``--driver``/``--worker``).

    Parameters
    ----------
    engine_args : sequence of str
        Holoscan's distributed options as given; :attr:`engine_args` adds a reserved
        ``--worker-address`` port to a worker that named none.
    """

    def __init__(self, engine_args: Sequence[str]) -> None:
        args = list(engine_args)
        self.driver, self.worker = "--driver" in args, "--worker" in args
        self.address = _option(args, "--address") or ""
        self._held: list[socket.socket] = []
        self._ucx: list[socket.socket] = []
        if self.worker:
            given = _option(args, "--worker-address")
            host, port = split_address(given or "", None)
            if port is None:  # Holoscan would probe from 10000, racing every other worker on this host
                if given is None:
                    driver_host, _ = split_address(self.address)
                    host = "127.0.0.1" if driver_host.startswith(_LOOPBACK) else "0.0.0.0"
                self._held.append(reserve_port())  # every interface: Holoscan's worker server binds 0.0.0.0
                chosen = f"{host}:{self._held[-1].getsockname()[1]}"
                args = [a for i, a in enumerate(args) if not (a == "--worker-address" or a.startswith(
                    "--worker-address=") or (i and args[i - 1] == "--worker-address"))]
                args += ["--worker-address", chosen]
        self.engine_args = args

    @property
    def driver_endpoint(self) -> tuple[str, int] | None:
        """Where this process's driver listens or its worker connects (None without a port)."""
        host, port = split_address(self.address)
        if port is None:
            return None
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host), port

    def wait_for_driver(self, timeout_s: float) -> None:
        """Return once the driver accepts TCP connections; raise after ``timeout_s``."""
        endpoint = self.driver_endpoint
        if endpoint is None or self.driver:
            return
        deadline, last = time.monotonic() + timeout_s, "no answer"
        while True:
            try:
                with socket.create_connection(endpoint, timeout=min(2.0, timeout_s)):
                    return
            except OSError as exc:
                last = exc.strerror or type(exc).__name__
            if time.monotonic() >= deadline:
                raise FragmentConnectionError(f"worker: expected the driver at {endpoint[0]}:{endpoint[1]} to "
                                              f"accept connections within {timeout_s:g} s; got {last}")
            time.sleep(0.1)  # a poll of the driver's state, bounded by the deadline above

    @contextmanager
    def environment(self, receivers: int) -> Iterator[None]:
        """Reserve ``receivers`` UCX ports for this run (``HOLOSCAN_UCX_PORTS``) unless the user set them."""
        saved = {k: os.environ.get(k) for k in ("HOLOSCAN_UCX_PORTS", "UCX_TCP_CM_REUSEADDR")}
        try:
            os.environ.setdefault("UCX_TCP_CM_REUSEADDR", "y")
            if receivers and not os.environ.get("HOLOSCAN_UCX_PORTS"):
                self._ucx = [reserve_port() for _ in range(receivers)]
                os.environ["HOLOSCAN_UCX_PORTS"] = ",".join(str(s.getsockname()[1]) for s in self._ucx)
                if os.environ["UCX_TCP_CM_REUSEADDR"].lower() not in ("y", "yes", "1", "on", "true"):
                    self._release(self._ucx)  # UCX would not bind a held port: kernel-chosen, not held
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._release(self._ucx)

    @staticmethod
    def _release(socks: list[socket.socket]) -> None:
        for sock in socks:
            sock.close()
        socks.clear()

    def close(self) -> None:
        self._release(self._held)
        self._release(self._ucx)


class StartWatch:
    """Fails a run whose local fragments never start: records the error, then stops the engine.

    ``started`` is set by the first operator ``start()`` in this process; ``fail`` is called
    with the error when it is not set within the bound (the engine is then stopped by SIGINT,
    as Ctrl-C stops it, so sinks close their files).
    """

    def __init__(self, timeout_s: float, message: str, fail: Callable[[BaseException], None]) -> None:
        self.started, self._done = threading.Event(), threading.Event()
        self._timeout, self._message, self._fail = timeout_s, message, fail
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="clara-stream-start-watch", daemon=True)

    def __enter__(self) -> StartWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self.started.set()
        self._thread.join()

    def _watch(self) -> None:
        if self.started.wait(self._timeout) or self._done.is_set():
            return
        self.fired = True
        self._fail(FragmentConnectionError(self._message))
        import signal

        os.kill(os.getpid(), signal.SIGINT)  # Holoscan's handler stops the graph and the worker cleanly
