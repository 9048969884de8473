"""The DICOM SCP against real senders (dcmtk storescu/echoscu, pynetdicom SCU) on loopback."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.sop_class import CTImageStorage, Verification

from clara_stream.platform.adapter import DicomAdapter
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.instances import InstanceStore
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import GROUPING_SERIES, AeConfig, PipelineConfig, SourceConfig
from clara_stream.platform.scu import peer_reject
from clara_stream.platform.status import (
    DIMSE_CANNOT_UNDERSTAND,
    DIMSE_SOP_CLASS_NOT_SUPPORTED,
    DIMSE_SUCCESS,
    REJECT_CALLED_AE,
    REJECT_CALLING_AE,
)

from .conftest import NODELAY_ENV

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


class Env:
    def __init__(self, settings):
        self.settings = settings
        data = Path(settings.data_dir)
        self.db = Database(data / "state.sqlite")
        self.config = ConfigStore(self.db)
        self.store = InstanceStore(self.db, data / "store")
        self.queue = JobQueue(self.db, data / "jobs")
        self.config.create("source", SourceConfig(name="dcmtk", ae_title="STORESCU", host_ip="127.0.0.1"))
        self.config.create("source", SourceConfig(name="py", ae_title="PYSCU", host_ip="127.0.0.1"))
        self.config.create("source", SourceConfig(name="remote", ae_title="REMOTE", host_ip="10.1.2.3"))
        self.config.put_pipeline(PipelineConfig(name="seg", app="organ_segmentation"))
        self.config.create(
            "ae",
            AeConfig(
                name="organseg", ae_title="ORGANSEG", timeout=1, workflows=["seg"], grouping=GROUPING_SERIES, priority=3
            ),
        )
        self.config.create("ae", AeConfig(name="mronly", ae_title="MRONLY", allowed_sop_classes=[MR_STORAGE]))
        self.config.create("ae", AeConfig(name="noct", ae_title="NOCT", ignored_sop_classes=[str(CTImageStorage)]))
        self.adapter = DicomAdapter(settings, self.config, self.store)
        self.port = self.adapter.start()

    def scu(self, called: str = "ORGANSEG", calling: str = "PYSCU"):
        ae = AE(ae_title=calling)
        ae.requested_contexts = StoragePresentationContexts[:100]
        ae.add_requested_context(Verification)
        return ae.associate("127.0.0.1", self.port, ae_title=called)


@pytest.fixture
def env(settings, dcmtk):
    e = Env(settings)
    e.storescu = dcmtk.storescu  # resolved by absolute path, identity checked
    yield e
    e.adapter.stop()


def _storescu(env: Env, folder: Path, aet: str = "STORESCU", aec: str = "ORGANSEG") -> subprocess.CompletedProcess:
    """dcmtk's storescu (the one the ``dcmtk`` fixture checked) sends ``folder`` to the adapter."""
    return subprocess.run(
        [env.storescu, "-aet", aet, "-aec", aec, "127.0.0.1", str(env.port), "+sd", str(folder)],
        env=NODELAY_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_with_new_uids(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    out = []
    for p in sorted(src.iterdir()):
        ds = dcmread(p)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(dst / p.name, enforce_file_format=True)
        out.append(dst / p.name)
    return out


def _wait(cond, timeout_s: float = 10.0) -> None:
    deadline = time.time() + timeout_s
    while not cond():
        if time.time() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_storescu_series_is_stored_intact_and_grouped_into_a_job(env, ct_small):
    r = _storescu(env, ct_small)
    assert r.returncode == 0, r.stderr
    _wait(lambda: env.store.count(state="complete") == 16)
    for src in sorted(ct_small.iterdir()):
        ds = dcmread(src)
        stored = dcmread(
            env.store.store_dir / "ORGANSEG" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        )
        assert stored.PixelData == ds.PixelData and stored.SeriesInstanceUID == ds.SeriesInstanceUID
    assert env.store.close_ready_groups(env.config, env.queue, now=time.time() - 10) == []  # not idle yet
    jobs = env.store.close_ready_groups(env.config, env.queue, now=time.time() + 2)
    assert len(jobs) == 1
    job = env.queue.get(jobs[0])
    assert (job.pipeline, job.priority, job.status, job.source) == ("seg", 3, "queued", "dicom:ORGANSEG")
    assert len(list(Path(job.input_dir).iterdir())) == 16


def test_unknown_calling_ae_host_and_called_ae_are_refused(env, ct_small, dcmtk):
    r = _storescu(env, ct_small, aet="INTRUDER")
    assert r.returncode != 0
    for calling, called, reason in [
        ("INTRUDER", "ORGANSEG", REJECT_CALLING_AE),
        ("REMOTE", "ORGANSEG", REJECT_CALLING_AE),  # right title, wrong host
        ("PYSCU", "NOSUCHAE", REJECT_CALLED_AE),
    ]:
        assoc = env.scu(called=called, calling=calling)
        rj = peer_reject(assoc)
        assert rj is not None, (calling, called)
        assert (rj.result, rj.result_source, rj.diagnostic) == reason
    assert env.store.count() == 0
    r = subprocess.run(
        [dcmtk.echoscu, "-aet", "STORESCU", "-aec", "ORGANSEG", "127.0.0.1", str(env.port)],
        env=NODELAY_ENV,
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0  # a configured source is served


def test_malformed_dataset_fails_and_service_keeps_serving(env, ct_small):
    good = dcmread(sorted(ct_small.iterdir())[0])
    bad = dcmread(sorted(ct_small.iterdir())[1])
    del bad.StudyInstanceUID
    mismatched = dcmread(sorted(ct_small.iterdir())[2])
    assoc = env.scu()
    assert assoc.is_established
    rsp = assoc.send_c_store(bad)
    assert rsp.Status == DIMSE_CANNOT_UNDERSTAND
    assert "(0020,000D) StudyInstanceUID" in rsp.ErrorComment
    rsp = assoc.send_c_store(good)
    assert rsp.Status == DIMSE_SUCCESS
    assoc.release()
    assoc = env.scu(called="MRONLY")
    rsp = assoc.send_c_store(mismatched)
    assert rsp.Status == DIMSE_SOP_CLASS_NOT_SUPPORTED
    assoc.release()
    assoc = env.scu(called="NOCT")
    assert assoc.send_c_store(good).Status == DIMSE_SUCCESS  # MIG: ignored classes are acknowledged, dropped
    assoc.release()
    _wait(lambda: env.store.count(state="complete") == 1)
    assert env.store.count(sop_uid=str(good.SOPInstanceUID)) == 1
    assert env.store.count(called_ae="NOCT") == 0
    assert env.store.count(sop_uid=str(bad.SOPInstanceUID)) == 0


def test_twenty_concurrent_associations_lose_nothing(env, ct_small, tmp_path, dcmtk):
    folders = [tmp_path / f"send{i:02d}" for i in range(20)]
    sent = [p for f in folders for p in _copy_with_new_uids(ct_small, f)]
    procs = [
        subprocess.Popen(
            [dcmtk.storescu, "-aet", "STORESCU", "-aec", "ORGANSEG", "127.0.0.1", str(env.port), "+sd", str(f)],
            env=NODELAY_ENV,
            stderr=subprocess.PIPE,
        )
        for f in folders
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _wait(lambda: env.store.count(state="complete") == 20 * 16)
    rows = env.db.query("SELECT path, sop_uid FROM instance")
    assert len({r["sop_uid"] for r in rows}) == 320
    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in sent}
    for r in rows[::7]:  # spot-check content of every 7th file
        assert dcmread(r["path"]).PixelData == dcmread(by_uid[r["sop_uid"]]).PixelData
    jobs = env.store.close_ready_groups(env.config, env.queue, now=time.time() + 2)
    assert len(jobs) == 20  # one series per association, grouping by series


@pytest.mark.parametrize("ends", ["a-abort b-release", "b-release a-abort", "a-abort b-abort"])
def test_same_bytes_from_two_associations_outlive_one_abort(settings, ct_small, ends):
    """A and B send identical bytes into one open group, so B is acknowledged through A's row.
    A's abort (its instances dropped, the default) must not delete what B was told is stored,
    whichever ends first; only when both abort is the instance dropped."""
    e = Env(settings)
    try:
        ds = dcmread(sorted(ct_small.iterdir())[0])
        a, b = e.scu(), e.scu()
        assert a.send_c_store(ds).Status == DIMSE_SUCCESS and b.send_c_store(ds).Status == DIMSE_SUCCESS
        (path,) = [r["path"] for r in e.db.query("SELECT path FROM instance")]
        for left, step in zip((1, 0), ends.split()):
            who, how = step.split("-")
            assoc = {"a": a, "b": b}[who]
            assoc.abort() if how == "abort" else assoc.release()
            # the server drops a connection only after it recorded how the association ended
            _wait(lambda n=left: len(e.adapter.sockets()) == n and e.adapter.settle() == 0)
        rows = e.db.query("SELECT state FROM instance")
        if ends == "a-abort b-abort":
            assert rows == [] and not Path(path).exists()
        else:
            assert [r["state"] for r in rows] == ["complete"]
            assert dcmread(path).PixelData == ds.PixelData
    finally:
        e.adapter.stop()


@pytest.mark.parametrize("keep", [False, True])
def test_aborted_association_drops_or_keeps_its_instances(settings, ct_small, keep):
    settings.keep_aborted = keep
    e = Env(settings)
    try:
        assoc = e.scu()
        for p in sorted(ct_small.iterdir())[:3]:
            assert assoc.send_c_store(dcmread(p)).Status == DIMSE_SUCCESS
        paths = [r["path"] for r in e.db.query("SELECT path FROM instance")]
        assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
        assoc.abort()
        if keep:
            _wait(lambda: e.store.count(state="complete") == 3)
        else:
            _wait(lambda: e.store.count() == 0)
        assert all(Path(p).is_file() == keep for p in paths)
    finally:
        e.adapter.stop()


def test_max_associations_rejects_the_extra_one(settings):
    settings.max_associations = 2
    e = Env(settings)
    try:
        held = [e.scu() for _ in range(2)]
        assert all(a.is_established for a in held)
        extra = e.scu()
        rj = peer_reject(extra)
        assert rj is not None and rj.result == 0x02  # transient: try later
        for a in held:
            a.release()
        _wait(lambda: e.adapter.active_count() == 0)
        again = e.scu()
        assert again.is_established
        again.release()
    finally:
        e.adapter.stop()


def test_tls_association(settings, tls_files):
    cert, key = tls_files
    settings.tls_cert, settings.tls_key = cert, key
    e = Env(settings)
    try:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        ae = AE(ae_title="PYSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", e.port, ae_title="ORGANSEG", tls_args=(ctx, "localhost"))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == DIMSE_SUCCESS
        assoc.release()
        plain = AE(ae_title="PYSCU")
        plain.add_requested_context(CTImageStorage)
        plain.acse_timeout = plain.network_timeout = 3
        assert not plain.associate("127.0.0.1", e.port, ae_title="ORGANSEG").is_established
    finally:
        e.adapter.stop()


def test_concurrent_writers_do_not_lock_the_database(env, ct_small):
    """C-STORE threads and a reader thread hammering SQLite at once: no 'database is locked'."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                env.store.count()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        assert _storescu(env, ct_small).returncode == 0
    finally:
        stop.set()
        t.join()
    assert not errors
    assert env.store.count() == 16


def test_accepted_sockets_have_nagle_off(env):
    import socket

    assoc = env.scu()
    try:
        _wait(lambda: env.adapter.sockets())
        (sock,) = env.adapter.sockets()  # the accepted socket, on either receive path
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the point of the test
def test_sop_instance_uid_cannot_escape_the_store(env, ct_small, tmp_path):
    from pydicom import config as pydicom_config

    ds = dcmread(sorted(ct_small.iterdir())[0])
    evil = "../../../../" + tmp_path.name + "-escaped"
    old = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    try:
        ds.SOPInstanceUID = evil
        assoc = env.scu()
        rsp = assoc.send_c_store(ds)
        assoc.release()
    finally:
        pydicom_config.settings.writing_validation_mode = old
    assert rsp.Status == DIMSE_CANNOT_UNDERSTAND and "expected (0000,1000)" in rsp.ErrorComment
    assert env.store.count() == 0
    assert not list(Path(env.settings.data_dir).parent.rglob("*-escaped*"))
