"""Recovery across reboots (Fleet Command restarts the pods): acknowledged registrations and saved
settings survive SIGTERM, kill -9 and power loss; the service starts again whatever it finds on disk;
each process of the split trio can die and come back while the others keep running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from clara_stream.render import durable
from clara_stream.render.client import RenderClient
from clara_stream.render.datasets import DatasetRegistry
from websockets.exceptions import WebSocketException

from .conftest import TOKEN, _wait_ready, free_tcp_port
from .test_trio import _frames

SERVE = [sys.executable, "-m", "clara_stream.render.serve", "--token", TOKEN]


def _record_io(monkeypatch) -> list[tuple[str, str]]:
    """Record fsync (of which path) and rename calls, in order."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        calls.append(("rename", f"{a}->{b}"))
        real_replace(a, b)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "replace", replace)
    return calls


def test_write_durably_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    """Fails if the file sync is dropped or moved after the rename, or the folder is not synced."""
    calls = _record_io(monkeypatch)
    target = tmp_path / "datasets.json"
    target.write_text("old")
    durable.write_durably(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["datasets.json"]
    (k1, tmp), (k2, move), (k3, folder) = calls
    assert (k1, k2, k3) == ("fsync", "rename", "fsync")
    assert move == f"{tmp}->{target}" and Path(tmp).parent == tmp_path and folder == str(tmp_path)


def test_a_failed_index_write_loses_nothing_and_acknowledges_nothing(render_root, tmp_path, monkeypatch):
    """Fails if a registration is served (or kept) although its index write failed (disk full)."""
    reg = DatasetRegistry([render_root], tmp_path / "state")
    reg.register(render_root / "seed", dataset_id="kept")
    before = (tmp_path / "state" / "datasets.json").read_text()

    def full(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        reg.register(render_root / "slide.tif", dataset_id="lost")
    assert [r.id for r in reg.list()] == ["kept"]
    assert (tmp_path / "state" / "datasets.json").read_text() == before
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["datasets.json"], "no temp file left"


def test_registration_whose_folder_is_missing_at_start_is_kept_and_comes_back(render_root, tmp_path):
    """A mount not there yet after a reboot. Fails if the next save drops the registration for good."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(render_root / "seed", root / "late")
    shutil.copytree(render_root / "seed", root / "other")
    state = tmp_path / "state"
    DatasetRegistry([root], state).register(root / "late", dataset_id="late")
    (root / "late").rename(tmp_path / "unmounted")
    reg = DatasetRegistry([root], state)
    assert [r.id for r in reg.list()] == []
    reg.register(root / "other", dataset_id="other")  # rewrites the index meanwhile
    (tmp_path / "unmounted").rename(root / "late")
    assert sorted(r.id for r in reg.list()) == ["late", "other"], "served again once the path is back"
    assert sorted(r.id for r in DatasetRegistry([root], state).list()) == ["late", "other"]


def test_an_unreadable_index_is_set_aside_and_the_service_starts(render_root, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "datasets.json").write_text('[{"id": "x", "na')  # torn by a writer without sync
    reg = DatasetRegistry([render_root], state)
    assert reg.list() == []
    assert (state / "datasets.json.corrupt").read_text() == '[{"id": "x", "na', "kept for a person to look at"
    reg.register(render_root / "seed", dataset_id="new")
    assert [r.id for r in DatasetRegistry([render_root], state).list()] == ["new"]


def test_published_seed_is_committed_by_its_config_meta_last(tmp_path, monkeypatch):
    """Fails if config.meta (which makes the folder a dataset) can be durable before the pixels."""
    from clara_stream.render import publish

    from clara_stream.geometry import ImageGeometry

    calls = _record_io(monkeypatch)
    image = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    mask = (image > 30).astype(np.uint8)
    publish.write_seed(tmp_path / "out", image, ImageGeometry(spacing=(0.7, 0.9, 2.5)), mask=mask)
    synced = [Path(p).name for kind, p in calls if kind == "fsync"]
    meta_rename = next(i for i, (kind, p) in enumerate(calls) if kind == "rename" and p.endswith("/config.meta"))
    before = {Path(p).name for kind, p in calls[:meta_rename] if kind == "fsync"}
    assert {"image.raw", "image.mhd", "mask.raw", "mask.mhd", "config_render.json"} <= before, synced
    assert json.loads((tmp_path / "out" / "config.meta").read_text())["mask"] == "mask.mhd"


class Service:
    """``render serve`` subprocesses started and stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs, self.n = tmp, [], 0

    def start(self, *args: str) -> tuple[subprocess.Popen, dict]:
        self.n += 1
        ready = self.tmp / f"ready{self.n}.json"
        proc = subprocess.Popen([*SERVE, *args, "--ready-file", str(ready)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.procs.append(proc)
        return proc, _wait_ready(proc, ready)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def service(tmp_path):
    s = Service(tmp_path)
    yield s
    s.stop_all()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_every_acknowledged_registration_survives_a_stop_mid_work(render_root, tmp_path, service, sig):
    """Registrations keep arriving while the service is stopped; after a restart every one that was
    acknowledged is there. SIGTERM ends it cleanly (exit 0). Fails if the index is written after the
    acknowledgement, or torn, or a SIGTERM drops the call in flight."""
    state = tmp_path / "state"
    args = ["--root", str(render_root), "--state-dir", str(state), "--grpc-port", "0", "--http-port", "0"]
    proc, ready = service.start(*args)
    acked: list[str] = []

    def writer() -> None:
        with RenderClient(ready["grpc"], token=TOKEN, timeout_s=20) as c:
            for i in range(10_000):
                try:
                    acked.append(c.register(str(render_root / "seed"), dataset_id=f"r{i}").id)
                except grpc.RpcError:
                    return

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 5 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)  # waiting on the state: registrations acknowledged
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=30)
    thread.join(timeout=30)
    assert len(acked) >= 5 and not thread.is_alive()
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), proc.stdout.read()
    _, again = service.start(*args)
    assert set(acked) <= set(again["datasets"])
    assert json.loads((state / "datasets.json").read_text()), "a whole index on disk"


def test_each_process_of_the_trio_comes_back_after_kill_9(render_root, tmp_path, service):
    """Kill -9 each role in turn and restart it on its port: the gateway renders the same frame again,
    with the registration made before. Fails if the renderer keeps a dead dataset service's view, the
    gateway never reconnects, or the dataset service forgets what it registered."""
    ds_port, rs_port, http_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    ds_addr, rs_addr = f"127.0.0.1:{ds_port}", f"127.0.0.1:{rs_port}"
    roles = {
        "datasets": ["--role", "datasets", "--root", str(render_root), "--state-dir", str(tmp_path / "ds"),
                     "--grpc-port", str(ds_port)],
        "renderer": ["--role", "renderer", "--root", str(render_root), "--state-dir", str(tmp_path / "rs"),
                     "--grpc-port", str(rs_port), "--dataset-service", ds_addr],
        "gateway": ["--role", "gateway", "--state-dir", str(tmp_path / "ui"), "--http-port", str(http_port),
                    "--render-server", rs_addr, "--dataset-service", ds_addr],
    }  # fmt: skip
    procs = {role: service.start(*args)[0] for role, args in roles.items()}
    with RenderClient(rs_addr, token=TOKEN) as c:  # through the renderer: forwarded to the dataset service
        dataset = c.register(str(render_root / "seed"), dataset_id="ct").id
    http = f"http://127.0.0.1:{http_port}/"
    _, first = _frames(http, dataset)
    for role in roles:
        procs[role].kill()
        procs[role].wait()
        procs[role] = service.start(*roles[role])[0]
        deadline = time.monotonic() + 60
        while True:  # the others reconnect on their own: wait on that state, bounded
            try:
                _, frames = _frames(http, dataset)
                break
            except (AssertionError, OSError, WebSocketException) as exc:
                assert time.monotonic() < deadline, f"no frame after restarting {role}: {exc}"
                time.sleep(0.2)
        assert all(np.array_equal(a, b) for a, b in zip(frames, first, strict=True)), role


def test_an_open_viewer_resumes_its_view_after_the_renderer_restarts(render_root, tmp_path, service):
    """The browser keeps its WebSocket to the gateway while the renderer is killed and restarted:
    the next gesture reopens the session with the view it had (zoomed MIP), so the frame equals the
    one before. Fails if the session is not reopened (an error reaches the page) or is reopened with
    the default view."""
    from websockets.sync.client import connect

    ds_port, rs_port, http_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    ds_addr, rs_addr = f"127.0.0.1:{ds_port}", f"127.0.0.1:{rs_port}"
    service.start("--role", "datasets", "--root", str(render_root), "--state-dir", str(tmp_path / "ds"),
                  "--grpc-port", str(ds_port), "--register", str(render_root / "seed"))  # fmt: skip
    renderer = ["--role", "renderer", "--root", str(render_root), "--state-dir", str(tmp_path / "rs"),
                "--grpc-port", str(rs_port), "--dataset-service", ds_addr]  # fmt: skip
    rs, _ = service.start(*renderer)
    service.start("--role", "gateway", "--state-dir", str(tmp_path / "ui"), "--http-port", str(http_port),
                  "--render-server", rs_addr, "--dataset-service", ds_addr)  # fmt: skip
    with RenderClient(ds_addr, token=TOKEN) as c:
        dataset = c.list()[0].id

    def frame_for(ws, msg: dict) -> np.ndarray | str:
        """The frame answering ``msg``, or the error message the gateway sent instead."""
        ws.send(json.dumps(msg))
        while True:
            reply = ws.recv(timeout=60)
            if isinstance(reply, str):
                head = json.loads(reply)
                if head["type"] == "error":
                    return head["message"]
                if head["type"] == "frame" and head["ack"] == msg["id"]:
                    from clara_stream.render.client import decode

                    return decode(ws.recv(timeout=60))

    with connect(f"ws://127.0.0.1:{http_port}/ws", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        frame_for(ws, {"type": "open", "dataset": dataset, "width": 96, "height": 80, "id": "open"})
        frame_for(ws, {"type": "zoom", "factor": 1.6, "id": "zoom"})
        before = frame_for(ws, {"type": "mode", "mode": "mip", "id": "mip"})
        assert isinstance(before, np.ndarray)
        rs.kill()
        rs.wait()
        service.start(*renderer)
        deadline = time.monotonic() + 60
        for i in range(10_000):
            after = frame_for(ws, {"type": "mode", "mode": "mip", "id": f"again{i}"})
            if isinstance(after, np.ndarray):
                break
            assert "open session" not in after, after  # the session was lost, not resumed
            assert time.monotonic() < deadline, after  # UNAVAILABLE while the channel reconnects
            time.sleep(0.2)
        assert np.array_equal(after, before), "the zoomed MIP view came back with the session"


def test_a_dataset_published_while_the_service_was_down_is_registered_when_it_starts(render_root, tmp_path, service):
    """A pipeline publishes while the render service reboots: the seed stays on disk with a pending
    marker, and the service registers it at its next start. Fails if the publication is only in the
    publisher's result, or a bad pending marker stops the service from starting."""
    from clara_stream.render import publish

    from clara_stream.geometry import ImageGeometry

    root = tmp_path / "root"
    image = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    folder = publish.write_seed(root / "out" / "case1", image, ImageGeometry(spacing=(0.7, 0.9, 2.5)), name="case1")
    down = publish.register(folder, f"127.0.0.1:{free_tcp_port()}", token=TOKEN, dataset_id="case1", timeout_s=30)
    assert not down.registered and "UNAVAILABLE" in down.error
    assert publish.pending_marker(folder).is_file()
    (root / "junk").mkdir()
    (root / "junk" / publish.PENDING).write_text('{"path": "/etc"}')  # out of the roots: kept, refused
    _, ready = service.start("--root", str(root), "--state-dir", str(tmp_path / "state"),
                             "--grpc-port", "0", "--http-port", "0")  # fmt: skip
    assert ready["datasets"] == ["case1"]
    assert not publish.pending_marker(folder).exists(), "adopted: the marker goes"
    assert (root / "junk" / publish.PENDING).exists(), "refused: kept for a person to look at"
    with RenderClient(ready["grpc"], token=TOKEN) as c:
        info = c.info("case1")
    assert list(info.geometry.shape_zyx) == [5, 6, 7]
    assert [round(v, 3) for v in (info.geometry.spacing_mm.x, info.geometry.spacing_mm.y, info.geometry.spacing_mm.z)] \
        == [0.7, 0.9, 2.5]
