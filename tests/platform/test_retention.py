"""Retention: what the policy lets go, what it must never touch, and ``clara-stream dicom gc``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from clara_stream.cli import main
from clara_stream.platform.schemas import AeConfig, RetentionPolicy
from clara_stream.platform.service import PlatformService

DAY = 86400.0


def _put(svc: PlatformService, src: Path, ae: str, *, age_days: float) -> tuple[int, int]:
    """Store ``src`` under a fresh study for ``ae``, received ``age_days`` ago; (group id, size)."""
    ds = dcmread(src)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = Path(svc.settings.data_dir).parent / "src" / f"{ds.SOPInstanceUID}.dcm"
    path.parent.mkdir(exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    iid = svc.store.store(
        [data],
        sop_uid=ds.SOPInstanceUID,
        sop_class=ds.SOPClassUID,
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        called_ae=ae,
        calling_ae="X",
        calling_host="127.0.0.1",
        assoc_id="a",
        grouping="0020,000D",
    )
    svc.store.release("a")
    with svc.db.write() as con:
        con.execute("UPDATE instance SET received_at = ? WHERE id = ?", (time.time() - age_days * DAY, iid))
    return svc.db.query_one("SELECT group_id FROM instance WHERE id = ?", (iid,))[0], len(data)


def _job(svc: PlatformService, group_id: int, status: str, outbox: str | None = None) -> str:
    """Close the group into one job with ``status`` and, optionally, one result in the outbox."""
    with svc.db.write() as con:
        con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (group_id,))
    folder = svc.queue.jobs_dir / f"g{group_id}" / "input"
    folder.mkdir(parents=True)
    for r in svc.db.query("SELECT path, sop_uid FROM instance WHERE group_id = ?", (group_id,)):
        (folder / f"{r['sop_uid']}.dcm").hardlink_to(r["path"])
    jid = svc.queue.submit(svc.config.pipeline("organ_segmentation"), folder, group_id=group_id)
    with svc.db.write() as con:
        con.execute("UPDATE job SET status = ? WHERE id = ?", (status, jid))
        if outbox:
            rid = con.execute(
                "INSERT INTO result (job_id, path, size, created_at) VALUES (?, 'x', 1, 0)", (jid,)
            ).lastrowid
            con.execute(
                "INSERT INTO outbox (result_id, job_id, destination, state, next_at) VALUES (?, ?, 'pacs', ?, 0)",
                (rid, jid, outbox),
            )
    return jid


@pytest.fixture
def svc(settings):
    settings.retention_max_age_days = 30
    s = PlatformService(settings, dicom=False)
    s.config.create("ae", AeConfig(name="a", ae_title="A", workflows=["organ_segmentation"]))
    return s


def test_policy_deletes_only_what_no_job_or_export_still_needs(svc, ct_small):
    """Fails if gc deletes an instance of a queued/running job, one whose results wait in the
    outbox, one of an open group, or a recent one; or keeps an old, fully exported one."""
    src = sorted(ct_small.iterdir())[0]
    g = {
        name: _put(svc, src, "A", age_days=age)[0]
        for name, age in [
            ("done", 40),
            ("queued", 40),
            ("running", 40),
            ("outbox_pending", 40),
            ("export_failed", 40),
            ("open", 40),
            ("recent", 5),
            ("no_job", 40),
        ]
    }
    _job(svc, g["done"], "succeeded", outbox="sent")
    _job(svc, g["queued"], "queued")
    _job(svc, g["running"], "running")
    _job(svc, g["outbox_pending"], "succeeded", outbox="pending")
    _job(svc, g["export_failed"], "succeeded", outbox="failed")
    _job(svc, g["recent"], "succeeded")
    with svc.db.write() as con:
        con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (g["no_job"],))
    expected = {g["done"], g["no_job"]}
    planned = svc.gc(dry_run=True)
    assert {c.group_id for c in planned} == expected and all("older than 30 days" in c.reason for c in planned)
    assert svc.store.count() == 8  # a dry run deletes nothing
    paths = {c.group_id: Path(c.path) for c in planned}
    done_input = svc.queue.jobs_dir / f"g{g['done']}" / "input"
    assert any(done_input.iterdir())
    deleted = svc.gc()
    assert {c.group_id for c in deleted} == expected
    assert svc.store.count() == 6 and not any(p.exists() for p in paths.values())
    assert not any(done_input.iterdir())  # the finished job's hard links went too: space is freed
    kept = {r["group_id"] for r in svc.db.query("SELECT group_id FROM instance")}
    assert kept == set(g.values()) - expected
    svc.settings.retention_keep_until_exported = False  # a failed export no longer holds it
    assert {c.group_id for c in svc.gc()} == {g["export_failed"]}


def test_per_ae_size_limit_deletes_oldest_first(svc, ct_small):
    """Fails if the size limit deletes newest first, or crosses into another AE's instances."""
    svc.config.create("ae", AeConfig(name="b", ae_title="B"))
    src = sorted(ct_small.iterdir())[0]
    groups = []
    for age in (3, 2, 1):
        gid, size = _put(svc, src, "B", age_days=age)
        with svc.db.write() as con:
            con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (gid,))
        groups.append(gid)
    svc.config.update(
        "ae",
        svc.config.get("ae", "b").model_copy(
            update={"retention": RetentionPolicy(max_total_gb=(2 * size + 1) / 2**30)}
        ),
    )
    a_gid, _ = _put(svc, src, "A", age_days=1)
    with svc.db.write() as con:
        con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (a_gid,))
    (c,) = svc.gc()
    assert c.group_id == groups[0] and "above" in c.reason  # the oldest of B; A untouched (30 days)


