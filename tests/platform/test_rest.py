"""REST API over the real service: MIG-style config CRUD, C-ECHO, jobs, results, health, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clara_stream.platform.api.app import create_app
from clara_stream.platform.service import PlatformService

from .conftest import pick_port, wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")


@pytest.fixture
def client(settings):
    svc = PlatformService(settings)
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as c:
        yield c


def test_ae_crud_with_mig_payloads(client):
    ae = {
        "name": "organseg",
        "aeTitle": "ORGANSEG",
        "grouping": "0020,000E",
        "timeout": 3,
        "workflows": ["organ_segmentation"],
        "allowedSopClasses": ["1.2.840.10008.5.1.4.1.1.2"],
        "ignoredSopClasses": [],
    }
    r = client.post("/config/ae", json=ae)
    assert r.status_code == 201, r.text
    assert r.json()["priority"] == 0 and r.json()["grouping"] == "0020,000E"
    assert client.post("/config/ae", json=ae).status_code == 409
    dup_title = dict(ae, name="other")
    assert client.post("/config/ae", json=dup_title).status_code == 409
    assert [a["aeTitle"] for a in client.get("/config/ae").json()] == ["ORGANSEG"]
    r = client.put("/config/ae/organseg", json=dict(ae, timeout=9, priority=4))
    assert r.status_code == 200 and client.get("/config/ae/organseg").json()["timeout"] == 9
    assert client.put("/config/ae/organseg", json=dict(ae, name="x")).status_code == 422
    assert client.delete("/config/ae/organseg").status_code == 200
    r = client.get("/config/ae/organseg")
    assert r.status_code == 404 and "organseg" in r.json()["detail"]


def test_bad_payloads_name_the_field(client):
    r = client.post("/config/ae", json={"name": "a", "aeTitle": "WAY_TOO_LONG_AE_TITLE"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "aeTitle"
    r = client.post("/config/destination", json={"name": "d", "aeTitle": "D", "hostIp": "127.0.0.1", "port": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "port"
    r = client.post("/config/ae", json={"name": "a", "aeTitle": "A", "destinations": ["nowhere"]})
    assert r.status_code == 422 and "destinations" in r.json()["detail"]
    r = client.post("/config/source", json={"name": "s", "aeTitle": "S", "hostIp": "1.2.3.4", "extra": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "extra"


def test_destination_cecho(client, storescp):
    dest = {"name": "pacs", "aeTitle": storescp.ae_title, "hostIp": "127.0.0.1", "port": storescp.port}
    assert client.post("/config/destination", json=dest).status_code == 201
    r = client.get("/config/destination/cecho/pacs")
    assert r.status_code == 200 and r.json()["success"] is True
    down = {"name": "down", "aeTitle": "X", "hostIp": "127.0.0.1", "port": pick_port()}
    client.post("/config/destination", json=down)
    r = client.get("/config/destination/cecho/down")
    assert r.status_code == 502 and "expected an association" in r.json()["detail"]
    assert client.get("/config/destination/cecho/nope").status_code == 404


def test_jobs_submit_run_results_and_errors(client, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.dcm").write_bytes(b"x")
    r = client.put("/pipelines/probe", json={"name": "probe", "app": PROBE, "cpuMemoryMb": 64})
    assert r.status_code == 200, r.text
    r = client.post("/jobs", json={"pipeline": "probe", "input": str(inbox), "priority": 2})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    wait_until(lambda: client.get(f"/jobs/{jid}").json()["status"] in ("succeeded", "failed"), "job finished")
    job = client.get(f"/jobs/{jid}").json()
    assert job["status"] == "succeeded" and job["priority"] == 2 and job["durationS"] is not None
    assert [j["id"] for j in client.get("/jobs", params={"status": "succeeded"}).json()] == [jid]
    results = client.get("/results", params={"job_id": jid}).json()
    assert [Path(x["path"]).name for x in results] == ["probe.json"]
    assert client.get(f"/results/{results[0]['id']}").json()["jobId"] == jid
    assert client.get("/results/999999").status_code == 404
    assert "done: probe" in client.get(f"/jobs/{jid}/log").text
    r = client.post(f"/jobs/{jid}/cancel")
    assert r.status_code == 409 and "expected queued or running" in r.json()["detail"]
    r = client.post("/jobs", json={"pipeline": "nope", "input": str(inbox)})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.post("/jobs", json={"pipeline": "probe", "input": str(tmp_path / "missing")})
    assert r.status_code == 422 and r.json()["detail"].startswith("input:")
    assert client.get("/jobs/unknown").status_code == 404
    assert client.get("/results", params={"job_id": "unknown"}).status_code == 404
    pipes = client.get("/pipelines").json()
    assert pipes[0]["name"] == "probe" and pipes[0]["queued"] == 0


def test_health_openapi_and_console(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and isinstance(h["dicomPort"], int) and h["dicomPort"] > 0
    spec = client.get("/openapi.json").json()
    for path in (
        "/config/ae",
        "/config/source",
        "/config/destination",
        "/config/destination/cecho/{name}",
        "/jobs",
        "/jobs/{job_id}/cancel",
        "/results",
        "/health",
        "/pipelines",
    ):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200
    page = client.get("/console")
    assert page.status_code == 200 and '<table id="jobs">' in page.text


def test_bearer_token_guards_everything_but_health_and_console(settings):
    from pydantic import SecretStr

    settings.api_token = SecretStr("s3cret")
    with TestClient(base_url="http://127.0.0.1", app=create_app(PlatformService(settings, dicom=False))) as c:
        r = c.get("/jobs")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["detail"]
        assert c.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/config/ae", json={"name": "a", "aeTitle": "A"}).status_code == 401
        assert c.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/console").status_code == 200
