"""Scheduler: priority order, memory budget, crash isolation, retries, cancel, timeout, resume.

Jobs run the real CLI (``python -m clara_stream.cli run``) on the ``probe`` test app in worker
subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from clara_stream.platform.schemas import JobSubmit, PipelineConfig
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import InvalidRequestError

from .conftest import wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")


def probe(name: str, *, cpu: int = 100, retries: int = 0, timeout_s: float | None = None, **cfg) -> PipelineConfig:
    overrides = [f"probe.{k}={v}" for k, v in cfg.items()]
    return PipelineConfig(
        name=name, app=PROBE, cpu_memory_mb=cpu, max_retries=retries, timeout_s=timeout_s, overrides=overrides
    )


def wait_jobs(
    svc: PlatformService, ids: list[str], timeout_s: float = 90.0, states=("succeeded", "failed", "cancelled")
) -> list:
    def reached():
        infos = [svc.queue.get(i) for i in ids]
        return infos if all(j.status in states for j in infos) else None

    return wait_until(reached, f"jobs {ids} in {states}", timeout_s)


@pytest.fixture
def service(settings, tmp_path):
    svc = PlatformService(settings, dicom=False)
    svc.start()
    yield svc
    svc.stop()


def submit(svc, pipeline: str, folder: Path, priority: int = 0) -> str:
    return svc.submit(JobSubmit(pipeline=pipeline, input=str(folder), priority=priority)).id


@pytest.fixture
def inbox(tmp_path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    for i in range(3):
        (d / f"f{i}.dcm").write_bytes(b"x")
    return d


def test_priority_then_fifo_with_one_slot(settings, inbox, tmp_path):
    settings.max_concurrent_jobs = 1
    gate = tmp_path / "gate"
    svc = PlatformService(settings, dicom=False)
    svc.config.put_pipeline(probe("slow", wait_for=gate))
    svc.config.put_pipeline(probe("fast"))
    blocker = submit(svc, "slow", inbox)
    svc.start()  # the blocker starts and holds the one slot until the gate opens
    try:
        wait_jobs(svc, [blocker], states=("running",))
        ids = [submit(svc, "fast", inbox, p) for p in (0, 5, 0, 5)]
        gate.touch()
        infos = wait_jobs(svc, [blocker, *ids])
    finally:
        svc.stop()
    assert all(j.status == "succeeded" for j in infos), [j.error for j in infos]
    started = [j.id for j in sorted(infos, key=lambda j: j.started_at)]
    assert started == [blocker, ids[1], ids[3], ids[0], ids[2]]
    out = Path(infos[1].output_dir) / "probe.json"
    assert '"files": ["f0.dcm", "f1.dcm", "f2.dcm"]' in out.read_text()


def test_memory_budget_serialises_big_jobs(settings, inbox):
    settings.max_concurrent_jobs = 4
    settings.cpu_memory_budget_mb = 1000
    svc = PlatformService(settings, dicom=False)
    svc.config.put_pipeline(probe("big", cpu=700, sleep_s=0.5))
    svc.config.put_pipeline(probe("huge", cpu=5000))
    svc.start()
    try:
        with pytest.raises(InvalidRequestError, match="expected needs within the budget"):
            submit(svc, "huge", inbox)
        svc.config.put_pipeline(PipelineConfig(name="gpu", app=PROBE, gpu_memory_mb=1))  # budget: 0 MB GPU
        with pytest.raises(InvalidRequestError, match="gpu 0 MB"):
            submit(svc, "gpu", inbox)
        a, b = submit(svc, "big", inbox), submit(svc, "big", inbox)
        ja, jb = wait_jobs(svc, [a, b])
    finally:
        svc.stop()
    assert ja.status == jb.status == "succeeded"
    assert jb.started_at >= ja.finished_at  # 700 + 700 > 1000: the second waited for the first


def test_crashing_app_fails_its_job_and_the_service_lives(service, inbox):
    service.config.put_pipeline(probe("crash", fail_times=99))
    service.config.put_pipeline(probe("ok"))
    bad = submit(service, "crash", inbox)
    good = submit(service, "ok", inbox)
    jb, jg = wait_jobs(service, [bad, good])
    assert jb.status == "failed" and jb.exit_code not in (0, None)
    assert "ProbeOp: expected attempt > 99" in jb.error
    assert jg.status == "succeeded"


def test_retries_until_success(service, inbox, tmp_path):
    counter = tmp_path / "counter"
    service.config.put_pipeline(probe("flaky", retries=2, fail_times=1, counter=counter))
    (job,) = wait_jobs(service, [submit(service, "flaky", inbox)])
    assert job.status == "succeeded" and job.attempts == 2
    assert counter.read_text() == "2"


def test_cancel_running_job_stops_its_worker(service, inbox):
    service.config.put_pipeline(probe("long", sleep_s=60))
    jid = submit(service, "long", inbox)
    wait_jobs(service, [jid], states=("running",))
    pid = service.queue.row(jid)["worker_pid"]
    service.cancel(jid)
    (job,) = wait_jobs(service, [jid])
    assert job.status == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_timeout_fails_the_job(service, inbox):
    service.config.put_pipeline(probe("hang", sleep_s=60, timeout_s=1.0))
    (job,) = wait_jobs(service, [submit(service, "hang", inbox)])
    assert job.status == "failed" and "timed out after 1.0 s" in job.error


def test_stop_requeues_running_and_restart_completes_all(settings, inbox, tmp_path):
    settings.max_concurrent_jobs = 1
    gate = tmp_path / "gate"
    svc = PlatformService(settings, dicom=False)
    svc.config.put_pipeline(probe("slow", wait_for=gate))
    svc.config.put_pipeline(probe("fast"))
    svc.start()
    first = submit(svc, "slow", inbox)
    rest = [submit(svc, "fast", inbox) for _ in range(2)]
    wait_jobs(svc, [first], states=("running",))
    svc.stop()
    assert [svc.queue.get(j).status for j in [first, *rest]] == ["queued"] * 3
    gate.touch()
    again = PlatformService(settings, dicom=False)
    again.start()
    try:
        infos = wait_jobs(again, [first, *rest])
    finally:
        again.stop()
    assert [j.status for j in infos] == ["succeeded"] * 3
    assert infos[0].attempts == 1  # an interrupted run does not use up a retry
