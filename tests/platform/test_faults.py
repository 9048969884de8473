"""Faults a hospital network produces: poison groups, bursts, idle TLS peers, and the fsync order.

Disk-full and low-space tests are in ``test_disk_full.py`` (they mount a real small tmpfs).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from clara_stream.platform import instances
from clara_stream.platform.adapter import DicomAdapter
from clara_stream.platform.grouper import failed_groups
from clara_stream.platform.schemas import AeConfig, SourceConfig
from clara_stream.platform.scu import peer_reject
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import DIMSE_SUCCESS, REJECT_BUSY

from .conftest import wait_until


def _service(settings, **aes) -> PlatformService:
    svc = PlatformService(settings)
    svc.config.create("source", SourceConfig(name="py", ae_title="PYSCU", host_ip="127.0.0.1"))
    for name, workflows in aes.items():
        svc.config.create("ae", AeConfig(name=name, ae_title=name.upper(), timeout=1, workflows=workflows))
    return svc


def _send(port: int, called: str, files: list[Path]) -> list[int]:
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(dcmread(f)).Status) for f in files]
    finally:
        assoc.release()


def _bad_then_good(svc: PlatformService, bad: str, files: list[Path], spoil=None) -> tuple[list[str], dict]:
    """Send 3 instances to AE ``bad`` (then ``spoil()`` them), 3 to GOOD; close the groups.

    Returns the new job ids and the one failed group.
    """
    svc.adapter.start()
    try:
        assert _send(svc.dicom_port, bad, files[:3]) == [DIMSE_SUCCESS] * 3
        wait_until(lambda: svc.store.count(state="complete") == 3, "first group complete")
        if spoil is not None:
            spoil()
        assert _send(svc.dicom_port, "GOOD", files[3:6]) == [DIMSE_SUCCESS] * 3
        wait_until(lambda: svc.store.count(state="complete") == 6, "second group complete")
    finally:
        svc.adapter.stop()
    jobs = svc.store.close_ready_groups(svc.config, svc.queue, now=time.time() + 100)
    assert [svc.queue.get(j).source for j in jobs] == ["dicom:GOOD"]
    (failed,) = failed_groups(svc.db)
    assert failed["called_ae"] == bad
    return jobs, failed


def test_a_poison_group_is_failed_with_its_reason_and_others_go_on(settings, ct_small):
    """Fails if one group that cannot become a job (its stored file deleted by an operator) stops
    job creation for every other AE, before or after a restart."""
    svc = _service(settings, poison=["organ_segmentation"], good=["organ_segmentation"])
    victim: list[str] = []

    def delete_one() -> None:  # an operator "cleaning up"
        victim.append(svc.db.query_one("SELECT path FROM instance WHERE called_ae = 'POISON'")["path"])
        os.unlink(victim[0])

    jobs, failed = _bad_then_good(svc, "POISON", sorted(ct_small.iterdir()), delete_one)
    assert "missing" in failed["error"] and victim[0] in failed["error"]
    assert {p.parent.name for p in svc.queue.jobs_dir.glob("*/input")} == set(jobs)  # no half-made job
    again = PlatformService(settings)  # a restart
    assert again.store.close_ready_groups(again.config, again.queue, now=time.time() + 100) == []  # not retried


def test_a_deleted_pipeline_fails_only_its_group(settings, ct_small):
    """An AE whose workflow was deleted after it was saved: its group fails, the other AE's works."""
    svc = _service(settings, gone=["organ_segmentation"], good=["organ_segmentation"])
    svc.config.put_pipeline(svc.config.pipeline("organ_segmentation").model_copy(update={"name": "seg2"}))
    svc.config.update("ae", svc.config.get("ae", "gone").model_copy(update={"workflows": ["seg2"]}))
    svc.config.delete_pipeline("seg2")
    _, failed = _bad_then_good(svc, "GONE", sorted(ct_small.iterdir()))
    assert "seg2" in failed["error"]


def test_max_associations_admits_exactly_n_in_a_burst(settings):
    """Fails with pynetdicom's own limit, which counts threads still starting and admits fewer
    than N (the issue saw 3-4 of 5) under a burst."""
    settings.max_associations = 5
    svc = _service(settings, inbox=[])
    svc.adapter.start()
    try:
        for _ in range(3):
            start = threading.Barrier(9)
            results: list = [None] * 9

            def go(i: int, start: threading.Barrier, results: list) -> None:
                ae = AE(ae_title="PYSCU")
                ae.add_requested_context(Verification)
                ae.acse_timeout = 60
                start.wait()
                results[i] = ae.associate("127.0.0.1", svc.dicom_port, ae_title="INBOX")

            threads = [threading.Thread(target=go, args=(i, start, results)) for i in range(9)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            up = [a for a in results if a.is_established]
            refused = [rj for a in results if (rj := peer_reject(a)) is not None]
            assert (len(up), len(refused)) == (5, 4)
            for rj in refused:
                assert (rj.result, rj.result_source, rj.diagnostic) == REJECT_BUSY
            for a in up:
                a.release()
            wait_until(lambda: svc.adapter._slots._value == 5, "all slots returned")
    finally:
        svc.adapter.stop()


def _tls_echo(port: int, cert: Path) -> int:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title="INBOX", tls_args=(ctx, "localhost"))
    assert assoc.is_established
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def test_idle_and_half_open_tls_peers_never_block_others(settings, tls_files):
    """Fails if the TLS handshake runs on the accept thread: with one idle TCP connection and one
    that sent half a ClientHello, no other peer can associate (the issue saw 24 s stalls)."""
    settings.tls_cert, settings.tls_key = tls_files
    settings.tls_handshake_timeout_s = 600  # the timeout must not be what frees the listener
    svc = _service(settings, inbox=[])
    svc.adapter.start()
    idle = socket.create_connection(("127.0.0.1", svc.dicom_port))
    half = socket.create_connection(("127.0.0.1", svc.dicom_port))
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
    try:
        assert _tls_echo(svc.dicom_port, tls_files[0]) == DIMSE_SUCCESS
        assert _tls_echo(svc.dicom_port, tls_files[0]) == DIMSE_SUCCESS
    finally:
        idle.close()
        half.close()
        svc.adapter.stop()


