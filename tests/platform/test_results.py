"""Results service: outputs recorded per job and exported by C-STORE to a real dcmtk storescp,
with retries, a persisted outbox and manual retry."""

from __future__ import annotations

import time
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.results import ResultsService
from clara_stream.platform.schemas import DestinationConfig, PipelineConfig

from .conftest import Storescp, pick_port, wait_until


class Parts:
    def __init__(self, settings):
        data = Path(settings.data_dir)
        self.settings = settings
        self.db = Database(data / "state.sqlite")
        self.config = ConfigStore(self.db)
        self.queue = JobQueue(self.db, data / "jobs")
        self.results = ResultsService(self.db, self.queue, self.config, settings)

    def finished_job(self, ct: Path, destinations: list[str], n: int = 3) -> tuple[str, list[str]]:
        """A job whose app 'wrote' n DICOM files and a text report into its output folder."""
        jid = self.queue.submit(PipelineConfig(name="p", app="x"), ct, destinations=destinations)
        out = Path(self.queue.get(jid).output_dir)
        out.mkdir(parents=True)
        uids = []
        for i, src in enumerate(sorted(ct.iterdir())[:n]):
            ds = dcmread(src)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(out / f"out{i}.dcm", enforce_file_format=True)
            uids.append(str(ds.SOPInstanceUID))
        (out / "report.txt").write_text("not DICOM: recorded, never exported")
        self.queue.finish(jid, "succeeded", exit_code=0)
        return jid, uids


def received_uids(scp: Storescp) -> set[str]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in scp.files()}


def test_outputs_recorded_and_exported(settings, ct_small, storescp):
    parts = Parts(settings)
    parts.config.create(
        "destination",
        DestinationConfig(name="pacs", ae_title=storescp.ae_title, host_ip="127.0.0.1", port=storescp.port),
    )
    jid, uids = parts.finished_job(ct_small, ["pacs"])
    ids = parts.results.collect(jid)
    assert len(ids) == 4
    assert parts.results.export_due() == 3
    assert received_uids(storescp) == set(uids)
    res = parts.results.results(job_id=jid)
    report = next(r for r in res if r.path.endswith("report.txt"))
    assert report.sop_uid is None and report.exports == []
    dicoms = [r for r in res if r.sop_uid]
    assert {r.sop_uid for r in dicoms} == set(uids)
    assert all(r.exports[0]["state"] == "sent" for r in dicoms)


def test_destination_down_retries_then_delivers_after_restart(settings, ct_small, tmp_path, dcmtk):
    port = pick_port()
    parts = Parts(settings)
    parts.config.create("destination", DestinationConfig(name="late", ae_title="DEST", host_ip="127.0.0.1", port=port))
    jid, uids = parts.finished_job(ct_small, ["late"], n=2)
    parts.results.collect(jid)
    assert parts.results.export_due() == 0
    rows = parts.db.query("SELECT state, attempts, last_error FROM outbox")
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 1)] * 2
    assert "expected an association" in rows[0]["last_error"]
    # The service restarts (new objects on the same database); the outbox is still there.
    scp = Storescp(tmp_path / "late", dcmtk.storescp, "DEST")
    scp.port = port
    scp.start()
    try:
        again = Parts(settings)
        again.results.start()
        try:
            wait_until(lambda: received_uids(scp) == set(uids), "all instances at storescp", 30)
            wait_until(lambda: {r["state"] for r in again.db.query("SELECT state FROM outbox")} == {"sent"},
                       "outbox drained", 30)
        finally:
            again.results.stop()
    finally:
        scp.stop()


def test_exhausted_exports_fail_and_can_be_retried(settings, ct_small, storescp):
    parts = Parts(settings)
    parts.config.create(
        "destination", DestinationConfig(name="wrong", ae_title="DEST", host_ip="127.0.0.1", port=pick_port())
    )
    jid, uids = parts.finished_job(ct_small, ["wrong"], n=1)
    parts.results.collect(jid)
    for _ in range(settings.export_max_attempts):
        parts.results.export_due(now=time.time() + 3600)
    (row,) = parts.db.query("SELECT state, attempts FROM outbox")
    assert (row["state"], row["attempts"]) == ("failed", settings.export_max_attempts)
    parts.config.update(
        "destination",
        DestinationConfig(name="wrong", ae_title=storescp.ae_title, host_ip="127.0.0.1", port=storescp.port),
    )
    assert parts.results.retry(jid) == 1
    assert parts.results.export_due() == 1
    assert received_uids(storescp) == set(uids)
