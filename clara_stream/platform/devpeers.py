"""Throwaway RabbitMQ node and PostgreSQL cluster for tests and benchmarks.

Both run from their Debian packages by absolute path, bind 127.0.0.1 on the ports given, keep every
file under one folder and are stopped by their process group (never by name). Neither is for
production: a site runs its own broker and database and passes ``--broker`` / ``--database``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = Path("/usr/bin/epmd")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, what: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    limit = time.monotonic() + timeout_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > limit:
            raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")
        time.sleep(0.1)


def _stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class RabbitNode:
    """One RabbitMQ node (own epmd, Mnesia dir, cookie, plugins off) on 127.0.0.1.

    The Mnesia folder survives :meth:`restart`, so durable queues and persistent messages do.
    """

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = Path(base)
        self.port = port or free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.epmd: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        home = self.base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(os.urandom(16).hex())
            cookie.chmod(0o400)
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n")
        conf = self.base / "rabbitmq.conf"
        conf.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        return dict(
            os.environ,
            HOME=str(home),
            RABBITMQ_NODENAME=f"clara{self.port}@localhost",
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_CONFIG_FILE=str(conf),
            RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )

    def start(self, timeout_s: float = 120.0) -> RabbitNode:
        """Start epmd and the node; return once an AMQP connection succeeds."""
        env = self._env()
        log = open(self.base / "server.log", "ab")  # noqa: SIM115 - closed with the process
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [str(EPMD), "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait(self.ready, f"rabbitmq on 127.0.0.1:{self.port} (log {self.base / 'log'})", timeout_s, self.proc)
        return self

    def ready(self) -> bool:
        import kombu

        try:
            with kombu.Connection(self.url, connect_timeout=2) as conn:
                conn.connect()
            return True
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the node: SIGTERM to its process group (clean shutdown), or SIGKILL (a crash)."""
        _stop_group(self.proc, signal.SIGKILL if kill else signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and epmd."""
        self.stop()
        _stop_group(self.epmd)


class PgCluster:
    """A PostgreSQL 15 cluster made by initdb in a temporary folder, run as an unprivileged user.

    When running as root the cluster belongs to ``nobody`` (PostgreSQL refuses root); its folder
    lies under the system temp dir so that user can reach it.
    """

    def __init__(self, port: int | None = None, user: str = "nobody") -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="clara-pg-"))
        self.data = self.root / "data"
        self.as_user = user if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None

    def _cmd(self, *args: str) -> list[str]:
        if self.as_user is None:
            return list(args)
        pw = pwd.getpwnam(self.as_user)
        return ["/usr/bin/setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *args]

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://clara@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> PgCluster:
        if self.as_user is not None:
            pw = pwd.getpwnam(self.as_user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._cmd(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "clara", "--auth=trust", "-E", "UTF8"),
            check=True,
            capture_output=True,
            timeout=120,
        )
        return self

    def start(self, timeout_s: float = 60.0) -> PgCluster:
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self._cmd(
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=100",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self.ready, f"postgres on 127.0.0.1:{self.port} (log {self.root / 'postgres.log'})", timeout_s, self.proc)
        return self

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: int = signal.SIGINT) -> None:
        """Stop the postmaster (SIGINT: PostgreSQL's fast shutdown)."""
        _stop_group(self.proc, mode)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
