"""A really full file system (a 4 MiB tmpfs holding the store and the database), not a monkeypatch.

Mounting needs root; elsewhere these tests skip (they need no external peer).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from clara_stream.platform.api.app import create_app
from clara_stream.platform.schemas import AeConfig, SourceConfig
from clara_stream.platform.scu import peer_reject
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import DIMSE_OUT_OF_RESOURCES, DIMSE_SUCCESS, REJECT_LOW_SPACE

from .conftest import wait_until


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["/usr/bin/umount", "-l", str(mnt)], check=True)


def _fill(fs: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free."""
    filler = fs / "filler"
    free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def _service(settings, fs: Path) -> PlatformService:
    settings.data_dir = fs / "data"
    svc = PlatformService(settings)
    svc.config.create("source", SourceConfig(name="py", ae_title="PYSCU", host_ip="127.0.0.1"))
    svc.config.create("ae", AeConfig(name="inbox", ae_title="INBOX", timeout=1, workflows=[]))
    return svc


def _assoc(port: int):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    return ae.associate("127.0.0.1", port, ae_title="INBOX")


def test_disk_full_answers_a700_leaves_no_temp_and_nothing_stuck(settings, small_fs, ct_small):
    """Fails if a full disk answers 0x0110, leaves temp files or unacknowledged files, or leaves
    acknowledged instances pending once space returns (the issue: 78 stuck until restart)."""
    settings.min_free_mb, settings.min_free_percent = 0, 0  # watermark off: hit the real wall
    svc = _service(settings, small_fs)
    svc.start()
    try:
        files = sorted(ct_small.iterdir())
        filler = _fill(small_fs, 40 * 1024)
        assoc = _assoc(svc.dicom_port)
        assert assoc.is_established
        statuses = {}
        for f in files:
            ds = dcmread(f)
            statuses[str(ds.SOPInstanceUID)] = int(assoc.send_c_store(ds).Status)
        assoc.release()
        assert set(statuses.values()) == {DIMSE_SUCCESS, DIMSE_OUT_OF_RESOURCES}, statuses
        filler.unlink()  # space returns
        acked = {u for u, s in statuses.items() if s == DIMSE_SUCCESS}
        wait_until(lambda: svc.store.count(state="pending") == 0, "pending instances settled")
        rows = svc.db.query("SELECT sop_uid, path, state FROM instance")
        assert {r["sop_uid"] for r in rows} == acked and {r["state"] for r in rows} == {"complete"}
        by_uid = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
        for r in rows:
            assert dcmread(r["path"]).PixelData == dcmread(by_uid[r["sop_uid"]]).PixelData
        on_disk = [p for p in svc.store.store_dir.rglob("*") if p.is_file()]
        assert not [p for p in on_disk if p.suffix == ".tmp"]
        assert {p.name for p in on_disk} == {f"{u}.dcm" for u in acked}  # nothing refused was kept
    finally:
        svc.stop()


def test_low_space_watermark_refuses_before_the_disk_fills(settings, small_fs, ct_small):
    """Fails if associations are admitted, or C-STOREs succeed, below the watermark."""
    settings.min_free_mb, settings.min_free_percent = 3, 100  # min(3 MiB, 100 % of 4 MiB) = 3 MiB
    svc = _service(settings, small_fs)
    svc.adapter.start()
    try:
        held = _assoc(svc.dicom_port)
        assert held.is_established
        filler = _fill(small_fs, 2 * 2**20)  # 2 MiB free: below the watermark, far from full
        wait_until(lambda: svc.adapter.space_problem() is not None, "the SCP sees the low space")
        rsp = held.send_c_store(dcmread(sorted(ct_small.iterdir())[0]))
        assert rsp.Status == DIMSE_OUT_OF_RESOURCES and "watermark" in rsp.ErrorComment
        held.release()
        refused = _assoc(svc.dicom_port)
        rj = peer_reject(refused)
        assert rj is not None
        assert (rj.result, rj.result_source, rj.diagnostic) == REJECT_LOW_SPACE
        health = TestClient(base_url="http://127.0.0.1", app=create_app(svc, manage=False)).get("/health").json()
        assert "low space" in health["lowSpace"] and "--min-free-mb" in health["lowSpace"]
        assert svc.store.count() == 0
        filler.unlink()
        again = _assoc(svc.dicom_port)
        assert again.is_established
        again.release()
    finally:
        svc.adapter.stop()