def test_tls_handshake_timeout_cuts_a_silent_peer(settings, tls_files):
    """A client that never speaks is disconnected after ``tls_handshake_timeout_s``."""
    settings.tls_cert, settings.tls_key = tls_files
    settings.tls_handshake_timeout_s = 0.5
    svc = _service(settings, inbox=[])
    svc.adapter.start()
    try:
        idle = socket.create_connection(("127.0.0.1", svc.dicom_port))
        idle.settimeout(60)  # liveness guard only
        assert idle.recv(1) == b""  # the server closed it
        idle.close()
    finally:
        svc.adapter.stop()


def test_success_only_after_write_sync_rename_index(settings, ct_small, monkeypatch):
    """Records the real calls (they still happen) and the status the handler returns: fails if the
    fdatasync is removed, moved after the rename, or success is answered before the index commit."""
    calls: list[str] = []
    tmp_fds: set[int] = set()
    real = {name: getattr(os, name) for name in ("open", "writev", "fdatasync", "link")}

    def rec_open(path, flags, mode=0o777, **kw):
        fd = real["open"](path, flags, mode, **kw)
        if str(path).endswith(".tmp"):
            tmp_fds.add(fd)
            calls.append("open")
        return fd

    def rec(name):
        def wrapper(*args, **kw):
            out = real[name](*args, **kw)
            if name == "link" and str(args[0]).endswith(".tmp") or name != "link" and args[0] in tmp_fds:
                calls.append(name)
            return out

        return wrapper

    monkeypatch.setattr(instances.os, "open", rec_open)
    for name in ("writev", "fdatasync", "link"):
        monkeypatch.setattr(instances.os, name, rec(name))
    real_index = instances.InstanceStore._index
    monkeypatch.setattr(
        instances.InstanceStore, "_index", lambda self, *a, **k: (real_index(self, *a, **k), calls.append("index"))[0]
    )
    real_store = DicomAdapter.receive_instance  # both receive paths answer what it returns
    monkeypatch.setattr(
        DicomAdapter,
        "receive_instance",
        lambda self, **kw: (rsp := real_store(self, **kw), calls.append(f"status {rsp!r}"))[0],
    )
    svc = _service(settings, inbox=[])
    svc.adapter.start()
    try:
        assert _send(svc.dicom_port, "INBOX", sorted(ct_small.iterdir())[:2]) == [DIMSE_SUCCESS] * 2
    finally:
        svc.adapter.stop()
    one = ["open", "writev", "fdatasync", "link", "index", "status 0"]  # link: publish, never overwrite
    assert calls == one + one


def _burst(port: int, n: int) -> list:
    start = threading.Barrier(n)
    results: list = [None] * n

    def go(i: int) -> None:
        ae = AE(ae_title="PYSCU")
        ae.add_requested_context(CTImageStorage)
        ae.acse_timeout = 60
        start.wait()
        results[i] = ae.associate("127.0.0.1", port, ae_title="INBOX")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_acceptor_processes_share_the_port_and_the_exact_limit(settings, ct_small):
    """Two SCP processes on one port (SO_REUSEPORT): the limit stays exact across them (fails with a
    per-process counter: up to 2 x N admitted) and every acknowledged instance is indexed once."""
    import psutil

    settings.acceptors, settings.max_associations = 2, 4
    svc = _service(settings, inbox=[])
    svc.start()
    try:
        (child,) = svc._acceptors.procs

        def child_listens() -> bool:
            conns = psutil.Process(child.pid).net_connections(kind="tcp")
            return any(c.status == "LISTEN" and c.laddr.port == svc.dicom_port for c in conns)

        wait_until(child_listens, "the second acceptor listening")
        files = sorted(ct_small.iterdir())
        sent: set[str] = set()
        for burst in range(2):
            results = _burst(svc.dicom_port, 8)
            up = [a for a in results if a.is_established]
            refused = [rj for a in results if (rj := peer_reject(a)) is not None]
            assert (len(up), len(refused)) == (4, 4)
            assert all((rj.result, rj.result_source, rj.diagnostic) == REJECT_BUSY for rj in refused)
            for i, a in enumerate(up):
                for f in files[i * 4 : i * 4 + 4]:
                    ds = dcmread(f)
                    # new instances each burst: whether the 1 s group closed in between does not matter
                    uid = generate_uid(entropy_srcs=[ds.SOPInstanceUID, str(burst)])
                    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
                    assert a.send_c_store(ds).Status == DIMSE_SUCCESS
                    sent.add(ds.SOPInstanceUID)
                a.release()
            wait_until(lambda: svc.adapter.active_count() == 0, "all slots returned")
        wait_until(lambda: svc.store.count(state="complete") == 32, "32 instances complete")
        rows = [r["sop_uid"] for r in svc.db.query("SELECT sop_uid FROM instance")]
        assert sorted(rows) == sorted(sent)  # each acknowledged instance indexed exactly once
    finally:
        svc.stop()
    assert not child.is_alive()
