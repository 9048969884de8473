"""The celery backend end to end: RabbitMQ, PostgreSQL, ``dicom serve --scheduler celery`` and
``clara-stream worker`` processes standing for nodes (separate data dirs; tmp is the shared store).

Jobs run the real CLI on the ``probe`` test app, gated by files the test creates (no sleeps).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from . import distributed
from .conftest import APPS, NODELAY_ENV, wait_until
from .distributed import queue_state

rabbit, pg_cluster, scale = distributed.rabbit, distributed.pg_cluster, distributed.scale  # fixtures

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
    """Fails if the job is not redelivered, if the lost attempt is not recorded, or if the killed
    worker's app survives it. (Early acks pass it too with the solo pool: see the acks_late test.)"""
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


def test_worker_reports_operator_progress_through_the_database(scale, tmp_path):
    """A worker's per-operator progress reaches REST through PostgreSQL alone: its progress file lies in
    the worker's own data dir, which the service never reads. Fails if the worker stores progress only
    at the end (or not at all), or if the counts differ from what the operators did."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    gate = tmp_path / "gate"
    body = {"name": "flow", "app": str(APPS / "flow"), "cpuMemoryMb": 64,
            "overrides": ["src.count=5", "src.hold_at=3", f"src.gate={gate}"]}
    assert api.put("/pipelines/flow", json=body).status_code == 200
    scale.worker("w1")
    scale.wait_consumers(1)
    jid = submit(api, "flow", inbox(tmp_path))

    def held():
        rows = {r["name"]: r for r in api.get(f"/jobs/{jid}/operators").json()}
        return rows if rows.get("sink", {}).get("messages") == 2 else None

    rows = wait_until(held, "two messages through the graph on the worker while src is held", 120)
    assert [(n, r["state"], r["messages"]) for n, r in rows.items()] == [
        ("src", "running", 2), ("mid", "running", 2), ("sink", "running", 2)]
    assert [p.name for p in (tmp_path / "node-w1" / "progress").iterdir()] == [f"{jid}-1.json"]
    assert not list((tmp_path / "serve").rglob("*operators*.json"))  # nothing for the service to read but the DB
    gate.touch()
    done = wait_status(api, [jid])[0]
    assert done["status"] == "succeeded" and done["worker"] == "w1"
    final = api.get(f"/jobs/{jid}/operators").json()
    out = Path(done["outputDir"])
    assert [(r["name"], r["state"], r["messages"]) for r in final] == [
        (n, "done", json.loads((out / f"{n}.json").read_text())["messages"]) for n in ("src", "mid", "sink")]
    assert {r["messages"] for r in final} == {5}
    assert api.get(f"/jobs/{jid}/graph").json()["source"] == "job"


def test_run_job_task_acks_late_and_requeues_when_its_worker_is_lost():
    """Fails with ``acks_late=False`` (or without ``reject_on_worker_lost``) on the task or the app.

    Why not black-box: with the worker's solo pool Celery writes an early ack only when the event loop
    runs again, i.e. after the task returns, so a worker killed mid-job leaves the message unacknowledged
    either way (checked against RabbitMQ 3.10: one message left in the queue after kill -9 with
    ``acks_late`` False and True). The kill -9 test above therefore cannot tell them apart; this one
    pins the setting that keeps it true if the pool ever changes (prefork acks early from its own loop).
    """
    from clara_stream.platform.backends.celery import TASK, make_celery
    from clara_stream.platform.backends.worker import register_task

    app = make_celery("amqp://guest@127.0.0.1:1//")  # never connects: only the task's options are read
    register_task(app, runner=None)
    task = app.tasks[TASK]
    assert (task.acks_late, task.reject_on_worker_lost) == (True, True)
    assert (app.conf.task_acks_late, app.conf.task_reject_on_worker_lost, app.conf.worker_prefetch_multiplier) == (
        True, True, 1)


def test_priority_order_with_one_slot_per_worker_and_cancel_across_workers(scale, tmp_path):
    """High-priority jobs submitted after low ones start first. Fails without x-max-priority on
    the queues, without prefetch 1 / late acks (workers would hold low jobs already), or if the
    priority is not sent with the message. Cancel reaches a job running on another node."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    gate, hold = tmp_path / "gate", tmp_path / "hold"
    register(api, "blocker", wait_for=gate)
    register(api, "quick")
    register(api, "forever", wait_for=hold)
    box = inbox(tmp_path)
    scale.worker("w1")
    scale.worker("w2")
    scale.wait_consumers(2)
    blockers = [submit(api, "blocker", box) for _ in range(2)]
    wait_status(api, blockers, ("running",))
    low = [submit(api, "quick", box, priority=-50) for _ in range(3)]
    high = [submit(api, "quick", box, priority=50) for _ in range(3)]
    wait_until(lambda: queue_state(scale.rabbit.url)[0] == 6, "six jobs waiting on the broker")
    gate.touch()
    jobs = {j["id"]: j for j in wait_status(api, blockers + low + high)}
    assert {j["status"] for j in jobs.values()} == {"succeeded"}
    assert {jobs[b]["worker"] for b in blockers} == {"w1", "w2"}
    prio = {**{h: 50 for h in high}, **{lo: -50 for lo in low}}
    for w in ("w1", "w2"):  # on each node, a later job never outranks an earlier one
        ran = sorted((jobs[i]["startedAt"], prio[i]) for i in prio if jobs[i]["worker"] == w)
        assert [p for _, p in ran] == sorted((p for _, p in ran), reverse=True), (w, ran)
    last_high = max(jobs[h]["startedAt"] for h in high)
    assert sum(jobs[lo]["startedAt"] < last_high for lo in low) <= 1  # at most the other slot's

    forever = [submit(api, "forever", box) for _ in range(2)]
    running = {j["id"]: j["worker"] for j in wait_status(api, forever, ("running",))}
    assert set(running.values()) == {"w1", "w2"}
    waiting = submit(api, "quick", box)
    wait_until(lambda: queue_state(scale.rabbit.url)[0] == 1, "the quick job waits on the broker")
    assert api.post(f"/jobs/{waiting}/cancel").json()["status"] == "cancelled"
    for jid in forever:
        assert api.post(f"/jobs/{jid}/cancel").status_code == 200
    for done in wait_status(api, forever):
        assert done["status"] == "cancelled" and done["worker"] == running[done["id"]]
        assert [a["outcome"] for a in api.get(f"/jobs/{done['id']}/attempts").json()] == ["cancelled"]
    wait_until(lambda: queue_state(scale.rabbit.url)[0] == 0, "the cancelled job's message consumed")
    never = job(api, waiting)
    assert never["status"] == "cancelled" and never["attempts"] == 0 and never["worker"] is None


