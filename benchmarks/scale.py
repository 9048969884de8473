"""Job platform at scale: embedded (SQLite + local subprocess) vs celery (RabbitMQ + PostgreSQL)
with 1 and 2 ``clara-stream worker`` processes, in one run, rounds interleaved.

Per backend and round:
- dispatch latency: jobs submitted one at a time to idle workers; submit → start (the job row's
  ``created_at`` → ``started_at``, both written by the platform) p50 / p95;
- throughput, sleep-bound: N probe jobs that sleep ``--sleep-s`` submitted at once; jobs/s from
  the first submit to the last finish;
- throughput, CPU-bound: the same with no sleep (each job is an app process start: CPU on this box).

The anchor is the embedded backend with one slot; ``2 workers / 1 worker`` is printed for both
throughput cases (target ≥ 1.8 sleep-bound). Usage:
``python benchmarks/scale.py [--jobs 6] [--latency-jobs 8] [--sleep-s 2] [--rounds 2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from clara_stream.platform import devpeers
from clara_stream.platform.schemas import JobSubmit, PipelineConfig
from clara_stream.platform.service import PlatformService
from clara_stream.platform.settings import PlatformSettings

APPS = Path(__file__).resolve().parents[1] / "tests" / "platform" / "apps"
DONE = ("succeeded", "failed", "cancelled")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class Backend:
    def __init__(self, name: str, tmp: Path, workers: int, rabbit=None, pg=None) -> None:
        self.name, self.tmp, self.n_workers = name, tmp, workers
        self.rabbit, self.pg = rabbit, pg
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Backend:
        data = self.tmp / f"{self.name}-{uuid.uuid4().hex[:6]}"
        common = dict(
            data_dir=data,
            app_roots=[APPS],
            input_roots=[self.tmp],
            dicom_port=0,
            http_port=0,
            poll_interval_s=0.05,
            retention_interval_s=0,
        )
        if self.rabbit is None:
            settings = PlatformSettings(**common, max_concurrent_jobs=self.n_workers)
        else:
            db_url = self.pg.create_database(f"b{uuid.uuid4().hex[:10]}")
            settings = PlatformSettings(**common, scheduler="celery", broker_url=self.rabbit.url, database_url=db_url)
        self.svc = PlatformService(settings, dicom=False)
        self.svc.start()
        if self.rabbit is not None:
            for k in range(self.n_workers):
                wd = data / f"node{k}"
                wd.mkdir(parents=True)
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "clara_stream.cli",
                            "worker",
                            "--broker",
                            self.rabbit.url,
                            "--database",
                            db_url,
                            "--queues",
                            "cpu",
                            "--data-dir",
                            str(wd),
                            "--shared-dir",
                            str(self.tmp),
                            "--app-root",
                            str(APPS),
                            "--name",
                            f"n{k}",
                            "--poll-interval-s",
                            "0.05",
                            "--log-level",
                            "warning",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            self.wait_consumers()
        for name, sleep in (("sleep", ARGS.sleep_s), ("cpu", 0.0)):
            self.svc.config.put_pipeline(
                PipelineConfig(
                    name=name, app=str(APPS / "probe"), cpu_memory_mb=1, overrides=[f"probe.sleep_s={sleep}"]
                )
            )
        self.inbox = self.tmp / "inbox"
        self.inbox.mkdir(exist_ok=True)
        return self

    def wait_consumers(self) -> None:
        import kombu

        while True:
            with kombu.Connection(self.rabbit.url) as conn:
                if conn.channel().queue_declare("cpu", passive=True)[2] == self.n_workers:
                    return
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(timeout=60)
        self.svc.stop()

    def submit(self, pipeline: str) -> str:
        return self.svc.submit(JobSubmit(pipeline=pipeline, input=str(self.inbox))).id

    def wait(self, ids: list[str]) -> list:
        while True:
            infos = [self.svc.queue.get(i) for i in ids]
            if all(j.status in DONE for j in infos):
                bad = [j.error for j in infos if j.status != "succeeded"]
                if bad:
                    raise RuntimeError(f"scale bench: a job failed: {bad[0]}")
                return infos
            time.sleep(0.02)

    def latency(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            (j,) = self.wait([self.submit("cpu")])
            out.append((j.started_at - j.created_at) * 1000)
        return out

    def throughput(self, pipeline: str, n: int) -> float:
        ids = [self.submit(pipeline) for _ in range(n)]
        infos = self.wait(ids)
        return n / (max(j.finished_at for j in infos) - min(j.created_at for j in infos))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clara-scale-"))
    rabbit = devpeers.RabbitNode(tmp / "rabbit")
    (tmp / "rabbit").mkdir()
    rabbit.start()
    pg = devpeers.PgCluster().init().start()
    cases = [
        ("embedded (1 slot)", 1, None, None),
        ("celery, 1 worker", 1, rabbit, pg),
        ("celery, 2 workers", 2, rabbit, pg),
    ]
    res = {c[0]: {"lat": [], "sleep": [], "cpu": []} for c in cases}
    try:
        for r in range(ARGS.rounds):
            for name, workers, rb, p in cases[r % 3 :] + cases[: r % 3]:  # rotate the order each round
                with Backend(name.split(" ")[0], tmp, workers, rb, p) as b:
                    res[name]["lat"] += b.latency(ARGS.latency_jobs)
                    res[name]["sleep"].append(b.throughput("sleep", ARGS.jobs))
                    res[name]["cpu"].append(b.throughput("cpu", ARGS.jobs))
                print(f"round {r + 1}: {name} done", file=sys.stderr)
    finally:
        rabbit.close()
        pg.close()
    rows = []
    anchor = "embedded (1 slot)"
    for name, v in res.items():
        lat = v["lat"]
        for metric, val, anc in (
            ("dispatch p50 ms", pct(lat, 0.5), pct(res[anchor]["lat"], 0.5)),
            ("dispatch p95 ms", pct(lat, 0.95), pct(res[anchor]["lat"], 0.95)),
            (
                "jobs/s sleep-bound (median of rounds)",
                statistics.median(v["sleep"]),
                statistics.median(res[anchor]["sleep"]),
            ),
            ("jobs/s CPU-bound (median of rounds)", statistics.median(v["cpu"]), statistics.median(res[anchor]["cpu"])),
        ):
            rows.append(
                dict(
                    case=name,
                    metric=metric,
                    value=round(val, 3),
                    anchor=anchor,
                    anchor_value=round(anc, 3),
                    ratio=round(val / anc, 3) if anc else None,
                )
            )
        print(
            f"{name:20s} dispatch p50 {pct(lat, 0.5):7.1f} ms p95 {pct(lat, 0.95):7.1f} ms | "
            f"sleep-bound jobs/s {[round(x, 3) for x in v['sleep']]} | "
            f"CPU-bound jobs/s {[round(x, 3) for x in v['cpu']]}"
        )
    one, two = res["celery, 1 worker"], res["celery, 2 workers"]
    for kind in ("sleep", "cpu"):
        ratios = [b / a for a, b in zip(one[kind], two[kind])]
        print(
            f"2 workers / 1 worker, {kind}-bound: per round {[round(x, 2) for x in ratios]} (target ≥ 1.8 sleep-bound)"
        )
        rows.append(
            dict(
                case="celery, 2 workers",
                metric=f"jobs/s {kind}-bound vs 1 worker (median of rounds)",
                value=round(statistics.median(two[kind]), 3),
                anchor="celery, 1 worker",
                anchor_value=round(statistics.median(one[kind]), 3),
                ratio=round(statistics.median(ratios), 3),
            )
        )
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps({"benchmark": "scale", "rows": rows}, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--latency-jobs", type=int, default=8)
    ap.add_argument("--sleep-s", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default="")
    ARGS = ap.parse_args()
    main()
