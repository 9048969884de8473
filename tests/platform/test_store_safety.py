"""Patient data is never overwritten or mixed, and nothing bad is acknowledged.

Senders are real dcmtk ``storescu`` (absolute path) and pynetdicom sending raw file bytes; the
oracle for the stored pixels is the source files read by pydicom, and for "bad bytes" dcmtk's own
``storescp``, which refuses what we must refuse.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pynetdicom
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts

from clara_stream.platform.api.app import create_app
from clara_stream.platform.schemas import AeConfig, PipelineConfig, SourceConfig
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import DIMSE_CANNOT_UNDERSTAND, DIMSE_DATASET_MISMATCH, DIMSE_SUCCESS

from .conftest import APPS, NODELAY_ENV, wait_until


@pytest.fixture
def svc(settings):
    """The service with only its SCP running: tests close groups themselves, no job runs."""
    s = PlatformService(settings)
    s.config.create("source", SourceConfig(name="mod", ae_title="STORESCU", host_ip="localhost"))
    s.config.create("source", SourceConfig(name="py", ae_title="PYSCU", host_ip="127.0.0.1"))
    s.config.put_pipeline(PipelineConfig(name="probe", app=str(APPS / "probe")))
    s.config.create("ae", AeConfig(name="in", ae_title="INBOX", timeout=1, workflows=["probe"]))
    s.adapter.start()
    yield s
    s.adapter.stop()


def _copy_series(
    src: Path, dst: Path, *, study: str, series: str, sop_uids: list[str], pixel_offset: int
) -> list[Path]:
    """The phantom series under new study/series UIDs, given SOP UIDs and shifted pixel values."""
    dst.mkdir(parents=True)
    out = []
    for p, uid in zip(sorted(src.iterdir()), sop_uids, strict=False):
        ds = dcmread(p)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.PatientID = f"P-{pixel_offset}"
        ds.PixelData = (ds.pixel_array + pixel_offset).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(dst / p.name, enforce_file_format=True)
        out.append(dst / p.name)
    return out


def _storescu(dcmtk, port: int, folder: Path) -> None:
    r = subprocess.run(
        [dcmtk.storescu, "-aet", "STORESCU", "-aec", "INBOX", "127.0.0.1", str(port), "+sd", str(folder)],
        env=NODELAY_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def _pixels(path: Path) -> np.ndarray:
    return dcmread(path).pixel_array


def test_same_sop_uid_in_two_studies_never_mixes_patients(svc, ct_small, tmp_path, dcmtk):
    """Fails if the store is keyed by SOP Instance UID alone: patient B's bytes replace patient A's
    and A's job reads B's pixels (the offset 1000 tells them apart)."""
    uids = [generate_uid() for _ in range(4)]
    a = _copy_series(
        ct_small, tmp_path / "a", study=generate_uid(), series=generate_uid(), sop_uids=uids, pixel_offset=0
    )
    b = _copy_series(
        ct_small, tmp_path / "b", study=generate_uid(), series=generate_uid(), sop_uids=uids, pixel_offset=1000
    )
    _storescu(dcmtk, svc.dicom_port, tmp_path / "a")
    _storescu(dcmtk, svc.dicom_port, tmp_path / "b")
    wait_until(lambda: svc.store.count(state="complete") == 8, "8 instances complete")
    job_ids = svc.store.close_ready_groups(svc.config, svc.queue, now=time.time() + 100)
    assert len(job_ids) == 2
    sources = {}
    for files in (a, b):
        for p in files:
            ds = dcmread(p, stop_before_pixels=True)
            sources.setdefault(str(ds.StudyInstanceUID), {})[str(ds.SOPInstanceUID)] = p
    client = TestClient(base_url="http://127.0.0.1", app=create_app(svc, manage=False))
    for jid in job_ids:
        files = sorted(Path(svc.queue.get(jid).input_dir).iterdir())
        assert len(files) == 4
        study = {str(dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in files}
        assert len(study) == 1
        own = sources[study.pop()]
        for f in files:
            np.testing.assert_array_equal(_pixels(f), _pixels(own[f.stem]))  # its own patient's pixels
        inst = client.get(f"/jobs/{jid}/instances").json()
        assert len(inst) == 4 and all(
            "also received in study" in (i["conflict"] or "") or "received again" in (i["conflict"] or "") for i in inst
        ), inst
    assert client.get("/health").json()["instanceConflicts"] == 8
    assert [j["conflicts"] for j in client.get("/jobs").json()] == [4, 4]  # the console shows this column


def test_same_key_other_bytes_both_kept_same_bytes_idempotent(svc, ct_small, tmp_path):
    """Fails if a re-send under the same study/series/instance overwrites the first copy, or if an
    identical re-send is written again (inode changes) or indexed twice."""
    src = sorted(ct_small.iterdir())[0]
    first = dcmread(src)
    second = dcmread(src)
    second.PixelData = (second.pixel_array + 7).astype(second.pixel_array.dtype).tobytes()
    ae = AE(ae_title="PYSCU")
    ae.requested_contexts = StoragePresentationContexts[:100]
    assoc = ae.associate("127.0.0.1", svc.dicom_port, ae_title="INBOX")
    assert assoc.send_c_store(first).Status == DIMSE_SUCCESS
    path = svc.store.path_for("INBOX", first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    inode = path.stat().st_ino
    assert assoc.send_c_store(first).Status == DIMSE_SUCCESS  # identical again
    assert path.stat().st_ino == inode and svc.store.count() == 1
    assert assoc.send_c_store(second).Status == DIMSE_SUCCESS  # same key, other content
    assoc.release()
    wait_until(lambda: svc.store.count(state="complete") == 1 and svc.store.count() == 2, "both indexed")
    rows = svc.db.query("SELECT path, state, conflict FROM instance ORDER BY id")
    assert [r["state"] for r in rows] == ["superseded", "complete"]
    assert all("other content" in r["conflict"] or "received again" in r["conflict"] for r in rows)
    np.testing.assert_array_equal(_pixels(Path(rows[0]["path"])), first.pixel_array)  # first copy intact
    np.testing.assert_array_equal(_pixels(Path(rows[1]["path"])), second.pixel_array)
    (jid,) = svc.store.close_ready_groups(svc.config, svc.queue, now=time.time() + 100)
    (f,) = Path(svc.queue.get(jid).input_dir).iterdir()
    np.testing.assert_array_equal(_pixels(f), second.pixel_array)  # the job sees one version


def _bad_files(src: Path, tmp_path: Path) -> dict[str, Path]:
    raw = src.read_bytes()
    out = {}
    for name, data in {
        "truncated": raw[:-1001],  # Pixel Data cut short
        "garbage_tail": raw + b"\xde\xad\xbe\xef" * 16,
        "odd_tail": raw + b"\x00" * 7,
    }.items():
        out[name] = tmp_path / f"{name}.dcm"
        out[name].write_bytes(data)
    short = dcmread(src)  # well-formed encoding whose Pixel Data disagrees with Rows x Columns
    short.PixelData = short.PixelData[: len(short.PixelData) // 2]
    out["short_pixels"] = tmp_path / "short_pixels.dcm"
    short.save_as(out["short_pixels"], enforce_file_format=True)
    return out


def _send_raw(port: int, called: str, path: Path) -> int | None:
    """C-STORE the file's dataset bytes as they are; the status, or None if the peer aborted."""
    ds = dcmread(path, stop_before_pixels=True)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(path)
        return int(rsp.Status) if "Status" in rsp else None
    finally:
        if assoc.is_established:
            assoc.release()


