"""SIGTERM of ``clara-stream dicom serve`` (a reboot, an upgrade: what Fleet Command and the kubelet
send) while a modality is sending: new associations are refused cleanly (A-ASSOCIATE-RJ, transient),
the association in progress finishes, the process stops, and after a restart the series becomes
a job that sees every acknowledged instance. (kill -9 mid-send is ``test_crash.py``.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from clara_stream.platform.scu import peer_reject

from .conftest import wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")
SEED = {
    "sources": [{"name": "py", "aeTitle": "PYSCU", "hostIp": "127.0.0.1"}],
    "pipelines": [{"name": "probe", "app": PROBE}],
    "aes": [{"name": "term", "aeTitle": "TERM", "timeout": 1, "workflows": ["probe"], "grouping": "0020,000E"}],
}


def test_sigterm_refuses_new_associations_lets_the_open_one_finish_and_resumes(serve_factory, ct_small):
    """Fails if SIGTERM cuts the association in progress, lets a new one in (or resets its
    connection instead of rejecting it), dies instead of stopping, or loses an acknowledged instance."""
    serve = serve_factory(SEED).start()
    datasets = [dcmread(p) for p in sorted(ct_small.iterdir())]
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage, [str(datasets[0].file_meta.TransferSyntaxUID)])
    sending = ae.associate("127.0.0.1", serve.dicom_port, ae_title="TERM")
    assert sending.is_established
    half = len(datasets) // 2
    for ds in datasets[:half]:
        assert sending.send_c_store(ds).Status == 0x0000

    os.kill(serve.proc.pid, signal.SIGTERM)

    def refused():
        other = ae.associate("127.0.0.1", serve.dicom_port, ae_title="TERM")
        if other.is_established:  # SIGTERM not handled yet
            other.release()
            return None
        assert peer_reject(other) is not None, "a clean A-ASSOCIATE-RJ, not a reset or an abort"
        return other

    other = wait_until(refused, "new associations refused while stopping", 60)
    rj = other.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02), "transient: the sender retries"
    for ds in datasets[half:]:
        assert sending.send_c_store(ds).Status == 0x0000, "the association in progress finishes"
    sending.release()
    # uvicorn re-raises SIGTERM once its graceful shutdown is done (the kubelet sees 143); the
    # association that went on finishing above is what proves the signal was handled, not fatal
    assert serve.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    serve.log.close()

    serve.start()
    api = httpx.Client(base_url=serve.url, timeout=10)

    def done():
        jobs = [j for j in api.get("/jobs").json() if j["pipeline"] == "probe"]
        return jobs if jobs and all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs) else None

    (job,) = wait_until(done, "the series' job finished after the restart", 120)
    assert job["status"] == "succeeded", job["error"]
    seen = (Path(job["outputDir"]) / "probe.json").read_text()
    assert all(f"{ds.SOPInstanceUID}.dcm" in seen for ds in datasets)


def test_the_scp_listens_only_once_recovery_is_done(settings, monkeypatch):
    """While a restarted service recovers (interrupted associations, jobs left running), a modality
    gets a refused connection, never an association into a half-started service. Fails if the SCP
    is started before the instance store and the jobs are recovered."""
    import socket

    from clara_stream.platform.service import PlatformService

    from .conftest import pick_port

    port = pick_port()
    svc = PlatformService(settings.model_copy(update={"dicom_port": port}))
    seen = []
    real_recover, real_requeue = svc.store.recover, svc.scheduler.recover

    def probe_port() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def recover(config):
        seen.append(("store", probe_port()))
        return real_recover(config)

    def requeue():
        seen.append(("jobs", probe_port()))
        return real_requeue()

    monkeypatch.setattr(svc.store, "recover", recover)
    monkeypatch.setattr(svc.scheduler, "recover", requeue)
    svc.start()
    try:
        assert seen == [("store", False), ("jobs", False)]
        assert probe_port(), "listening once started"
    finally:
        svc.stop()
