"""The live console in headless Chromium: a submitted job appears and its status changes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

PROBE = str(Path(__file__).parent / "apps" / "probe")
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def console(peer):
    """``console(url)`` → a headless-Chromium page on ``url/console`` (Chromium pinned by path)."""
    chromium = str(peer(CHROMIUM, ["--version"], "chromium"))
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)

        def open_page(url: str):
            page = browser.new_page()
            page.goto(url + "/console")
            return page

        try:
            yield open_page
        finally:
            browser.close()


@pytest.mark.chromium
def test_console_shows_job_and_its_status_change(serve_factory, tmp_path, console):
    gate = tmp_path / "gate"  # the job runs until the page has shown it running
    seed = {"pipelines": [{"name": "probe_slow", "app": PROBE, "overrides": [f"probe.wait_for={gate}"]}]}
    serve = serve_factory(seed).start()
    inbox = tmp_path / "in"
    inbox.mkdir()
    page = console(serve.url)
    page.wait_for_selector('#pipelines tbody tr[data-id="probe_slow"]')
    assert page.inner_text('#pipelines tbody tr[data-id="probe_slow"] td:nth-child(4)') == "0"
    job = httpx.post(serve.url + "/jobs", json={"pipeline": "probe_slow", "input": str(inbox)}).json()
    row = f'#jobs tbody tr[data-id="{job["id"]}"]'
    page.wait_for_selector(f'{row}[data-status="running"]', timeout=60000)
    gate.touch()
    page.wait_for_selector(f'{row}:is([data-status="succeeded"], [data-status="failed"])', timeout=60000)
    assert page.inner_text(row + " td.status") == "succeeded"
    assert page.inner_text(row + " td:nth-child(2)") == "probe_slow"
    assert page.inner_text("#error") == ""


@pytest.mark.chromium
def test_console_shows_uid_conflicts_as_text(serve_factory, console, ct_small):
    """Two studies reuse the same SOP Instance UIDs: both jobs show the conflict, and the alert is
    text (a patient-supplied UID never becomes markup)."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    seed = {
        "sources": [{"name": "py", "aeTitle": "PYSCU", "hostIp": "127.0.0.1"}],
        "pipelines": [{"name": "probe", "app": PROBE}],
        "aes": [{"name": "in", "aeTitle": "INBOX", "timeout": 1, "workflows": ["probe"]}],
    }
    serve = serve_factory(seed).start()
    uids = [generate_uid() for _ in range(2)]
    for _study in range(2):
        study, series = generate_uid(), generate_uid()
        ae = AE(ae_title="PYSCU")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", serve.dicom_port, ae_title="INBOX")
        for path, uid in zip(sorted(ct_small.iterdir()), uids, strict=False):
            ds = dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, uid
            assert assoc.send_c_store(ds).Status == 0
        assoc.release()
    page = console(serve.url)
    page.locator("#jobs tbody tr").nth(1).wait_for(timeout=60000)  # no eval: the console's CSP forbids it
    assert page.locator("#jobs tbody tr").count() == 2
    page.wait_for_selector("#jobs td.conflict", timeout=60000)
    assert page.locator("#jobs td.conflict").all_inner_texts() == ["2 instance UID conflict(s)"] * 2
    assert "4 received instance(s) share a SOP Instance UID" in page.inner_text("#alerts")
    assert page.locator("#alerts li *").count() == 0  # text nodes only
