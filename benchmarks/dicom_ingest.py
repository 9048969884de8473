"""DICOM ingest: dcmtk storescu → dcmtk storescp, Orthanc and ``clara-stream dicom serve``, one run.

Every receiver gets the same 200 × 512² CT series (``clara_stream.samples.ct``) from dcmtk
``storescu`` with ``TCP_NODELAY=1``, interleaved in the same run (storescp, Orthanc, ours on the
fast receive path, ours on the pynetdicom path, ours without fsync (the receive path's CPU alone;
never a service setting), ours with 4 concurrent associations on 1 and on ``--acceptors`` processes,
and one association on ``--acceptors`` processes too, so the 4-association ratio compares the same
service configuration (what a site with concurrent senders sets); repeated). Each repeat also times
create + write + fdatasync + rename of a file of one instance's size in the same folder, so the cost
of durability on this disk is printed beside the rates. Peers are resolved by absolute path
(``/usr/bin/storescu``, ``/usr/bin/storescp``, ``/usr/sbin/Orthanc``) and their version output
checked, so the venv's pynetdicom scripts of the same names never stand in for dcmtk. Prints
instances/s (median, min–max) per receiver, the ratios ours / storescp (target ≥ 0.5), ours /
Orthanc (target ≥ 1.5) and 4 associations / 1 association (target ≥ 1.6, like for like on
``--acceptors`` and on the default single acceptor), the service's CPU per instance (user + system),
the storescu senders' CPU per instance, the box's idle and iowait share, per-C-STORE round-trip
percentiles (a pynetdicom SCU with Nagle off), and the time from the last instance to the start of
the job it triggers (AE idle timeout 1 s).

storescp never fsyncs; Orthanc runs with its default ``SyncStorageArea`` (fdatasync per file,
answer after the write); ours answers only after the whole dataset is checked, fdatasync'ed,
renamed and indexed.

    python benchmarks/dicom_ingest.py [--instances 200] [--size 512] [--repeats 3] [--acceptors 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from _ingest_peers import (
    DEFER_CLEANUP,
    ENV,
    ORTHANC,
    STORESCP,
    STORESCU,
    free_port,
    fresh,
    pct,
    pinned,
    round_trips_ms,
    send,
    stop_service,
    sync_ms,
    wait_listeners,
    wait_port,
)

AE = "BENCH"


def run_anchor(series: Path, datasets: list, work: Path) -> tuple[float, np.ndarray]:
    out = work / "storescp"
    fresh(out)
    port = free_port()
    proc = subprocess.Popen(
        [STORESCP, "-aet", "ANCHOR", "-od", str(out), str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        wall = send([series], port, "ANCHOR")
        rtt = round_trips_ms(datasets, port, "ANCHOR")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    files = [p for p in out.iterdir() if p.is_file()]
    assert len(files) == len(list(series.iterdir())), "storescp lost instances"
    return wall, rtt


def run_orthanc(series: Path, datasets: list, work: Path) -> tuple[float, np.ndarray]:
    """Orthanc with its default SyncStorageArea (fdatasync per file before the answer)."""
    folder = work / "orthanc"
    fresh(folder)
    dicom_port, http_port = free_port(), free_port()
    cfg = folder / "orthanc.json"
    cfg.write_text(
        json.dumps(
            {
                "Name": "bench",
                "StorageDirectory": str(folder / "db"),
                "IndexDirectory": str(folder / "db"),
                "DicomAet": "ORTHANC",
                "DicomPort": dicom_port,
                "HttpPort": http_port,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "DicomCheckCalledAet": False,
                "Plugins": [],
                "SyncStorageArea": True,
            }
        )
    )
    proc = subprocess.Popen([ORTHANC, str(cfg)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(http_port)
        wait_port(dicom_port)
        wall = send([series], dicom_port, "ORTHANC")
        stats = httpx.get(f"http://127.0.0.1:{http_port}/statistics", timeout=30).json()
        assert stats["CountInstances"] == len(datasets), "Orthanc lost instances"
        rtt = round_trips_ms(datasets, dicom_port, "ORTHANC")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return wall, rtt


def run_ours(
    series: Path,
    datasets: list,
    work: Path,
    *,
    quarters: list[Path] | None = None,
    acceptors: int = 1,
    receive_path: str = "fast",
    fsync: bool = True,
    plain: bool = False,
) -> tuple[float, np.ndarray | None, float | None]:
    """Our service: one association (then a job and round trips), or 4 concurrent ones (quarters).

    ``receive_path="pynetdicom"``: pynetdicom's reactor path instead of our upper-layer loop;
    ``fsync=False`` (never in service): what the receive path costs without the disk's sync;
    ``plain``: throughput only (no job, no round trips), as the 4-association cases.
    """
    data = work / f"ours-{acceptors}-{bool(quarters)}-{receive_path}-{fsync}"
    fresh(data)
    seed = work / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "sources": [{"name": "scu", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
                "aes": [
                    {"name": "bench", "aeTitle": AE, "timeout": 1, "workflows": ["hello_stream"]},
                    {"name": "many", "aeTitle": "MANY", "timeout": 1, "workflows": []},
                    {"name": "rtt", "aeTitle": "RTT", "timeout": 1, "workflows": []},
                ],
            }
        )
    )
    env = dict(os.environ, CLARA_STREAM_POLL_INTERVAL_S="0.05", CLARA_STREAM_RECEIVE_PATH=receive_path)
    env["CLARA_STREAM_FSYNC"] = str(fsync).lower()
    cmd = [sys.executable, "-m", "clara_stream.cli", "dicom", "serve", "--data-dir", str(data)]
    cmd += ["--dicom-port", "0", "--http-port", "0", "--seed", str(seed), "--log-level", "warning"]
    cmd += ["--acceptors", str(acceptors)]
    log = open(data.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in stop_service
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        info_path = data / "service.json"
        deadline = time.time() + 60
        while not info_path.exists():
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("dicom serve did not start")
            time.sleep(0.05)
        info = json.loads(info_path.read_text())
        wait_port(info["httpPort"])
        if acceptors > 1:
            wait_listeners(proc.pid, info["dicomPort"], acceptors)
        plain = plain or bool(quarters) or receive_path != "fast" or not fsync  # throughput only: no job, no RTTs
        aec = "MANY" if plain else AE
        import psutil

        service = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]

        def snapshot():  # the service's processes, the box, and our reaped children (the senders)
            return [p.cpu_times() for p in service], psutil.cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)

        cpu0, box0, kids0 = snapshot()
        wall = send(quarters or [series], info["dicomPort"], aec)
        cpu1, box1, kids1 = snapshot()
        user = sum(b.user - a.user for a, b in zip(cpu0, cpu1))
        system = sum(b.system - a.system for a, b in zip(cpu0, cpu1))
        senders = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime  # the storescu, reaped
        total = max(1e-9, sum(box1) - sum(box0))
        idle, iowait = (box1.idle - box0.idle) / total, (box1.iowait - box0.iowait) / total
        per = 1000.0 / len(datasets)
        LAST_USAGE[:] = [(user + system) * per, idle * 100.0, user * per, system * per, senders * per, iowait * 100.0]
        files = list((data / "store" / aec).rglob("*.dcm"))
        assert len(files) == len(datasets), "our SCP lost instances"
        if plain:
            return wall, None, None
        api = httpx.Client(base_url=f"http://127.0.0.1:{info['httpPort']}", timeout=10)
        deadline = time.time() + 120
        while True:
            jobs = api.get("/jobs").json()
            if jobs and jobs[0]["startedAt"]:
                break
            if time.time() > deadline:
                raise RuntimeError("no job started")
            time.sleep(0.02)
        to_start = jobs[0]["startedAt"] - max(f.stat().st_mtime for f in files)
        while api.get(f"/jobs/{jobs[0]['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.05)  # let the job finish so it does not load what follows
        rtt = round_trips_ms(datasets, info["dicomPort"], "RTT")
    except Exception:
        log.flush()
        print(f"dicom serve's log tail ({data.name}):\n{data.with_suffix('.log').read_text()[-2000:]}")
        raise
    finally:
        stop_service(proc, log)
    return wall, rtt, to_start


#: of the last run_ours, while sending: service CPU ms/instance, box idle %, service user and system
#: ms/instance, the storescu senders' CPU ms/instance, box iowait % (the fdatasync waits show there)
LAST_USAGE: list[float] = []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--acceptors", type=int, default=2, help="acceptor processes for the 4-association case")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--defer-cleanup",
        action="store_true",
        help="delete earlier cases' files when the run ends, not right before the next case (see fresh())",
    )
    args = ap.parse_args(argv)
    DEFER_CLEANUP[0] = args.defer_cleanup
    for path, who in ((STORESCU, "dcmtk"), (STORESCP, "dcmtk"), (ORTHANC, "orthanc")):
        pinned(path, who)
    from pydicom import dcmread

    from clara_stream.samples.ct import write_sample

    work = Path(tempfile.mkdtemp(prefix="dicom_ingest-"))
    n = args.instances
    many = f"ours, 4 assoc, {args.acceptors} acceptors"
    one_n = f"ours, 1 assoc, {args.acceptors} acceptors"  # like for like with `many`: the same service
    rates: dict[str, list[float]] = {
        "storescp": [],
        "orthanc": [],
        "ours": [],
        "ours, pynetdicom path": [],
        "ours, no fsync (CPU only)": [],
        "ours, 4 assoc, 1 acceptor": [],
        one_n: [],
        many: [],
    }
    gaps: dict[str, list[np.ndarray]] = {"storescp": [], "orthanc": [], "ours": []}
    usage: dict[str, list[list[float]]] = {k: [] for k in rates if k.startswith("ours")}
    to_start: list[float] = []
    syncs: list[float] = []
    try:
        series = write_sample(work / "ct", shape=(n, args.size, args.size))["dicom"]
        datasets = [dcmread(p) for p in sorted(series.iterdir())]
        quarters = [work / f"q{i}" for i in range(4)]
        for i, p in enumerate(sorted(series.iterdir())):
            quarters[i % 4].mkdir(exist_ok=True)
            os.link(p, quarters[i % 4] / p.name)
        instance_bytes = next(series.iterdir()).stat().st_size
        for _ in range(args.repeats):
            syncs += sync_ms(work / "sync", instance_bytes)
            wall, iv = run_anchor(series, datasets, work)
            rates["storescp"].append(n / wall)
            gaps["storescp"].append(iv)
            wall, iv = run_orthanc(series, datasets, work)
            rates["orthanc"].append(n / wall)
            gaps["orthanc"].append(iv)
            wall, iv, ts = run_ours(series, datasets, work)
            usage["ours"].append(LAST_USAGE[:])
            rates["ours"].append(n / wall)
            gaps["ours"].append(iv)
            to_start.append(ts)
            wall, _, _ = run_ours(series, datasets, work, receive_path="pynetdicom")
            usage["ours, pynetdicom path"].append(LAST_USAGE[:])
            rates["ours, pynetdicom path"].append(n / wall)
            wall, _, _ = run_ours(series, datasets, work, fsync=False)
            usage["ours, no fsync (CPU only)"].append(LAST_USAGE[:])
            rates["ours, no fsync (CPU only)"].append(n / wall)
            wall, _, _ = run_ours(series, datasets, work, quarters=quarters, acceptors=1)
            usage["ours, 4 assoc, 1 acceptor"].append(LAST_USAGE[:])
            rates["ours, 4 assoc, 1 acceptor"].append(n / wall)
            wall, _, _ = run_ours(series, datasets, work, acceptors=args.acceptors, plain=True)
            usage[one_n].append(LAST_USAGE[:])
            rates[one_n].append(n / wall)
            wall, _, _ = run_ours(series, datasets, work, quarters=quarters, acceptors=args.acceptors)
            usage[many].append(LAST_USAGE[:])
            rates[many].append(n / wall)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    ratios = {
        "ours / storescp (target ≥ 0.5)": med["ours"] / med["storescp"],
        "ours / orthanc (target ≥ 1.5)": med["ours"] / med["orthanc"],
        f"4 assoc / 1 assoc, both on --acceptors {args.acceptors} (the site setting for concurrent senders; "
        "target ≥ 1.6)": med[many] / med[one_n],
        "4 assoc / 1 assoc, both on the default 1 acceptor (target ≥ 1.6)": med["ours, 4 assoc, 1 acceptor"]
        / med["ours"],
        f"4 assoc on {args.acceptors} acceptors / 1 assoc on 1 (as recorded before)": med[many] / med["ours"],
        "ours without fsync / storescp (the receive path's CPU alone)": med["ours, no fsync (CPU only)"]
        / med["storescp"],
        "fast path / pynetdicom path": med["ours"] / med["ours, pynetdicom path"],
    }
    load = os.getloadavg()
    print(
        f"dicom_ingest: {n} × {args.size}² CT, storescu TCP_NODELAY=1, {args.repeats} repeats interleaved, "
        f"{platform.machine()} {os.cpu_count()} cores, load {load[0]:.1f}/{load[1]:.1f}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, earlier files deleted "
        f"{'when the run ends' if args.defer_cleanup else 'before each case'}"
    )
    head = f"{'receiver':<30} {'inst/s median':>14} {'min–max':>16} {'C-STORE RTT ms p50/p90/p99':>28}"
    print(head + f" {'service CPU ms/inst (user+sys)':>31} {'storescu CPU':>12} {'box idle %':>10} {'iowait %':>8}")
    for k in rates:
        lo, hi = min(rates[k]), max(rates[k])
        rtt = pct(np.concatenate(gaps[k])) if k in gaps else "-"
        tail = ""
        if k in usage:
            cpu, idle, user, system, senders, iowait = (statistics.median(u[i] for u in usage[k]) for i in range(6))
            svc = f"{cpu:.2f} ({user:.2f}+{system:.2f})"
            tail = f" {svc:>31} {senders:>12.2f} {idle:>10.0f} {iowait:>8.0f}"
        print(f"{k:<30} {med[k]:>14.1f} {lo:>7.1f}–{hi:<8.1f} {rtt:>28}{tail}")
    print(
        f"CPU columns: ms per instance while sending (median of the repeats); storescu = the senders' own CPU. "
        f"The 4-association cases and '{one_n}' run the service with the same settings as a site with "
        f"concurrent senders would (--acceptors {args.acceptors}); 'ours' and '4 assoc, 1 acceptor' use the default."
    )
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    sy = np.asarray(syncs)
    print(
        f"durability on this disk: create+write+fdatasync+rename of one instance ({instance_bytes / 1024:.0f} KiB) "
        f"p50/p90/p99 {pct(sy)} ms over {len(sy)} files, interleaved with the receivers"
    )
    ts = np.asarray(to_start)
    print(
        f"last instance → job start: median {np.median(ts):.2f} s (min {ts.min():.2f}, max {ts.max():.2f}); "
        f"idle timeout 1 s, excess median {np.median(ts) - 1:.2f} s"
    )
    if args.json:
        rows = [
            {
                "case": f"{n}×{args.size}² CT, {k}",
                "metric": "instances/s (median)",
                "value": round(med[k], 1),
                "anchor": "dcmtk storescp",
                "anchor_value": round(med["storescp"], 1),
                "ratio": round(med[k] / med["storescp"], 3),
            }
            for k in rates
        ]
        rows += [{"case": name, "metric": "ratio", "value": round(v, 3)} for name, v in ratios.items()]
        args.json.write_text(json.dumps({"benchmark": "dicom_ingest", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
