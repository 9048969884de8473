"""Helpers of ``dicom_ingest.py``: pinned dcmtk peers, ports, senders, the fsync probe, stopping.

(A leading underscore keeps ``run_all.py`` from running this module as a benchmark.)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np

ENV = dict(os.environ, TCP_NODELAY="1")
STORESCU, STORESCP, ORTHANC = "/usr/bin/storescu", "/usr/bin/storescp", "/usr/sbin/Orthanc"


def pinned(path: str, expect: str) -> str:
    """``path`` if it exists and its --version output names ``expect`` (never a PATH lookup)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise SystemExit(f"dicom_ingest: expected {expect} at {path}; got {exc}") from None
    if expect.lower() not in (out.stdout + out.stderr).lower():
        raise SystemExit(f"dicom_ingest: expected {expect} at {path}; its --version said {out.stdout[:120]!r}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")


def send(folders: list[Path], port: int, aec: str) -> float:
    """Wall seconds for one storescu per folder, all at once (one association each)."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [STORESCU, "-aet", "STORESCU", "-aec", aec, "127.0.0.1", str(port), "+sd", str(f)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # dcmtk logs its errors on stdout
        )
        for f in folders
    ]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"storescu to {aec} failed (exit {p.returncode}): {out.decode()[-800:]}")
    return time.perf_counter() - t0


def round_trips_ms(datasets: list, port: int, aec: str) -> np.ndarray:
    """Per C-STORE round trip (request sent → response received) from a pynetdicom SCU, Nagle off."""
    from pynetdicom import AE as SCU
    from pynetdicom import evt

    def nodelay(event) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    scu = SCU(ae_title="STORESCU")
    scu.dimse_timeout = scu.network_timeout = 120
    scu.add_requested_context(str(datasets[0].SOPClassUID), [str(datasets[0].file_meta.TransferSyntaxUID)])

    def connect():
        assoc = scu.associate("127.0.0.1", port, ae_title=aec, evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)])
        assert assoc.is_established, f"no association with {aec}"
        return assoc

    assoc = connect()
    out, failed = [], 0
    try:
        for ds in datasets:
            t0 = time.perf_counter()
            rsp = assoc.send_c_store(ds)
            if rsp.get("Status") == 0:
                out.append((time.perf_counter() - t0) * 1000.0)
                continue
            failed += 1  # no/failed response (seen rarely from storescp under load): new association
            if assoc.is_established:
                assoc.abort()
            assoc = connect()
    finally:
        if assoc.is_established:
            assoc.release()
    if failed:
        print(f"warning: {failed} of {len(datasets)} C-STOREs to {aec} got no success response; not timed")
    return np.asarray(out)


def stop_service(proc: subprocess.Popen, log) -> None:
    """SIGTERM and wait; a stop slower than the service's own bound (drain 20 s + acceptor join
    30 s) is reported with the service's log tail, then the process is killed."""
    t0 = time.perf_counter()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        print(f"warning: dicom serve took over 60 s to stop; killed. Log tail:\n{Path(log.name).read_text()[-1500:]}")
    else:
        if time.perf_counter() - t0 > 10:
            print(f"warning: dicom serve took {time.perf_counter() - t0:.0f} s to stop. Log tail:\n"
                  f"{Path(log.name).read_text()[-1500:]}")  # fmt: skip
    log.close()


def wait_listeners(pid: int, port: int, n: int, timeout_s: float = 60.0) -> None:
    """Until ``n`` processes (the service and its acceptors) listen on ``port``."""
    import psutil

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        procs = [psutil.Process(pid), *psutil.Process(pid).children()]
        listening = 0
        for p in procs:
            try:
                conns = p.net_connections(kind="tcp")
            except psutil.Error:
                continue
            listening += any(c.status == "LISTEN" and c.laddr.port == port for c in conns)
        if listening >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{n} acceptors did not listen on {port}")


#: ``--defer-cleanup``: move earlier files aside and delete them when the run ends
DEFER_CLEANUP: list[bool] = [False]


def fresh(folder: Path) -> None:
    """An empty ``folder``: what it held (the previous repeat's files) is deleted, or with
    ``--defer-cleanup`` moved to ``<parent>/trash`` and deleted when the run ends.

    Deleting right before a case has a cost on this disk: its ext4 runs without a journal, and
    there every new inode is checked against inodes deleted in the last ~30 s (the allocator's
    ``recently_deleted``). Right after 2000 files were deleted, file creation was 37 % of the
    service's samples under perf. Deferring keeps up to ~4 GB (5 repeats) until the end."""
    if DEFER_CLEANUP[0] and folder.exists():
        trash = folder.parent / "trash"
        trash.mkdir(exist_ok=True)
        folder.rename(trash / f"{folder.name}-{time.monotonic_ns()}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def sync_ms(folder: Path, size: int, n: int = 40) -> list[float]:
    """Create + write + fdatasync + rename of ``size`` bytes in ``folder``, ``n`` times (ms each)."""
    fresh(folder)
    payload, out = os.urandom(size), []
    for i in range(n):
        t0 = time.perf_counter()
        fd = os.open(folder / f"{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, payload)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(folder / f"{i}.tmp", folder / f"{i}.dcm")
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def pct(a: np.ndarray) -> str:
    return " / ".join(f"{np.percentile(a, p):.2f}" for p in (50, 90, 99))
