"""DICOM ingest: dcmtk storescu → our SCP (``clara-stream dicom serve``) against → dcmtk storescp.

Both receivers get the same 200 × 512² CT series (``clara_stream.samples.ct``) from dcmtk
``storescu`` with ``TCP_NODELAY=1``, interleaved in the same run (anchor, ours, ours without
fsync, repeated). Prints instances/s for each (median of the repeats, min–max beside it), the
ratio ours / storescp (target ≥ 0.7), per-C-STORE round-trip percentiles (a pynetdicom SCU with
Nagle off sends the same series to each receiver after storescu), and the time from the last
instance to the start of the job it triggers (the AE's idle timeout is 1 s; the excess is
grouping + scheduling).

Note the anchor never fsyncs; ours acknowledges an instance only after fdatasync + index commit.

    python benchmarks/dicom_ingest.py [--instances 200] [--size 512] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

ENV = dict(os.environ, TCP_NODELAY="1")
AE = "BENCH"


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


def send(folder: Path, port: int, aec: str) -> float:
    """Wall seconds for storescu to send the folder in one association."""
    t0 = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "STORESCU", "-aec", aec, "127.0.0.1", str(port), "+sd", str(folder)],
        env=ENV,
        check=True,
        capture_output=True,
    )
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


def run_anchor(series: Path, datasets: list, work: Path) -> tuple[float, np.ndarray]:
    out = work / "storescp"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        ["storescp", "-aet", "ANCHOR", "-od", str(out), str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        wall = send(series, port, "ANCHOR")
        rtt = round_trips_ms(datasets, port, "ANCHOR")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    files = [p for p in out.iterdir() if p.is_file()]
    assert len(files) == len(list(series.iterdir())), "storescp lost instances"
    return wall, rtt


def run_ours(series: Path, datasets: list, work: Path, fsync: bool) -> tuple[float, np.ndarray, float]:
    data = work / f"ours-{fsync}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    seed = work / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "sources": [{"name": "scu", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
                "aes": [
                    {"name": "bench", "aeTitle": AE, "timeout": 1, "workflows": ["hello_stream"]},
                    {"name": "rtt", "aeTitle": "RTT", "timeout": 1, "workflows": []},
                ],
            }
        )
    )
    env = dict(os.environ, CLARA_STREAM_FSYNC=str(fsync).lower(), CLARA_STREAM_POLL_INTERVAL_S="0.05")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clara_stream.cli",
            "dicom",
            "serve",
            "--data-dir",
            str(data),
            "--dicom-port",
            "0",
            "--http-port",
            "0",
            "--seed",
            str(seed),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info_path = data / "service.json"
        deadline = time.time() + 60
        while not info_path.exists():
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("dicom serve did not start")
            time.sleep(0.05)
        info = json.loads(info_path.read_text())
        wait_port(info["httpPort"])
        wall = send(series, info["dicomPort"], AE)
        api = httpx.Client(base_url=f"http://127.0.0.1:{info['httpPort']}", timeout=10)
        deadline = time.time() + 120
        while True:
            jobs = api.get("/jobs").json()
            if jobs and jobs[0]["startedAt"]:
                break
            if time.time() > deadline:
                raise RuntimeError("no job started")
            time.sleep(0.02)
        files = list((data / "store" / AE).glob("*.dcm"))
        assert len(files) == len(list(series.iterdir())), "our SCP lost instances"
        last = max(f.stat().st_mtime for f in files)
        to_start = jobs[0]["startedAt"] - last
        while api.get(f"/jobs/{jobs[0]['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.05)  # let the job finish so it does not load what follows
        rtt = round_trips_ms(datasets, info["dicomPort"], "RTT")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return wall, rtt, to_start


def pct(a: np.ndarray) -> str:
    return " / ".join(f"{np.percentile(a, p):.2f}" for p in (50, 90, 99))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from clara_stream.samples.ct import write_sample

    work = Path(tempfile.mkdtemp(prefix="dicom_ingest-"))
    try:
        series = write_sample(work / "ct", shape=(args.instances, args.size, args.size))["dicom"]
        from pydicom import dcmread

        datasets = [dcmread(p) for p in sorted(series.iterdir())]
        n = args.instances
        rates: dict[str, list[float]] = {"storescp": [], "ours": [], "ours_nofsync": []}
        gaps: dict[str, list[np.ndarray]] = {k: [] for k in rates}
        to_start: list[float] = []
        for _ in range(args.repeats):
            wall, iv = run_anchor(series, datasets, work)
            rates["storescp"].append(n / wall)
            gaps["storescp"].append(iv)
            wall, iv, ts = run_ours(series, datasets, work, fsync=True)
            rates["ours"].append(n / wall)
            gaps["ours"].append(iv)
            to_start.append(ts)
            wall, iv, _ = run_ours(series, datasets, work, fsync=False)
            rates["ours_nofsync"].append(n / wall)
            gaps["ours_nofsync"].append(iv)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["ours"] / med["storescp"]
    print(
        f"dicom_ingest: {n} × {args.size}² CT, storescu TCP_NODELAY=1, {args.repeats} repeats, "
        f"{platform.machine()} {os.cpu_count()} cores, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    print(f"{'receiver':<22} {'inst/s median':>14} {'min–max':>16} {'C-STORE RTT ms p50/p90/p99':>28}")
    for k in rates:
        lo, hi = min(rates[k]), max(rates[k])
        print(f"{k:<22} {med[k]:>14.1f} {lo:>7.1f}–{hi:<8.1f} {pct(np.concatenate(gaps[k])):>28}")
    print(
        f"ratio ours / storescp: {ratio:.2f} (target ≥ 0.7); without fsync: {med['ours_nofsync'] / med['storescp']:.2f}"
    )
    ts = np.asarray(to_start)
    print(
        f"last instance → job start: median {np.median(ts):.2f} s (min {ts.min():.2f}, max {ts.max():.2f}); "
        f"idle timeout 1 s, excess median {np.median(ts) - 1:.2f} s"
    )
    if args.json:
        rows = [
            {
                "case": f"{n}×{args.size}² CT, storescu",
                "metric": "instances/s (median)",
                "value": round(med["ours"], 1),
                "anchor": "dcmtk storescp",
                "anchor_value": round(med["storescp"], 1),
                "ratio": round(ratio, 3),
            },
            {
                "case": f"{n}×{args.size}² CT, no fsync",
                "metric": "instances/s (median)",
                "value": round(med["ours_nofsync"], 1),
                "anchor": "dcmtk storescp",
                "anchor_value": round(med["storescp"], 1),
                "ratio": round(med["ours_nofsync"] / med["storescp"], 3),
            },
            {
                "case": "last instance → job start",
                "metric": "s (median; idle timeout 1 s)",
                "value": round(float(np.median(ts)), 3),
                "anchor": "idle timeout",
                "anchor_value": 1.0,
                "ratio": round(float(np.median(ts)), 3),
            },
        ]
        args.json.write_text(json.dumps({"benchmark": "dicom_ingest", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
