"""The execution view in headless Chromium: the job page's graph changes colour with operator state,
a failing operator is drawn red with its error as text, cancel/retry work, the pipeline page lists
failures with reasons. Checked by the screenshot's pixels and the DOM (not by existence).

Oracles: the box colours the stylesheet gives each state, the flow app's own records of what its
operators did, and the job's REST state.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.platform.conftest import wait_until
from tests.platform.test_console import console  # noqa: F401 - the Chromium page fixture

FLOW = str(Path(__file__).parent / "apps" / "flow")
COLOURS = {"waiting": (0xC8, 0xCC, 0xD2), "running": (0xF2, 0xC2, 0x30), "done": (0x3A, 0xA8, 0x5E),
           "failed": (0xD2, 0x3C, 0x3C)}  # console.css: g.op.<state> rect fill
pytestmark = pytest.mark.chromium


def box_colour(page, name: str) -> tuple[int, int, int]:
    """The most frequent colour inside the operator's box on a screenshot (its fill; text is small)."""
    box = page.locator(f'g.op[data-name="{name}"] rect').bounding_box()
    png = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    y0, y1 = int(box["y"]) + 3, int(box["y"] + box["height"]) - 3
    x0, x1 = int(box["x"]) + 3, int(box["x"] + box["width"]) - 3
    px = np.asarray(png)[y0:y1, x0:x1]
    colours, counts = np.unique(px.reshape(-1, 3), axis=0, return_counts=True)
    return tuple(int(c) for c in colours[counts.argmax()])


def assert_state(page, name: str, state: str) -> None:
    page.wait_for_selector(f'g.op[data-name="{name}"][data-state="{state}"]', timeout=90000)
    got = box_colour(page, name)
    assert np.abs(np.subtract(got, COLOURS[state])).max() <= 6, (name, state, got)


def start(serve_factory, tmp_path: Path, **overrides: str):
    pipeline = {"name": "flow", "app": FLOW, "overrides": [f"{k}={v}" for k, v in overrides.items()]}
    serve = serve_factory({"pipelines": [pipeline]}).start()
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    job = httpx.post(serve.url + "/jobs", json={"pipeline": "flow", "input": str(inbox)}).raise_for_status().json()
    return serve, job["id"]


def test_running_job_page_shows_operators_changing_state(serve_factory, tmp_path, console):  # noqa: F811
    """Fails if the page is not live (states drawn once), if a state is drawn in another colour, or
    if counts, outputs or the log are not the job's."""
    gate = tmp_path / "gate"
    serve, job_id = start(serve_factory, tmp_path, **{"src.count": "4", "src.hold_at": "1", "src.gate": str(gate)})
    page = console(serve.url)
    page.goto(f"{serve.url}/console/jobs/{job_id}")
    assert_state(page, "src", "running")  # held inside its first compute: nothing has reached the others
    for name in ("mid", "sink"):
        assert_state(page, name, "waiting")
    assert page.text_content('g.op[data-name="src"] text.stats').startswith("0 msg")
    assert page.locator("path.edge").count() == 2
    gate.touch()
    page.wait_for_selector('body[data-status="succeeded"]', timeout=90000)
    out = Path(httpx.get(f"{serve.url}/jobs/{job_id}").json()["outputDir"])
    for name in ("src", "mid", "sink"):
        assert_state(page, name, "done")
        own = json.loads((out / f"{name}.json").read_text())["messages"]
        assert page.text_content(f'g.op[data-name="{name}"] text.stats').startswith(f"{own} msg · ")
        assert page.inner_text(f'#operators tr[data-id="{name}"] td:nth-child(3)') == str(own) == "4"
    files = sorted(page.locator("#outputs td.file a").all_inner_texts())
    assert files == sorted(p.name for p in out.iterdir()) == ["mid.json", "sink.json", "src.json"]
    assert "done: flow" in page.inner_text("#log")
    assert page.is_disabled("#cancel") and not page.is_disabled("#retry")
    assert page.inner_text("#error") == "" and page.inner_text("#failures") == ""


