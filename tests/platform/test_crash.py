"""kill -9 of ``clara-stream dicom serve`` during a 200-instance send: every acknowledged instance is
on disk and intact, and after a restart the queued, interrupted and new jobs all complete."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from .conftest import wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")


@pytest.fixture(scope="module")
def ct200(tmp_path_factory) -> Path:
    from clara_stream.samples.ct import write_sample

    return write_sample(tmp_path_factory.mktemp("ct200"), shape=(200, 64, 64), seed=3)["dicom"]


def seed(gate: Path) -> dict:
    """probe_slow holds the only job slot until the test opens ``gate`` (after the restart)."""
    return {
        "sources": [{"name": "py", "aeTitle": "PYSCU", "hostIp": "127.0.0.1"}],
        "pipelines": [
            {"name": "probe_slow", "app": PROBE, "overrides": [f"probe.wait_for={gate}"]},
            {"name": "probe", "app": PROBE},
        ],
        "aes": [{"name": "crash", "aeTitle": "CRASH", "timeout": 1, "workflows": ["probe"], "grouping": "0020,000E"}],
    }


@pytest.mark.slow
def test_kill9_during_send_loses_no_acknowledged_instance(serve_factory, ct200, tmp_path):
    gate = tmp_path / "gate"
    serve = serve_factory(seed(gate), extra=["--max-jobs", "1"]).start()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    api = httpx.Client(base_url=serve.url, timeout=10)
    queued = [api.post("/jobs", json={"pipeline": "probe_slow", "input": str(inbox)}).json()["id"] for _ in range(3)]
    wait_until(lambda: api.get(f"/jobs/{queued[0]}").json()["status"] == "running", "first job running", 120)

    datasets = [dcmread(p) for p in sorted(ct200.iterdir())]
    acked: list[str] = []
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage, [str(datasets[0].file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", serve.dicom_port, ae_title="CRASH")
    assert assoc.is_established

    def send() -> None:
        for ds in datasets:
            if not assoc.is_established:
                return
            try:
                rsp = assoc.send_c_store(ds)
            except (RuntimeError, ValueError):
                return
            if rsp.get("Status") == 0x0000:
                acked.append(str(ds.SOPInstanceUID))

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(acked) >= 60, "60 instances acknowledged")
    serve.kill9()
    sender.join(timeout=60)
    assert 60 <= len(acked) < 200, "the kill must land mid-send"

    store = serve.data_dir / "store" / "CRASH"
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    for uid in acked:
        ds = by_uid[uid]
        stored = dcmread(store / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{uid}.dcm")
        assert stored.PixelData == by_uid[uid].PixelData, uid
        assert stored.SOPInstanceUID == uid

    gate.touch()
    serve.start()  # same data dir: recover, requeue, group the cut association's instances
    api = httpx.Client(base_url=serve.url, timeout=10)
    jobs = wait_until(lambda: [j for j in api.get("/jobs").json() if j["pipeline"] == "probe"] or None,
                      "probe jobs listed", 120)
    (dicom_job,) = jobs
    ids = [*queued, dicom_job["id"]]

    def finished():
        js = [api.get(f"/jobs/{i}").json() for i in ids]
        return js if all(j["status"] in ("succeeded", "failed", "cancelled") for j in js) else None

    final = wait_until(finished, "every job finished", 120)
    assert [j["status"] for j in final] == ["succeeded"] * 4, [j["error"] for j in final]
    assert final[0]["attempts"] == 1  # interrupted by the kill, rerun without using a retry
    seen = (Path(final[3]["outputDir"]) / "probe.json").read_text()
    for uid in acked:
        assert f"{uid}.dcm" in seen