def test_gc_cli_dry_run_then_delete(svc, ct_small, capsys):
    gid, _ = _put(svc, sorted(ct_small.iterdir())[0], "A", age_days=40)
    with svc.db.write() as con:
        con.execute("UPDATE grp SET state = 'closed' WHERE id = ?", (gid,))
    path = Path(svc.db.query_one("SELECT path FROM instance")[0])
    data = str(svc.settings.data_dir)
    assert main(["dicom", "gc", "--data-dir", data, "--max-age-days", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {path}" in out and "dry run: 1 instance(s)" in out and path.exists()
    assert main(["dicom", "gc", "--data-dir", data, "--max-age-days", "60"]) == 0
    assert "0 instance(s)" in capsys.readouterr().out and path.exists()
    assert main(["dicom", "gc", "--data-dir", data, "--max-age-days", "30"]) == 0
    assert f"delete {path}" in capsys.readouterr().out and not path.exists()
    assert main(["dicom", "gc", "--data-dir", str(Path(data) / "nope")]) != 0


def test_the_service_applies_the_policy_on_its_schedule(settings, ct_small):
    """Fails if retention runs only through ``dicom gc``: the running service must apply it itself."""
    from .conftest import wait_until

    settings.retention_max_age_days, settings.retention_interval_s = 30, 0.1
    svc = PlatformService(settings, dicom=False)
    svc.config.create("ae", AeConfig(name="a", ae_title="A", workflows=[]))
    gid, _ = _put(svc, sorted(ct_small.iterdir())[0], "A", age_days=40)
    keep, _ = _put(svc, sorted(ct_small.iterdir())[1], "A", age_days=1)
    path = Path(svc.db.query_one("SELECT path FROM instance WHERE group_id = ?", (gid,))[0])
    with svc.db.write() as con:
        con.execute("UPDATE grp SET state = 'closed' WHERE id IN (?, ?)", (gid, keep))
    svc.start()
    try:
        wait_until(lambda: not path.exists(), "the old instance deleted by the service")
    finally:
        svc.stop()
    assert [r["group_id"] for r in svc.db.query("SELECT group_id FROM instance")] == [keep]