def test_broker_restart_loses_no_queued_job(scale, tmp_path):
    """Jobs published while no worker runs survive a broker kill -9 (durable queues, persistent
    messages, publisher confirms) and all run afterwards. Fails with transient queues or messages."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    register(api, "quick")
    box = inbox(tmp_path)
    ids = [submit(api, "quick", box, priority=p) for p in (0, 10, -10, 5)]
    wait_until(lambda: queue_state(scale.rabbit.url)[0] == len(ids), "all jobs confirmed on the broker")
    scale.rabbit.stop(kill=True)
    scale.rabbit.start()
    assert queue_state(scale.rabbit.url)[0] == len(ids)  # read back from the broker's disk
    scale.worker("w1")
    jobs = wait_status(api, ids)
    assert [j["status"] for j in jobs] == ["succeeded"] * len(ids)
    after = submit(api, "quick", box)  # the service's publisher reconnected by itself
    assert wait_status(api, [after])[0]["status"] == "succeeded"


def test_database_restart_service_and_workers_reconnect(scale, tmp_path, pg_cluster):
    """PostgreSQL restarts while a job runs: the worker records the outcome once it is back, and
    the service accepts and dispatches new jobs. Fails if a dropped connection is kept."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    gate = tmp_path / "gate"
    register(api, "gated", wait_for=gate)
    register(api, "quick")
    box = inbox(tmp_path)
    scale.worker("w1")
    jid = submit(api, "gated", box)
    wait_status(api, [jid], ("running",))
    pg_cluster.restart()
    gate.touch()
    assert wait_status(api, [jid])[0]["status"] == "succeeded"
    after = submit(api, "quick", box)
    assert wait_status(api, [after])[0]["status"] == "succeeded"


#: what may differ between two runs of the same app on the same input (identity and time of creation)
RUN_IDENTITY = {"SOPInstanceUID", "SeriesInstanceUID", "ContentDate", "ContentTime", "InstanceCreationDate",
                "InstanceCreationTime", "SeriesDate", "SeriesTime", "DimensionOrganizationUID", "ContributionDateTime"}


