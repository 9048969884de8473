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


@pytest.mark.chromium
def test_console_shows_job_and_its_status_change(serve_factory, tmp_path, peer):
    chromium = str(peer(CHROMIUM, ["--version"], "chromium"))
    playwright = pytest.importorskip("playwright.sync_api")
    gate = tmp_path / "gate"  # the job runs until the page has shown it running
    seed = {"pipelines": [{"name": "probe_slow", "app": PROBE, "overrides": [f"probe.wait_for={gate}"]}]}
    serve = serve_factory(seed).start()
    inbox = tmp_path / "in"
    inbox.mkdir()
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(serve.url + "/console")
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
        finally:
            browser.close()
