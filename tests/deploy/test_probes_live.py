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
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import containers, pod_specs

TOKEN = "probe-test-token-0123456789abcdef0123"
POD_IP = "127.0.0.2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        return s.getsockname()[1]


def start(objects: list[dict], tmp_path: Path) -> tuple[subprocess.Popen, dict, dict]:
    """Start the one container of ``objects``; returns (process, {port name/number: local port}, container)."""
    (_, c), = containers(objects)
    (_, spec), = pod_specs(objects)
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in c["volumeMounts"] if m["mountPath"] != "/tmp"}
    for path in mounts.values():
        path.mkdir(parents=True, exist_ok=True)
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    for volume in spec["volumes"]:
        data = config_maps.get(volume.get("configMap", {}).get("name"), {})
        for m in (m for m in c["volumeMounts"] if m["name"] == volume["name"]):
            for key, text in data.items():
                (mounts[m["mountPath"]] / key).write_text(text)
    ports = {}
    for p in c["ports"]:
        ports[p["name"]] = ports[p["containerPort"]] = _free_port()

    def local(value: str) -> str:
        for mount, path in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            value = re.sub(rf"(^|=){re.escape(mount)}(?=/|$)", rf"\g<1>{path}", value)
        value = re.sub(r"^(--[a-z-]*host)=0\.0\.0\.0$", rf"\g<1>={POD_IP}", value)
        m = re.match(r"^(--(?:dicom|http|grpc)-port)=(\d+)$", value)
        return f"{m.group(1)}={ports[int(m.group(2))]}" if m else value

    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    env = {"HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = local(e["value"])
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
    args = [local(re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a)) for a in c["args"]]
    exe = Path(sys.executable).parent / c["command"][0]
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen([str(exe), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, ports, c


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


def test_render_server_answers_its_probes_and_wants_the_secret_token(render, tmp_path, stop):
    objects = render("clara-renderserver", {"auth": {"token": TOKEN}, "cache": {"type": "emptyDir"}})
    proc, ports, c = start(objects, tmp_path)
    stop(proc)
    wait_ready(proc, c, ports, tmp_path / "service.log", limit_s=240)
    assert probe(c["readinessProbe"], ports) == 200 and probe(c["livenessProbe"], ports) == 200
    web = f"http://{POD_IP}:{ports['ui']}"
    assert httpx.get(f"{web}/api/datasets").status_code == 401
    listed = httpx.get(f"{web}/api/datasets", headers={"Authorization": f"Bearer {TOKEN}"})
    assert listed.status_code == 200 and listed.json() == []
    assert (tmp_path / "datasets" / ".clara-stream-render").is_dir(), "state kept on the datasets volume"
