"""Load generator: submit N jobs at a rate (over REST or as DICOM sends) and measure them.

Each DICOM send rewrites Study/Series/SOP Instance UIDs (fresh, under the pydicom generated-UID
root) so every send forms its own group and job, as distinct patients would.
"""

from __future__ import annotations

import io
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from clara_stream.platform import scu
from clara_stream.platform.jobs import FINISHED

PERCENTILES = (50, 90, 95, 99)


@dataclass
class LoadReport:
    """What a load run did and how long jobs took (submit → finished, seconds)."""

    submitted: int
    succeeded: int
    failed: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)

    @property
    def throughput_jobs_s(self) -> float:
        return self.succeeded / self.wall_s if self.wall_s > 0 else 0.0

    def percentiles(self) -> dict[str, float]:
        if not self.latencies_s:
            return {}
        arr = np.asarray(self.latencies_s)
        out = {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES}
        out["max"] = float(arr.max())
        return out

    def lines(self) -> list[str]:
        pct = "  ".join(f"{k} {v:.2f} s" for k, v in self.percentiles().items())
        return [
            f"jobs: {self.submitted} submitted, {self.succeeded} succeeded, {self.failed} failed "
            f"in {self.wall_s:.2f} s",
            f"throughput: {self.throughput_jobs_s:.3f} jobs/s",
            f"job latency (submit → finished): {pct or 'n/a'}",
        ]


def cases(dataset: Path) -> list[Path]:
    """Case folders of a dataset: its subfolders holding files, else the dataset itself."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise ValueError(f"loadgen: expected a dataset folder; got {str(dataset)!r}")
    subs = sorted(d for d in dataset.iterdir() if d.is_dir() and any(p.is_file() for p in d.rglob("*")))
    return subs or [dataset]


def _renamed(folder: Path) -> list:
    """The case's DICOM datasets with fresh Study/Series/SOP Instance UIDs (consistent per series)."""
    study = generate_uid()
    series: dict[str, str] = {}
    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        with open(p, "rb") as f:
            data = f.read()
        if data[128:132] != b"DICM":
            continue
        ds = dcmread(io.BytesIO(data))
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out.append(ds)
    if not out:
        raise ValueError(f"loadgen: expected DICOM files in case {folder}; got none")
    return out


class LoadGenerator:
    """Drives a running ``dicom serve`` through its REST API (and its SCP for ``via='dicom'``)."""

    def __init__(self, api: str, *, timeout_s: float = 600.0, calling_ae: str = "LOADGEN") -> None:
        self.api = api.rstrip("/")
        token = os.environ.get("CLARA_STREAM_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.api, timeout=30.0, headers=headers)
        self.timeout_s = timeout_s
        self.calling_ae = calling_ae

    def _ae_for(self, pipeline: str) -> str:
        aes = self.client.get("/config/ae").raise_for_status().json()
        for ae in aes:
            if pipeline in ae["workflows"]:
                return ae["aeTitle"]
        raise ValueError(
            f"loadgen: expected an AE whose workflows include {pipeline!r}; got "
            f"{[(a['aeTitle'], a['workflows']) for a in aes]}"
        )

    def run(
        self,
        *,
        pipeline: str,
        dataset: Path,
        jobs: int,
        rate: float,
        order: str = "sequential",
        priority: int = 0,
        via: str = "api",
        seed: int = 0,
    ) -> LoadReport:
        """Submit ``jobs`` jobs at ``rate`` per second (0: as fast as possible), wait, report."""
        if jobs < 1:
            raise ValueError(f"loadgen: expected --jobs >= 1; got {jobs}")
        if rate < 0:
            raise ValueError(f"loadgen: expected --rate >= 0 jobs/s; got {rate}")
        if order not in ("sequential", "random") or via not in ("api", "dicom"):
            raise ValueError(f"loadgen: expected --order sequential|random and --via api|dicom; got {order}, {via}")
        pool = cases(dataset)
        rng = random.Random(seed)
        picks = [pool[i % len(pool)] if order == "sequential" else rng.choice(pool) for i in range(jobs)]
        if via == "dicom":
            health = self.client.get("/health").raise_for_status().json()
            host, port, aec = urlparse(self.api).hostname, health["dicomPort"], self._ae_for(pipeline)
            before = {j["id"] for j in self.client.get("/jobs", params={"limit": 10000}).json()}
        t0 = time.time()
        submit_times: list[float] = []
        ids: list[str] = []
        for i, case in enumerate(picks):
            if rate > 0:
                time.sleep(max(0.0, t0 + i / rate - time.time()))
            submit_times.append(time.time())
            if via == "api":
                r = self.client.post(
                    "/jobs", json={"pipeline": pipeline, "input": str(case.resolve()), "priority": priority}
                )
                if r.status_code != 201:
                    raise ValueError(f"loadgen: POST /jobs answered {r.status_code}: {r.text}")
                ids.append(r.json()["id"])
            else:
                report = scu.store_datasets(_renamed(case), host, port, aec, calling_ae=self.calling_ae)
                if report.failed:
                    raise ValueError(
                        f"loadgen: C-STORE to {aec} failed for {len(report.failed)} instance(s): "
                        f"{next(iter(report.failed.values()))}"
                    )
        if via == "dicom":
            ids = self._await_new_jobs(before, pipeline, jobs)
        final = self._await_finished(ids)
        wall = max((j["finishedAt"] or time.time()) for j in final) - t0
        lat = [j["finishedAt"] - s for j, s in zip(final, submit_times, strict=True) if j["status"] == "succeeded"]
        return LoadReport(
            submitted=jobs,
            succeeded=sum(j["status"] == "succeeded" for j in final),
            failed=sum(j["status"] != "succeeded" for j in final),
            wall_s=wall,
            latencies_s=lat,
            job_ids=ids,
        )

    def _await_new_jobs(self, before: set[str], pipeline: str, n: int) -> list[str]:
        deadline = time.time() + self.timeout_s
        while time.time() < deadline:
            jobs = self.client.get("/jobs", params={"pipeline": pipeline, "limit": 10000}).json()
            new = sorted((j for j in jobs if j["id"] not in before), key=lambda j: j["createdAt"])
            if len(new) >= n:
                return [j["id"] for j in new[:n]]
            time.sleep(0.2)
        raise TimeoutError(f"loadgen: expected {n} jobs from the DICOM sends within {self.timeout_s} s")

    def _await_finished(self, ids: list[str]) -> list[dict]:
        deadline = time.time() + self.timeout_s
        done: dict[str, dict] = {}
        while time.time() < deadline:
            for jid in ids:
                if jid not in done:
                    j = self.client.get(f"/jobs/{jid}").raise_for_status().json()
                    if j["status"] in FINISHED:
                        done[jid] = j
            if len(done) == len(ids):
                return [done[j] for j in ids]
            time.sleep(0.2)
        raise TimeoutError(
            f"loadgen: expected {len(ids)} jobs finished within {self.timeout_s} s; {len(done)} finished"
        )
