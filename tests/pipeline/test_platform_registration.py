"""The platform registers a pipeline .yaml (checked at registration) and its workers run it like an app."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from clara_stream.platform.api.app import create_app
from clara_stream.platform.service import PlatformService
from clara_stream.platform.settings import PlatformSettings

from .test_pipeline_file import HELLO


def _settings(tmp: Path, apps: Path) -> PlatformSettings:
    return PlatformSettings(data_dir=tmp / "data", app_roots=[apps], input_roots=[tmp], dicom_port=0, http_port=0,
                            poll_interval_s=0.05)


def _wait_done(client: TestClient, job: str) -> dict:
    limit = time.monotonic() + 120  # liveness guard only: a hung worker fails instead of stalling
    while (info := client.get(f"/jobs/{job}").json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < limit, info
        time.sleep(0.1)
    return info


def test_pipeline_file_registered_and_run_by_a_worker(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    good = apps / "hello.yaml"
    good.write_text(HELLO.format(services="", sink_out="${app.output}"))
    bad = apps / "bad.yaml"
    bad.write_text(HELLO.replace("scale.frame_out -> sink.frame", "scale.frame_out -> sink.frames")
                   .format(services="", sink_out="${app.output}"))
    inbox = tmp_path / "in"
    inbox.mkdir()
    svc = PlatformService(_settings(tmp_path, apps), dicom=False)
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as client:
        r = client.put("/pipelines/bad", json={"name": "bad", "app": str(bad)})
        assert r.status_code == 422, r.text
        assert f"{bad}:15:" in r.json()["detail"] and "'frames'" in r.json()["detail"]
        assert client.get("/pipelines/bad").status_code == 404
        assert client.put("/pipelines/hello", json={"name": "hello", "app": str(good),
                                                    "overrides": ["scale.factor=4.0"]}).status_code == 200
        job = client.post("/jobs", json={"pipeline": "hello", "input": str(inbox)}).json()["id"]
        info = _wait_done(client, job)
        assert info["status"] == "succeeded", info
        outs = list((tmp_path / "data").rglob("summary.json"))
        assert len(outs) == 1
        summary = json.loads(outs[0].read_text())
        assert summary["frames"] == 7 and summary["max"] == 4.0  # the source's peak 1.0 scaled by the override


def test_pipeline_graph_route_matches_the_file(tmp_path: Path) -> None:
    """GET /pipelines/{id}/graph: operators, types and edges as the YAML (read by PyYAML) defines them."""
    import yaml

    apps = tmp_path / "apps"
    apps.mkdir()
    good = apps / "hello.yaml"
    good.write_text(HELLO.format(services="", sink_out="${app.output}"))
    data = yaml.safe_load(good.read_text())
    svc = PlatformService(_settings(tmp_path, apps), dicom=False)
    with TestClient(base_url="http://127.0.0.1", app=create_app(svc)) as client:
        pid = client.put("/pipelines/hello", json={"name": "hello", "app": str(good)}).json()["id"]
        graph = client.get(f"/pipelines/{pid}/graph").json()
        assert client.get("/pipelines/nope/graph").status_code == 404
    types = {(n, b["type"]) for n, b in data["operators"].items()}
    assert {(o["name"], o["type"]) for o in graph["operators"]} == types
    flows = {tuple(f.replace(" -> ", ".").split(".")) for f in data["flows"]}
    assert {(e["src"], e["out_port"], e["dst"], e["in_port"]) for e in graph["edges"]} == flows
    sink = next(o for o in graph["operators"] if o["name"] == "sink")
    assert [p["name"] for p in sink["inputs"]] == ["frame"] and "float32" in sink["inputs"][0]["contract"]
