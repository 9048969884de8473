"""Fixtures for the platform tests: sample CT, in-process service parts, real dcmtk/Orthanc peers.

Every peer binds 127.0.0.1 on a free port, is started here and stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clara_stream.platform.settings import PlatformSettings

NODELAY_ENV = dict(os.environ, TCP_NODELAY="1")
APPS = Path(__file__).parent / "apps"  # the probe test app; configured as an app root
#: Real peers by absolute path: the venv's pynetdicom console scripts of the same names would
#: shadow dcmtk's on PATH. Identity is checked by version output (root conftest ``resolve_peer``).
DCMTK = {name: f"/usr/bin/{name}" for name in ("storescu", "storescp", "echoscu")}
ORTHANC = "/usr/sbin/Orthanc"


class Dcmtk:
    """dcmtk's tools, resolved by absolute path with their identity checked."""

    storescu: str
    storescp: str
    echoscu: str

    def __init__(self, resolve) -> None:
        for name, path in DCMTK.items():
            setattr(self, name, str(resolve(path, ["--version"], "dcmtk")))


@pytest.fixture(scope="session")
def dcmtk(peer) -> Dcmtk:
    """``dcmtk.storescu`` etc.: absolute paths of dcmtk's binaries (skip, or fail under CI, if absent)."""
    return Dcmtk(peer)


def pick_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, what: str, timeout_s: float = 60.0, poll_s: float = 0.1):
    """Poll ``cond()`` until it is truthy and return its value.

    The limit is a liveness guard so a hung peer fails the test with ``what`` instead of stalling
    CI; it checks that something happens, never how fast.
    """
    limit = time.monotonic() + timeout_s
    while not (value := cond()):
        if time.monotonic() > limit:
            pytest.fail(f"{what}: still not the case after {timeout_s:.0f} s (hung peer or job?)")
        time.sleep(poll_s)
    return value


def wait_port(port: int, timeout_s: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"peer exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def stop_pid(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ct_small(tmp_path_factory) -> Path:
    """A 16 x 64² phantom CT series (real DICOM files) from clara_stream.samples.ct."""
    from clara_stream.samples.ct import write_sample

    return write_sample(tmp_path_factory.mktemp("ct_small"), shape=(16, 64, 64))["dicom"]


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for CN=localhost and its key (real openssl)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "/usr/bin/openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def settings(tmp_path) -> PlatformSettings:
    return PlatformSettings(
        data_dir=tmp_path / "data",
        app_roots=[APPS],
        input_roots=[tmp_path],
        dicom_port=0,
        http_port=0,
        poll_interval_s=0.05,
        export_backoff_s=0.2,
        export_max_attempts=3,
    )


class Storescp:
    """A dcmtk storescp writing every received instance under ``folder``."""

    def __init__(self, folder: Path, exe: str, ae_title: str = "DEST") -> None:
        self.folder = folder
        self.exe = exe
        self.ae_title = ae_title
        self.port = pick_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Storescp:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.exe, "-aet", self.ae_title, "-od", str(self.folder), "--accept-all", str(self.port)],
            env=NODELAY_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())


@pytest.fixture
def storescp(tmp_path, dcmtk) -> Iterator[Storescp]:
    scp = Storescp(tmp_path / "storescp", dcmtk.storescp).start()
    yield scp
    scp.stop()


class Orthanc:
    """The Debian Orthanc server with its own storage folder and a generated JSON config."""

    def __init__(self, folder: Path, exe: str = ORTHANC, ae_title: str = "ORTHANC") -> None:
        self.folder = folder
        self.exe = exe
        self.ae_title = ae_title
        self.dicom_port = pick_port()
        self.http_port = pick_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Orthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "clara-stream-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "Plugins": [],
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "StableAge": 1,
        }
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(config))
        self.log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.exe, str(cfg)], env=NODELAY_ENV, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.http_port, proc=self.proc)
        wait_port(self.dicom_port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.log.close()

    def api(self, path: str):
        return httpx.get(f"http://127.0.0.1:{self.http_port}{path}", timeout=10).raise_for_status().json()


@pytest.fixture
def orthanc(tmp_path, peer) -> Iterator[Orthanc]:
    exe = peer(ORTHANC, ["--version"], "orthanc")
    server = Orthanc(tmp_path / "orthanc", str(exe)).start()
    yield server
    server.stop()


class ServeProcess:
    """``clara-stream dicom serve`` in a subprocess (the real CLI entry, killable with -9)."""

    def __init__(self, data_dir: Path, seed: Path | None = None, extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.seed = seed
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self, timeout_s: float = 60.0) -> ServeProcess:
        info_file = self.data_dir / "service.json"
        info_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "clara_stream.cli", "dicom", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--dicom-port", "0", "--http-port", "0", "--app-root", str(APPS)]
        cmd += ["--input-root", str(self.data_dir.parent)]
        if self.seed:
            cmd += ["--seed", str(self.seed)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data_dir / f"serve-{time.time():.0f}.log", "ab")  # noqa: SIM115
        env = dict(os.environ, CLARA_STREAM_POLL_INTERVAL_S="0.05")
        self.proc = subprocess.Popen(cmd + self.extra, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout_s
        while not info_file.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"dicom serve did not start (rc {self.proc.poll()}); see {self.log.name}")
            time.sleep(0.05)
        self.info = json.loads(info_file.read_text())
        wait_port(self.info["httpPort"], proc=self.proc)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['httpPort']}"

    @property
    def dicom_port(self) -> int:
        return self.info["dicomPort"]

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc)
            self.log.close()


@pytest.fixture
def serve_factory(tmp_path) -> Iterator:
    started: list[ServeProcess] = []

    def make(seed: dict | None = None, extra: list[str] | None = None, data_dir: Path | None = None) -> ServeProcess:
        seed_file = None
        if seed is not None:
            seed_file = tmp_path / f"seed-{len(started)}.json"
            seed_file.write_text(json.dumps(seed))
        sp = ServeProcess(data_dir or tmp_path / "serve", seed_file, extra)
        started.append(sp)
        return sp

    yield make
    for sp in started:
        sp.stop()
