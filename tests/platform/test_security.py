"""Secure by default: each test tries the attack and asserts the refusal (and that nothing changed)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from fastapi.testclient import TestClient

from clara_stream.platform.api.app import create_app
from clara_stream.platform.service import PlatformService
from clara_stream.platform.settings import PlatformSettings

from .conftest import APPS, NODELAY_ENV

PROBE = str(APPS / "probe")


@pytest.fixture
def client(settings):
    with TestClient(base_url="http://127.0.0.1", app=create_app(PlatformService(settings, dicom=False))) as c:
        yield c


def test_defaults_bind_loopback_and_rest_is_apart_from_dicom(monkeypatch, tmp_path):
    """Fails if either listener defaults beyond loopback or if REST follows --host."""
    monkeypatch.delenv("CLARA_STREAM_HOST", raising=False)
    monkeypatch.delenv("CLARA_STREAM_HTTP_HOST", raising=False)
    s = PlatformSettings(data_dir=tmp_path)
    assert (s.host, s.http_host) == ("127.0.0.1", "127.0.0.1")
    s = PlatformSettings(data_dir=tmp_path, host="0.0.0.0")
    assert s.http_host == "127.0.0.1"
    svc = PlatformService(s, dicom=False)
    assert svc.api_token is None and not (tmp_path / "api-token").exists()  # loopback REST: open


def test_a_loopback_service_refuses_foreign_hosts_and_cross_site_pages(client):
    """DNS rebinding (a foreign Host on the loopback port, or one that only starts like 127.x) gets
    421; while no token is set, a page of another origin gets 403 even for a "simple" text/plain
    POST that needs no preflight, and nothing is created. The service's own pages and clients
    without an Origin (CLI, httpx) are served."""
    for host in ("evil.example", "127.0.0.1.rebind.example:8080"):
        r = client.get("/pipelines", headers={"Host": host})
        assert r.status_code == 421 and "expected a loopback Host header" in r.json()["detail"], host
    body = f"name: x\napp: {PROBE}\n"
    for origin in ("http://evil.example", "null"):
        r = client.post("/pipelines?name=x", content=body, headers={"Content-Type": "text/plain", "Origin": origin})
        assert r.status_code == 403 and origin in r.json()["detail"], origin
    assert client.get("/pipelines").json() == []  # nothing was created
    assert client.get("/pipelines", headers={"Origin": "http://127.0.0.1:8080"}).status_code == 200
    assert client.get("/health", headers={"Host": "localhost:5000"}).status_code == 200


def test_token_generated_0600_beyond_loopback_and_required(settings, tmp_path):
    """Fails if REST beyond loopback answers without a token, or the token file is readable by others."""
    settings.http_host = "0.0.0.0"
    svc = PlatformService(settings, dicom=False)
    token_file = settings.data_dir / "api-token"
    assert svc.token_generated and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token == svc.api_token.get_secret_value() and len(token) >= 32
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as c:
        assert c.get("/jobs").status_code == 401
        assert c.put("/pipelines/x", json={"name": "x", "app": PROBE}).status_code == 401
        assert c.get("/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/health").status_code == 200
        assert c.get("/health").json()["failedGroups"] == "token required"  # study UIDs are not public
        authed = c.get("/health", headers={"Authorization": f"Bearer {token}"}).json()
        assert authed["failedGroups"] == []
    again = PlatformService(settings, dicom=False)  # a restart reuses it and prints nothing new
    assert not again.token_generated and again.api_token.get_secret_value() == token
    os.chmod(token_file, 0o644)
    with pytest.raises(PermissionError, match="expected mode 0600"):
        PlatformService(settings, dicom=False)


def test_serve_beyond_loopback_prints_the_token_once(serve_factory, tmp_path):
    """The CLI path: ``--http-host 0.0.0.0`` generates the token, prints it once, and demands it."""
    import httpx

    serve = serve_factory(extra=["--http-host", "0.0.0.0"]).start()
    token = (serve.data_dir / "api-token").read_text().strip()
    serve.stop()
    log = next(serve.data_dir.glob("serve-*.log")).read_text()
    assert log.count(token) == 1 and "shown once" in log
    serve.start()
    assert httpx.get(serve.url + "/jobs", timeout=10).status_code == 401
    ok = httpx.get(serve.url + "/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200
    serve.stop()
    assert "".join(p.read_text() for p in serve.data_dir.glob("serve-*.log")).count(token) == 1


def test_pipeline_cannot_name_an_arbitrary_folder(client, tmp_path):
    """The attack from the issue: PUT /pipelines/x {"app": "/some/dir"}. Fails if it is stored."""
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "app.py").write_text("import os; os.system('touch /tmp/pwned')\n")
    for app in (str(evil), str(APPS / ".." / ".." / ".." / "etc"), "os", "../probe"):
        r = client.put("/pipelines/x", json={"name": "x", "app": app})
        assert r.status_code == 422 and "expected an installed app name" in r.json()["detail"], app
    assert client.get("/pipelines/x").status_code == 404
    assert client.put("/pipelines/p", json={"name": "p", "app": PROBE}).status_code == 200  # under an app root
    assert client.put("/pipelines/o", json={"name": "o", "app": "organ_segmentation"}).status_code == 200


def test_job_input_confined_to_store_and_input_roots(client, settings, tmp_path):
    """The attack from the issue: POST /jobs {"input": "/etc"}; also ../ and a symlink out."""
    assert client.put("/pipelines/p", json={"name": "p", "app": PROBE}).status_code == 200
    link = tmp_path / "link"
    link.symlink_to("/etc")
    for bad in ("/etc", str(tmp_path / ".." / ".." / "etc"), str(link)):
        r = client.post("/jobs", json={"pipeline": "p", "input": bad})
        assert r.status_code == 422 and r.json()["detail"].startswith("input: expected a folder under"), bad
    assert client.get("/jobs").json() == []
    ok = tmp_path / "in"
    ok.mkdir()
    assert client.post("/jobs", json={"pipeline": "p", "input": str(ok)}).status_code == 201


def test_scheduler_refuses_a_pipeline_row_outside_the_rules(settings, tmp_path):
    """A row written before these rules (or by hand) still cannot run: fails if launch trusts the DB."""
    from clara_stream.platform.schemas import JobSubmit

    svc = PlatformService(settings, dicom=False)
    svc.config.pipeline_or_register("organ_segmentation")
    inbox = tmp_path / "in"
    inbox.mkdir()
    jid = svc.submit(JobSubmit(pipeline="organ_segmentation", input=str(inbox))).id
    with svc.db.write() as con:  # tamper: the stored job now names /tmp and reads /etc
        con.execute("UPDATE job SET app = ?, input_dir = '/etc' WHERE id = ?", (str(tmp_path), jid))
    svc.scheduler.step()
    job = svc.queue.get(jid)
    assert job.status == "failed" and "refused to start" in job.error and job.attempts == 0


def test_ae_write_is_all_or_nothing(client):
    """Fails if an AE with a bad workflow answers 4xx but is saved anyway (the poison of the issue)."""
    ae = {"name": "bad", "aeTitle": "BAD", "workflows": ["no such pipeline!"]}
    r = client.post("/config/ae", json=ae)
    assert r.status_code == 422 and "workflows" in r.json()["detail"]
    assert client.get("/config/ae/bad").status_code == 404
    assert client.get("/pipelines").json() == []
    ok = {"name": "ok", "aeTitle": "OK", "workflows": ["organ_segmentation"]}
    assert client.post("/config/ae", json=ok).status_code == 201
    r = client.put("/config/ae/ok", json=dict(ok, workflows=["organ_segmentation", "nope"]))
    assert r.status_code == 422
    assert client.get("/config/ae/ok").json()["workflows"] == ["organ_segmentation"]


@pytest.mark.parametrize("title", ["ÄRGER", "A\\B", "TAB\tX", "SEVENTEEN_CHARS_X", "   ", "a/b"])
def test_ae_titles_follow_dicom_rules(client, title):
    """Fails if a title outside the default repertoire is stored (uncallable ever after)."""
    r = client.post("/config/ae", json={"name": "t", "aeTitle": title})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "aeTitle", title
    assert client.get("/config/ae").json() == []


def test_hosts_must_resolve_and_localhost_matches_loopback(settings, dcmtk):
    """A source named ``localhost`` admits a peer at 127.0.0.1; an unresolvable name is refused."""
    svc = PlatformService(settings)
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as c:
        r = c.post("/config/source", json={"name": "s", "aeTitle": "S", "hostIp": "no-such-host.invalid"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "hostIp"
        assert c.post("/config/source", json={"name": "m", "aeTitle": "MOD", "hostIp": "localhost"}).status_code == 201
        assert c.post("/config/ae", json={"name": "a", "aeTitle": "INBOX"}).status_code == 201
        echo = subprocess.run(
            [dcmtk.echoscu, "-aet", "MOD", "-aec", "INBOX", "127.0.0.1", str(svc.dicom_port)],
            env=NODELAY_ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert echo.returncode == 0, echo.stderr


def test_destination_in_use_cannot_be_deleted_and_mig_payloads_are_accepted(client):
    dest = {"name": "pacs", "aeTitle": "PACS", "hostIp": "127.0.0.1", "port": 11112}
    assert client.post("/config/destination", json=dest).status_code == 201
    mig_ae = {  # as MIG returns and accepts it: pluginAssemblies and read-only bookkeeping fields
        "name": "seg",
        "aeTitle": "SEG",
        "grouping": "0020,000E",
        "timeout": 3,
        "workflows": [],
        "pluginAssemblies": ["Monai.Deploy.InformaticsGateway.Test.PlugIns.TestInputDataPlugInModifyDicomFile"],
        "ignoredSopClasses": [],
        "allowedSopClasses": [],
        "dateTimeCreated": "2023-01-01T00:00:00",
        "createdBy": "admin",
        "destinations": ["pacs"],
    }
    r = client.post("/config/ae", json=mig_ae)
    assert r.status_code == 201, r.text
    assert r.json()["pluginAssemblies"] == mig_ae["pluginAssemblies"]
    r = client.delete("/config/destination/pacs")
    assert r.status_code == 409 and "seg" in r.json()["detail"]
    assert client.get("/config/destination/pacs").status_code == 200
    r = client.put("/config/ae", json=dict(mig_ae, timeout=9, destinations=[]))  # MIG's PUT, name in the body
    assert r.status_code == 200 and client.get("/config/ae/seg").json()["timeout"] == 9
    assert client.delete("/config/destination/pacs").status_code == 200
