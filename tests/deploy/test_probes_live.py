"""The charts' containers, started for real here (as the kubelet would, minus the image), answer their probes.

Each service runs with the rendered command, args and env: mount paths point at temporary folders, the
container ports at free loopback ports, and every `0.0.0.0` bind becomes 127.0.0.2 — still loopback, but
not the services' default 127.0.0.1, so a listener the chart forgot to move (it would be unreachable from
the kubelet in a pod) fails its probe here.
Then every probe the chart declares is performed, and the token from the rendered Secret is checked to be
the one the service requires.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import pod_specs

TOKEN = "probe-test-token-0123456789abcdef0123"
POD_IP = "127.0.0.2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        return s.getsockname()[1]


def start(objects: list[dict], tmp_path: Path) -> tuple[subprocess.Popen, dict, dict]:
    """Start the one container of ``objects``; returns (process, {port name/number: local port}, container)."""
    (proc,), ports, (c,) = start_pod(objects, tmp_path)
    return proc, ports, c


def start_pod(objects: list[dict], tmp_path: Path) -> tuple[list[subprocess.Popen], dict, list[dict]]:
    """Start every container of the one pod of ``objects``, as the kubelet would: one network namespace
    (a port map shared by all, the pod's loopback 127.0.0.1 standing as POD_IP here) and the pod's
    volumes shared by name. Returns (processes, {port name/number: local port}, containers)."""
    (_, spec), = pod_specs(objects)
    cs = spec["containers"]
    mounts_of = [{m["mountPath"]: tmp_path / m["name"] for m in c["volumeMounts"] if m["mountPath"] != "/tmp"}
                 for c in cs]  # fmt: skip
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    for c, mounts in zip(cs, mounts_of, strict=True):
        for path in mounts.values():
            path.mkdir(parents=True, exist_ok=True)
        for volume in spec["volumes"]:
            data = config_maps.get(volume.get("configMap", {}).get("name"), {})
            for m in (m for m in c["volumeMounts"] if m["name"] == volume["name"]):
                for key, text in data.items():
                    (mounts[m["mountPath"]] / key).write_text(text)
    ports = {}
    for p in (p for c in cs for p in c["ports"]):
        ports[p["name"]] = ports[p["containerPort"]] = _free_port()
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    procs = []
    for i, (c, mounts) in enumerate(zip(cs, mounts_of, strict=True)):

        def local(value: str, mounts=mounts) -> str:
            for mount, path in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                value = re.sub(rf"(^|=){re.escape(mount)}(?=/|$)", rf"\g<1>{path}", value)
            value = re.sub(r"^(--[a-z-]*host)=0\.0\.0\.0$", rf"\g<1>={POD_IP}", value)
            m = re.match(r"^(--(?:dicom|http|grpc)-port)=(\d+)$", value)
            return f"{m.group(1)}={ports[int(m.group(2))]}" if m else value

        env = {"HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
        for e in c["env"]:
            if "value" not in e:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
            elif re.fullmatch(r"SERVICE_\w+_PORT", e["name"]):  # a peer container's port in the pod
                env[e["name"]] = str(ports[int(e["value"])])
            elif re.fullmatch(r"SERVICE_\w+_IP", e["name"]):  # the pod's loopback
                assert e["value"] == "127.0.0.1", f"{c['name']}: {e['name']} outside the pod"
                env[e["name"]] = POD_IP
            else:
                env[e["name"]] = local(e["value"])
        args = [local(re.sub(r"\$\((\w+)\)", lambda m, env=env: env[m.group(1)], a)) for a in c["args"]]
        exe = Path(sys.executable).parent / c["command"][0]
        log = (tmp_path / f"service{i}.log").open("w")
        procs.append(subprocess.Popen([str(exe), *args], env=env, stdout=log, stderr=subprocess.STDOUT))
    if len(cs) == 1:
        (tmp_path / "service0.log").rename(tmp_path / "service.log")
    return procs, ports, cs


def probe(handler: dict, ports: dict, headers: dict | None = None) -> int:
    """Perform one probe handler; returns the HTTP status (or 200 for an open TCP port, 0 for refused)."""
    if "tcpSocket" in handler:
        try:
            socket.create_connection((POD_IP, ports[handler["tcpSocket"]["port"]]), timeout=2).close()
            return 200
        except OSError:
            return 0
    get = handler["httpGet"]
    try:
        return httpx.get(f"http://{POD_IP}:{ports[get['port']]}{get['path']}", headers=headers, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def wait_ready(proc: subprocess.Popen, c: dict, ports: dict, log: Path, limit_s: float = 120) -> None:
    """Poll the startup probe as the kubelet does (period from the chart) until it passes or the process dies."""
    startup = c["startupProbe"]
    deadline = time.monotonic() + limit_s
    while probe(startup, ports) != 200:
        assert proc.poll() is None, f"service exited {proc.returncode}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"startup probe never passed: {log.read_text()[-2000:]}"
        time.sleep(min(startup.get("periodSeconds", 1), 0.2))


@pytest.fixture
def stop():
    procs = []
    yield procs.append
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_dicom_adapter_answers_its_probes_and_wants_the_secret_token(render, tmp_path, stop):
    seed = {"sources": [{"name": "ct", "aeTitle": "CT1", "hostIp": "127.0.0.1"}]}
    objects = render("clara-dicom-adapter", {"auth": {"token": TOKEN}, "dicomAdapter": {"seed": seed}})
    proc, ports, c = start(objects, tmp_path)
    stop(proc)
    wait_ready(proc, c, ports, tmp_path / "service.log")
    assert probe(c["readinessProbe"], ports) == 200 and probe(c["livenessProbe"], ports) == 200
    api = f"http://{POD_IP}:{ports['api']}"
    assert httpx.get(f"{api}/health").json()["dicomPort"] == ports["dicom"]
    assert httpx.get(f"{api}/config/source").status_code == 401
    sources = httpx.get(f"{api}/config/source", headers={"Authorization": f"Bearer {TOKEN}"})
    assert sources.status_code == 200 and [s["aeTitle"] for s in sources.json()] == ["CT1"], "seed ConfigMap applied"
    socket.create_connection((POD_IP, ports["dicom"]), timeout=2).close()


def test_render_trio_answers_its_probes_and_renders_through_the_gateway(render, tmp_path, stop):
    """The chart's three containers (ui, renderer, dataset-service) started together as one pod: each
    answers its own probes; a dataset registered at the dataset service (from values) is listed and
    opened through the ui, which reaches the renderer and the dataset service by SERVICE_RS*/SERVICE_RSDS*.

    Fails if a container is missing its peer's address, binds the wrong host, or the renderer cannot
    read the dataset volume the dataset service registered from.
    """
    from clara_stream.render.synthetic import write_seed_dataset
    from websockets.sync.client import connect

    write_seed_dataset(tmp_path / "datasets" / "phantom")
    values = {"auth": {"token": TOKEN}, "cache": {"type": "emptyDir"},
              "datasetService": {"register": ["/datasets/phantom"]}}  # fmt: skip
    objects = render("clara-renderserver", values)
    procs, ports, cs = start_pod(objects, tmp_path)
    for p in procs:
        stop(p)
    for i, (p, c) in enumerate(zip(procs, cs, strict=True)):
        wait_ready(p, c, ports, tmp_path / f"service{i}.log", limit_s=240)
    for c in cs:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe(c[kind], ports) == 200, f"{c['name']} {kind}"
    web = f"http://{POD_IP}:{ports['ui']}"
    assert httpx.get(f"{web}/api/datasets").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx.get(f"{web}/api/datasets", headers=auth, timeout=30)
    assert listed.status_code == 200 and [d["name"] for d in listed.json()] == ["phantom"]
    with connect(f"ws://{POD_IP}:{ports['ui']}/ws", additional_headers=auth) as ws:
        ws.send(json.dumps({"type": "open", "dataset": listed.json()[0]["id"], "width": 64, "height": 48, "id": 1}))
        while (reply := json.loads(ws.recv(timeout=120)))["type"] != "frame":
            assert reply["type"] != "error", reply
        assert (reply["width"], reply["height"]) == (64, 48) and len(ws.recv(timeout=60)) > 100
    assert (tmp_path / "datasets" / ".clara-stream-render" / "datasets.json").is_file(), "registrations on the volume"
    with socket.create_connection((POD_IP, ports["datasets"]), timeout=2):
        pass  # the pod-internal dataset service port is open inside the pod
