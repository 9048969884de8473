"""Per-operator progress of real running jobs: REST ``/jobs/{id}/operators`` and the gRPC stream.

The flow app (src → mid → sink) holds its third message until the test opens a gate, so the
states can be observed changing; the app's own per-operator records are the oracle for counts.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx

from clara_stream.cli import main
from clara_stream.platform.client import PlatformClient
from tests.platform.conftest import wait_until

FLOW = str(Path(__file__).parent / "apps" / "flow")
ORDER = {"waiting": 0, "running": 1, "done": 2, "failed": 2}


def start(serve_factory, tmp_path: Path, **overrides: str):
    pipeline = {"name": "flow", "app": FLOW, "overrides": [f"{k}={v}" for k, v in overrides.items()]}
    serve = serve_factory({"pipelines": [pipeline]}, extra=["--grpc-port", "0"]).start()
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    job = httpx.post(serve.url + "/jobs", json={"pipeline": "flow", "input": str(inbox)}).raise_for_status().json()
    return serve, job["id"]


def api(serve, path: str):
    return httpx.get(serve.url + path, timeout=30).raise_for_status().json()


def ops(serve, job_id: str) -> dict[str, dict]:
    return {o["name"]: o for o in api(serve, f"/jobs/{job_id}/operators")}


def test_running_job_operators_change_state_over_rest_and_the_grpc_stream(serve_factory, tmp_path):
    """Fails if progress is not stored while the job runs (only at the end), if the stream misses
    a change or does not end with the job, or if counts differ from what the operators did."""
    gate = tmp_path / "gate"
    serve, job_id = start(serve_factory, tmp_path, **{"src.count": "6", "src.hold_at": "3", "src.gate": str(gate)})
    seen: list[tuple[str, dict[str, tuple[str, int]]]] = []
    ended = threading.Event()

    def watch() -> None:
        with PlatformClient(f"127.0.0.1:{serve.info['grpcPort']}") as c:
            for status, items in c.watch_operators(job_id, timeout_s=240):
                seen.append((status, {o.name: (o.state, o.messages) for o in items}))
        ended.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # held at the third message: two went all the way through, src is inside its third compute
    held = wait_until(lambda: (o := ops(serve, job_id)) and o.get("sink", {}).get("messages") == 2 and o,
                      "two messages through the graph while src is held", timeout_s=120)
    assert [(n, o["state"], o["messages"]) for n, o in held.items()] == [
        ("src", "running", 2), ("mid", "running", 2), ("sink", "running", 2)]
    assert api(serve, f"/jobs/{job_id}")["status"] == "running"
    wait_until(lambda: any(s == "running" and m.get("sink") == ("running", 2) for s, m in seen),
               "the gRPC stream showed the held state")
    gate.touch()
    assert ended.wait(180), "the operator stream did not end with the job"
    job = api(serve, f"/jobs/{job_id}")
    assert job["status"] == "succeeded"
    final = ops(serve, job_id)
    out = Path(job["outputDir"])
    for name, row in final.items():  # the operators' own records of what they did
        own = json.loads((out / f"{name}.json").read_text())["seconds"]
        assert (row["state"], row["messages"]) == ("done", len(own)) == ("done", 6)
        assert row["timeMs"] >= sum(own) * 1e3 and row["p95Ms"] >= row["p50Ms"] > 0
        assert row["attempt"] == 1 and row["error"] is None
    assert seen[-1][0] == "succeeded" and seen[-1][1] == {n: ("done", 6) for n in ("src", "mid", "sink")}
    for name in ("src", "mid", "sink"):  # states only move forward, counts never drop
        states = [(ORDER[m[name][0]], m[name][1]) for _, m in seen if name in m]
        assert states == sorted(states), (name, states)
    graph = api(serve, f"/jobs/{job_id}/graph")
    assert graph["source"] == "job" and [o["name"] for o in graph["operators"]] == ["src", "mid", "sink"]
    assert [(e["src"], e["dst"]) for e in graph["edges"]] == [("src", "mid"), ("mid", "sink")]
    got = httpx.get(f"{serve.url}/jobs/{job_id}/files/sink.json")
    assert got.status_code == 200 and got.content == (out / "sink.json").read_bytes()
    assert httpx.get(f"{serve.url}/jobs/{job_id}/files/../../state.sqlite").status_code in (404, 422)


def test_failing_operator_reported_with_its_error_then_retried(serve_factory, tmp_path, capsys):
    """Fails if the failed operator's state or error text is lost, if the others are blamed, or if
    retry does not run the same pipeline on the same input."""
    serve, job_id = start(serve_factory, tmp_path, **{"src.count": "5", "sink.fail_at": "3"})
    wait_until(lambda: api(serve, f"/jobs/{job_id}")["status"] in ("succeeded", "failed"), "the job to end",
               timeout_s=120)
    job = api(serve, f"/jobs/{job_id}")
    assert job["status"] == "failed"
    rows = ops(serve, job_id)
    assert rows["sink"]["state"] == "failed" and rows["sink"]["messages"] == 2
    assert rows["sink"]["error"] == ("compute() failed: ValueError: FlowSinkOp: expected <b>a value</b> below 6; "
                                     "got a deliberate failure")
    assert rows["src"]["error"] is None and rows["src"]["state"] != "failed"
    with PlatformClient(f"127.0.0.1:{serve.info['grpcPort']}") as c:
        status, items = c.operators(job_id)
    assert status == "failed" and [(o.name, o.state, o.error) for o in items] == [
        (n, r["state"], r["error"]) for n, r in rows.items()]
    capsys.readouterr()
    assert main(["jobs", "operators", job_id, "--api", serve.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:3] for ln in lines] == [[n, r["state"], str(r["messages"])] for n, r in rows.items()]
    assert lines[2].endswith(rows["sink"]["error"])
    again = httpx.post(f"{serve.url}/jobs/{job_id}/retry").raise_for_status().json()
    assert again["id"] != job_id and (again["pipeline"], again["inputDir"]) == (job["pipeline"], job["inputDir"])


def test_job_created_without_start_waits_until_started(serve_factory, tmp_path):
    """gRPC CreateJob with start=false, then StartJob (REST: POST /jobs/{id}/start). The queue is FIFO, so
    a later job finishing first shows the created one was not queued. Fails if start=false is ignored,
    or if StartJob does not queue it."""
    import grpc
    import pytest

    serve, first = start(serve_factory, tmp_path, **{"src.count": "2"})
    inbox = str(tmp_path / "in")
    with PlatformClient(f"127.0.0.1:{serve.info['grpcPort']}") as c:
        created = c.submit({"pipeline": "flow", "input": inbox, "start": False})
        assert created.status == "created"
        later = c.submit({"pipeline": "flow", "input": inbox})
        for job_id in (first, later.id):
            wait_until(lambda j=job_id: c.job(j).status == "succeeded", f"job {job_id} to succeed", timeout_s=120)
        assert c.job(created.id).status == "created" and c.job(created.id).attempts == 0
        assert ops(serve, created.id) == {}
        assert c.start(created.id).status in ("queued", "running")
        wait_until(lambda: c.job(created.id).status == "succeeded", "the started job to succeed", timeout_s=120)
        with pytest.raises(grpc.RpcError) as again:
            c.start(created.id)
        assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "expected a created job" in again.value.details()
    assert httpx.post(f"{serve.url}/jobs/{later.id}/start").status_code == 409
    assert [o["messages"] for o in ops(serve, created.id).values()] == [2, 2, 2]
