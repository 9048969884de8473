"""kill -9 of ``clara-stream dicom serve`` with exports still in its outbox (the destination was down):
after the restart, with the destination back, every output reaches it and the outbox ends 'sent'.
Nothing acknowledged is lost between C-STORE in, the job, and C-STORE out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from pydicom import dcmread

from .conftest import NODELAY_ENV, Storescp, wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")


def test_outbox_left_by_kill9_is_delivered_after_restart(serve_factory, ct_small, dcmtk, tmp_path, monkeypatch):
    """Fails if the outbox lives only in memory, a restart forgets pending exports, or a job's
    results are not on record before it shows succeeded."""
    monkeypatch.setenv("CLARA_STREAM_EXPORT_BACKOFF_S", "0.2")
    monkeypatch.setenv("CLARA_STREAM_EXPORT_MAX_ATTEMPTS", "1000")
    pacs = Storescp(tmp_path / "pacs", dcmtk.storescp, "PACS")  # not started yet: the destination is down
    seed = {
        "sources": [{"name": "scu", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
        "destinations": [{"name": "pacs", "aeTitle": "PACS", "hostIp": "127.0.0.1", "port": pacs.port}],
        "pipelines": [{"name": "copy", "app": PROBE, "overrides": ["probe.copy_dicom=true"]}],
        "aes": [{"name": "out", "aeTitle": "OUT", "timeout": 1, "workflows": ["copy"], "destinations": ["pacs"],
                 "grouping": "0020,000E"}],
    }  # fmt: skip
    serve = serve_factory(seed).start()
    sent = subprocess.run([dcmtk.storescu, "-aet", "STORESCU", "-aec", "OUT", "127.0.0.1", str(serve.dicom_port),
                           "+sd", str(ct_small)], env=NODELAY_ENV, capture_output=True, text=True)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    api = httpx.Client(base_url=serve.url, timeout=10)
    uids = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ct_small.iterdir()}

    def pending_exports():
        exports = [e for r in api.get("/results").json() for e in r["exports"]]
        tried = [e for e in exports if e["state"] == "pending" and e["attempts"] >= 1]
        return exports if len(exports) == len(uids) and len(tried) == len(uids) else None

    wait_until(pending_exports, "every output in the outbox, tried once against the down destination", 120)
    serve.kill9()

    pacs.start()
    try:
        serve.start()
        api = httpx.Client(base_url=serve.url, timeout=10)
        wait_until(lambda: {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in pacs.files()} == uids,
                   "every output at the destination", 120)  # fmt: skip
        exports = [e for r in api.get("/results").json() for e in r["exports"]]
        assert {e["state"] for e in exports} == {"sent"} and len(exports) == len(uids)
    finally:
        pacs.stop()