def test_truncated_or_garbage_tailed_instances_are_refused_like_dcmtk(svc, ct_small, tmp_path, storescp, monkeypatch):
    """Fails if success is answered before the whole dataset is checked (header-only parsing
    stores all four files with 0x0000)."""
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)  # file bytes as they are
    bad = _bad_files(sorted(ct_small.iterdir())[3], tmp_path)
    for name, path in bad.items():
        ours = _send_raw(svc.dicom_port, "INBOX", path)
        assert ours in (DIMSE_CANNOT_UNDERSTAND, DIMSE_DATASET_MISMATCH), (name, hex(ours))
    assert (_send_raw(svc.dicom_port, "INBOX", bad["short_pixels"])) == DIMSE_DATASET_MISMATCH
    for name in ("truncated", "garbage_tail"):  # the oracle: dcmtk refuses the same bytes (fails or aborts)
        assert _send_raw(storescp.port, storescp.ae_title, bad[name]) != DIMSE_SUCCESS, name
    assert storescp.files() == []
    assert svc.store.count() == 0
    assert not [p for p in svc.store.store_dir.rglob("*") if p.is_file()]
    good = sorted(ct_small.iterdir())[3]
    assert _send_raw(svc.dicom_port, "INBOX", good) == DIMSE_SUCCESS  # and the SCP keeps serving
