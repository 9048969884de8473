"""The celery backend end to end: RabbitMQ, PostgreSQL, ``dicom serve --scheduler celery`` and
``clara-stream worker`` processes standing for nodes (separate data dirs; tmp is the shared store).

Jobs run the real CLI on the ``probe`` test app, gated by files the test creates (no sleeps).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psutil

from .conftest import APPS, wait_until
from .distributed import pg_cluster, queue_state, rabbit, scale  # noqa: F401 - fixtures

PROBE = str(APPS / "probe")
DONE = ("succeeded", "failed", "cancelled")


def register(api: httpx.Client, name: str, *, retries: int = 0, **cfg) -> None:
    body = {"name": name, "app": PROBE, "cpuMemoryMb": 64, "maxRetries": retries,
            "overrides": [f"probe.{k}={v}" for k, v in cfg.items()]}
    r = api.put(f"/pipelines/{name}", json=body)
    assert r.status_code in (200, 201), r.text


def submit(api: httpx.Client, pipeline: str, inbox: Path, priority: int = 0) -> str:
    r = api.post("/jobs", json={"pipeline": pipeline, "input": str(inbox), "priority": priority})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def job(api: httpx.Client, jid: str) -> dict:
    return api.get(f"/jobs/{jid}").json()


def wait_status(api: httpx.Client, ids: list[str], states=DONE, timeout_s: float = 120) -> list[dict]:
    def reached():
        jobs = [job(api, i) for i in ids]
        return jobs if all(j["status"] in states for j in jobs) else None

    return wait_until(reached, f"jobs {ids} reach {states}", timeout_s)


def inbox(tmp: Path) -> Path:
    d = tmp / "inbox"
    d.mkdir(exist_ok=True)
    (d / "a.txt").write_text("a")
    return d


def test_kill9_worker_mid_job_redelivered_and_completed_on_the_other(scale, tmp_path):
    """Fails if messages are acked early (the job is lost with its worker), if the lost attempt
    is not recorded, or if the killed worker's app survives it."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    gate, counter = tmp_path / "gate", tmp_path / "count"
    register(api, "gated", wait_for=gate, counter=counter)
    scale.worker("w1")
    scale.worker("w2")
    scale.wait_consumers(2)
    jid = submit(api, "gated", inbox(tmp_path))
    first = wait_status(api, [jid], ("running",))[0]
    victim = first["worker"]
    other = {"w1": "w2", "w2": "w1"}[victim]
    wait_until(lambda: counter.exists(), "the first attempt's app started")
    scale.kill9(victim)
    wait_until(lambda: job(api, jid)["worker"] == other and job(api, jid)["status"] == "running",
               f"job redelivered to {other}")
    gate.touch()
    done = wait_status(api, [jid])[0]
    assert done["status"] == "succeeded" and done["worker"] == other
    assert done["attempts"] == 2
    attempts = api.get(f"/jobs/{jid}/attempts").json()
    assert [(a["worker"], a["outcome"].split(":")[0]) for a in attempts] == [(victim, "lost"), (other, "succeeded")]
    probe = json.loads((Path(done["outputDir"]) / "probe.json").read_text())
    assert probe["attempt"] == 2  # the app ran twice, completed once
    pids = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if p.info["cmdline"] and str(gate) in " ".join(p.info["cmdline"])]
    assert pids == []  # the killed worker's app died with it (PR_SET_PDEATHSIG)