def series_copies(ct: Path, dest: Path, n: int) -> dict[str, Path]:
    """``n`` copies of a series under new Series/SOP Instance UIDs (one folder); series UID → folder."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    out = {}
    for k in range(n):
        series = generate_uid(entropy_srcs=[str(ct), "series", str(k)])
        folder = dest / f"s{k}"
        folder.mkdir(parents=True)
        for f in sorted(ct.iterdir()):
            ds = dcmread(f)
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[series, f.name])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(folder / f.name)
        out[series] = folder
    return out


def seg_of(job_info: dict):
    from pydicom import dcmread

    return dcmread(Path(job_info["outputDir"]) / "seg.dcm")


def _leaves(ds, prefix: str = "") -> dict[str, tuple[str, object]]:
    """Every element at any depth: path → (keyword, value); sequences are walked item by item."""
    out = {}
    for e in ds:
        path = f"{prefix}{e.tag}"
        if e.VR == "SQ":
            for i, item in enumerate(e.value):
                out.update(_leaves(item, f"{path}[{i}]."))
        else:
            out[path] = (e.keyword, e.value)
    return out


def differing(a, b) -> set[str]:
    """Keywords of the elements (at any depth) that differ between two datasets."""
    la, lb = _leaves(a), _leaves(b)
    return {(la.get(p) or lb.get(p))[0] for p in la.keys() | lb.keys() if la.get(p) != lb.get(p)}


@pytest.mark.slow
def test_storescu_jobs_spread_over_two_workers_with_the_embedded_outputs(
    scale, tmp_path, ct_small, dcmtk, serve_factory
):
    """Two series by storescu → two organ_segmentation jobs, one on each worker node, both
    succeed; each SEG equals the embedded backend's SEG of the same series (pixels and every
    attribute but the run's own UIDs and times). Fails if a worker reads the wrong input, if the
    dispatcher routes both jobs to one node, or if results are not recorded from the workers."""
    seed = {
        "sources": [{"name": "modality", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
        "aes": [{"name": "organseg", "aeTitle": "ORGANSEG", "timeout": 1, "grouping": "0020,000E",
                 "workflows": ["organ_segmentation"]}],
    }
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    copies = series_copies(ct_small, tmp_path / "send", 2)
    serve = scale.serve(seed_file)
    api = httpx.Client(base_url=serve.url, timeout=10)
    scale.worker("w1")
    scale.worker("w2")
    scale.wait_consumers(2)

    def send(port: int) -> None:
        r = subprocess.run([dcmtk.storescu, "-aet", "STORESCU", "-aec", "ORGANSEG", "127.0.0.1", str(port),
                            "+sd", "+r", str(tmp_path / "send")], env=NODELAY_ENV, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr

    send(serve.dicom_port)
    ids = wait_until(lambda: (js := api.get("/jobs").json()) and len(js) == 2 and [j["id"] for j in js],
                     "two jobs from two series", 60)
    jobs = wait_status(api, ids, timeout_s=600)
    assert [j["status"] for j in jobs] == ["succeeded"] * 2, [j["error"] for j in jobs]
    assert {j["worker"] for j in jobs} == {"w1", "w2"}
    results = {r["path"] for r in api.get("/results").json()}
    assert {str(Path(j["outputDir"]) / "seg.dcm") for j in jobs} <= results

    embedded = serve_factory(seed, data_dir=tmp_path / "embedded").start()
    e_api = httpx.Client(base_url=embedded.url, timeout=10)
    send(embedded.dicom_port)
    e_ids = wait_until(lambda: (js := e_api.get("/jobs").json()) and len(js) == 2 and [j["id"] for j in js],
                       "two embedded jobs", 60)
    e_jobs = wait_status(e_api, e_ids, timeout_s=600)
    assert [j["status"] for j in e_jobs] == ["succeeded"] * 2
    by_series = {seg_of(j).ReferencedSeriesSequence[0].SeriesInstanceUID: seg_of(j) for j in e_jobs}
    assert set(by_series) == set(copies)
    for j in jobs:
        seg = seg_of(j)
        ref = by_series[seg.ReferencedSeriesSequence[0].SeriesInstanceUID]
        assert seg.PixelData == ref.PixelData
        assert differing(seg, ref) <= RUN_IDENTITY, differing(seg, ref) - RUN_IDENTITY


def test_worker_retries_and_timeout_as_the_embedded_scheduler(scale, tmp_path):
    """A job failing once with one retry succeeds on its second attempt (re-dispatched from the
    database); a job past its timeout is stopped and failed with the reason. Fails if the worker
    ignores maxRetries or timeoutS, or if a retry is not recorded."""
    serve = scale.serve()
    api = httpx.Client(base_url=serve.url, timeout=10)
    register(api, "flaky", retries=1, fail_times=1, counter=tmp_path / "count")
    r = api.put("/pipelines/slow", json={"name": "slow", "app": PROBE, "cpuMemoryMb": 64, "timeoutS": 1,
                                         "overrides": [f"probe.wait_for={tmp_path / 'never'}"]})
    assert r.status_code in (200, 201), r.text
    box = inbox(tmp_path)
    scale.worker("w1")
    flaky, slow = submit(api, "flaky", box), submit(api, "slow", box)
    done = {j["id"]: j for j in wait_status(api, [flaky, slow])}
    assert done[flaky]["status"] == "succeeded" and done[flaky]["attempts"] == 2
    outcomes = [a["outcome"] for a in api.get(f"/jobs/{flaky}/attempts").json()]
    assert outcomes[0].startswith("failed: app exited with code") and outcomes[1] == "succeeded"
    assert done[slow]["status"] == "failed" and done[slow]["error"].startswith("timed out after 1")
    assert "ProbeOp: expected attempt > 1; got attempt 1" in (Path(done[flaky]["outputDir"]).parent
                                                             / "worker-1.log").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "http://mq"], "worker: expected --broker amqp://…; got http"),
        (["--broker", "amqp://mq", "--database", "sqlite:///x"], "worker: expected --database postgresql://…"),
        (["--broker", "amqp://mq", "--database", "postgresql://db/x", "--queues", "gpu,tpu"],
         "worker: expected --queues from gpu, cpu; got 'gpu,tpu'"),
    ],
)
def test_worker_refuses_bad_arguments_by_name(tmp_path, args, message):
    """Nothing starts on a wrong broker, database or queue name; the error names the option."""
    cmd = [sys.executable, "-m", "clara_stream.cli", "worker", "--data-dir", str(tmp_path / "w"),
           "--shared-dir", str(tmp_path), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not (tmp_path / "w").exists()


def test_serve_refuses_celery_without_broker_and_postgres(tmp_path):
    cmd = [sys.executable, "-m", "clara_stream.cli", "dicom", "serve", "--data-dir", str(tmp_path / "d"),
           "--scheduler", "celery", "--database", str(tmp_path / "state.sqlite")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "scheduler: expected --broker amqp://… and --database postgresql://…" in r.stderr, r.stderr


def test_acceptor_processes_store_into_the_shared_database(scale, tmp_path, ct_small, dcmtk):
    """``--acceptors 2`` with the celery backend: instances received by either SCP process are
    indexed in PostgreSQL and reach the job. Fails if an acceptor process opens its own SQLite
    file (the instances it took would never join the group)."""
    seed = {
        "sources": [{"name": "modality", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
        "pipelines": [{"name": "count", "app": PROBE, "cpuMemoryMb": 64}],
        "aes": [{"name": "count", "aeTitle": "COUNT", "timeout": 2, "workflows": ["count"]}],
    }
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    sp = scale.serve(seed_file)
    sp.stop()
    sp.extra += ["--acceptors", "2"]
    sp.start()
    api = httpx.Client(base_url=sp.url, timeout=10)
    scale.worker("w1")
    files = sorted(ct_small.iterdir())
    for f in files:  # one association per file: SO_REUSEPORT spreads them over both processes
        r = subprocess.run([dcmtk.storescu, "-aet", "STORESCU", "-aec", "COUNT", "127.0.0.1", str(sp.dicom_port),
                            str(f)], env=NODELAY_ENV, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    jid = wait_until(lambda: next(iter(api.get("/jobs").json()), None), "job created", 60)["id"]
    done = wait_status(api, [jid])[0]
    assert done["status"] == "succeeded"
    probe = json.loads((Path(done["outputDir"]) / "probe.json").read_text())
    assert len(probe["files"]) == len(files)
    assert len(api.get(f"/jobs/{jid}/instances").json()) == len(files)
