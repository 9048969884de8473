"""Pipeline ids (Clara Deploy: "once a pipeline is registered, it is represented with an ID"):
assigned at registration, kept across updates, accepted wherever a name is (REST, CLI, AE workflows,
job submission); rows registered before ids existed get one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clara_stream.cli import main
from clara_stream.platform.api.app import create_app
from clara_stream.platform.service import PlatformService

from .conftest import wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def client(settings):
    svc = PlatformService(settings)
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as c:
        yield c, svc


def test_id_is_assigned_kept_and_accepted_like_the_name(client) -> None:
    """Fails if an update re-issues the id, if GET/DELETE take only names, or if an AE cannot name the id."""
    c, svc = client
    r = c.put("/pipelines/probe", json={"name": "probe", "app": PROBE, "cpuMemoryMb": 64})
    assert r.status_code == 200, r.text
    pid = r.json()["id"]
    assert HEX32.match(pid)
    again = c.put("/pipelines/probe", json={"name": "probe", "app": PROBE, "cpuMemoryMb": 96, "id": "ignored"})
    assert again.json()["id"] == pid and again.json()["cpuMemoryMb"] == 96
    assert c.get(f"/pipelines/{pid}").json() == c.get("/pipelines/probe").json()
    other = c.put("/pipelines/probe2", json={"name": "probe2", "app": PROBE}).json()["id"]
    assert other != pid and {p["id"] for p in c.get("/pipelines").json()} == {pid, other}
    ae = {"name": "byid", "aeTitle": "BYID", "timeout": 1, "workflows": [pid]}
    assert c.post("/config/ae", json=ae).status_code == 201
    assert c.post("/config/ae", json=dict(ae, name="bad", aeTitle="BAD", workflows=["f" * 32])).status_code == 422
    assert c.delete(f"/pipelines/{other}").json()["name"] == "probe2"
    r = c.get(f"/pipelines/{other}")
    assert r.status_code == 404 and "or id" in r.json()["detail"]
    # a row registered before ids existed (schema version 2) gets one, and keeps it
    with svc.db.write() as con:
        con.execute("UPDATE pipeline SET id = NULL WHERE name = 'probe'")
    late = c.get("/pipelines/probe").json()["id"]
    assert HEX32.match(late) and c.get("/pipelines/probe").json()["id"] == late


def test_cli_and_an_ae_title_mapped_to_the_id_run_the_pipeline(serve_factory, ct_small, dcmtk, capsys) -> None:
    seed = {"sources": [{"name": "modality", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}]}
    serve = serve_factory(seed, extra=["--input-root", str(ct_small)]).start()
    api = ["--api", serve.url]
    assert main(["pipelines", "create", "probe", "--app", PROBE, "--cpu-memory-mb", "64", *api]) == 0
    pid = capsys.readouterr().out.strip()
    assert HEX32.match(pid)
    assert main(["pipelines", "list", *api]) == 0
    assert re.search(rf"^{pid}\s+probe\s", capsys.readouterr().out, re.M)
    assert main(["pipelines", "show", pid, *api]) == 0
    assert "name: probe" in capsys.readouterr().out
    http = httpx.Client(base_url=serve.url, timeout=10)
    ae = {"name": "probeae", "aeTitle": "PROBEAE", "timeout": 1, "workflows": [pid]}
    assert http.post("/config/ae", json=ae).status_code == 201
    r = subprocess.run([dcmtk.storescu, "-aet", "STORESCU", "-aec", "PROBEAE", "127.0.0.1", str(serve.dicom_port),
                        "+sd", str(ct_small)], env={"TCP_NODELAY": "1"}, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = wait_until(lambda: next(iter(http.get("/jobs").json()), None), "job created", 30)
    assert job["pipeline"] == "probe"
    wait_until(lambda: http.get(f"/jobs/{job['id']}").json()["status"] == "succeeded", "job succeeded", 60)
    assert main(["pipelines", "delete", pid, *api]) == 0
    assert f"deleted probe ({pid})" in capsys.readouterr().out
    assert main(["pipelines", "show", pid, *api]) != 0
    assert "expected a registered name" in capsys.readouterr().err