def test_failing_operator_drawn_red_with_its_error_and_retry_and_pipeline_page(serve_factory, tmp_path, console):  # noqa: F811
    """Fails if the failure is not red, if its error is lost or rendered as markup (the message holds
    ``<b>``), if retry does not start a new job, or if the pipeline page hides the failure's reason."""
    serve, job_id = start(serve_factory, tmp_path, **{"src.count": "5", "sink.fail_at": "2"})
    page = console(serve.url)
    page.goto(f"{serve.url}/console/jobs/{job_id}")
    page.wait_for_selector('body[data-status="failed"]', timeout=90000)
    assert_state(page, "sink", "failed")
    assert_state(page, "src", "done")
    error = "compute() failed: ValueError: FlowSinkOp: expected <b>a value</b> below 4; got a deliberate failure"
    assert page.inner_text('#failures li[data-name="sink"]') == f"sink: {error}"
    assert page.inner_text('#operators tr[data-id="sink"] td.reason') == error
    assert page.locator("#failures b, #operators b, svg b").count() == 0  # text, never markup
    assert page.locator('g.op[data-name="sink"] title').text_content().endswith(error)
    page.click("#retry")
    page.wait_for_url(lambda url: "/console/jobs/" in url and job_id not in url, timeout=30000)
    new_id = page.url.rstrip("/").split("/")[-1]
    assert httpx.get(f"{serve.url}/jobs/{new_id}").json()["pipeline"] == "flow"
    page.wait_for_selector('body[data-status="failed"]', timeout=90000)  # the same input fails the same way
    page.goto(f"{serve.url}/console/pipelines/flow")
    page.wait_for_selector(f'#jobs tr[data-id="{new_id}"][data-status="failed"]', timeout=30000)
    assert page.locator("#jobs tbody tr").count() == 2
    reason = page.inner_text(f'#jobs tr[data-id="{job_id}"] td.reason')
    assert reason.startswith("app exited with code 1") and "FlowSinkOp: expected <b>a value</b>" in reason
    page.wait_for_selector('g.op[data-name="sink"]', timeout=60000)
    assert [page.locator("g.op").nth(i).get_attribute("data-name") for i in range(3)] == ["src", "mid", "sink"]


def test_cancel_button_stops_a_running_job_and_pages_carry_the_csp(serve_factory, tmp_path, console):  # noqa: F811
    gate = tmp_path / "never"
    serve, job_id = start(serve_factory, tmp_path, **{"src.count": "3", "src.hold_at": "1", "src.gate": str(gate)})
    page = console(serve.url)
    page.goto(f"{serve.url}/console/jobs/{job_id}")
    assert_state(page, "src", "running")
    page.click("#cancel")
    page.wait_for_selector('body[data-status="cancelled"]', timeout=90000)
    wait_until(lambda: httpx.get(f"{serve.url}/jobs/{job_id}").json()["status"] == "cancelled", "the job cancelled")
    for path in ("/console", f"/console/jobs/{job_id}", "/console/pipelines/flow", "/console/static/job.js"):
        csp = httpx.get(serve.url + path).headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe" not in csp, path
    assert httpx.get(serve.url + "/console/static/..%2Fhealth.py").status_code == 404


def test_job_page_needs_the_token_of_a_protected_service(serve_factory, tmp_path, console, monkeypatch):  # noqa: F811
    """The page itself is public; every call it makes carries the token from ``#token=``, kept per tab.
    Fails if the page reaches data without the token, or cannot with it."""
    monkeypatch.setenv("CLARA_STREAM_API_TOKEN", "s3cret-token")
    pipeline = {"name": "flow", "app": FLOW, "overrides": ["src.count=2"]}
    serve = serve_factory({"pipelines": [pipeline]}).start()
    (tmp_path / "in").mkdir()
    auth = {"Authorization": "Bearer s3cret-token"}
    job = httpx.post(serve.url + "/jobs", json={"pipeline": "flow", "input": str(tmp_path / "in")}, headers=auth)
    job_id = job.raise_for_status().json()["id"]
    assert httpx.get(f"{serve.url}/jobs/{job_id}/operators").status_code == 401
    page = console(serve.url)
    page.goto(f"{serve.url}/console/jobs/{job_id}")
    page.wait_for_selector("#error:has-text('HTTP 401')", timeout=30000)
    assert page.locator("g.op").count() == 0
    page.goto(f"{serve.url}/console/jobs/{job_id}#token=s3cret-token")
    page.wait_for_selector('body[data-status="succeeded"]', timeout=90000)
    assert page.url.endswith(f"/console/jobs/{job_id}")  # the token left the address bar
    assert_state(page, "sink", "done")
    assert page.inner_text("#error") == ""
