"""The render trio as three processes (the chart's three containers): ``--role datasets``,
``--role renderer --dataset-service``, ``--role gateway --render-server --dataset-service``, talking
over gRPC on loopback, give the same frames through the gateway as the one-process ``all``."""

from __future__ import annotations

import json
import sys

import grpc
import httpx
import numpy as np
import pytest
from clara_stream.render.client import RenderClient, decode
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.remote import RemoteRegistry
from clara_stream.render.server import serve

from .conftest import TOKEN, free_tcp_port

SERVE = [sys.executable, "-m", "clara_stream.render.serve", "--token", TOKEN]


@pytest.fixture(scope="module")
def trio(render_root, tmp_path_factory, serve_process):
    """The three roles as separate processes on free loopback ports; stopped by pid."""
    state = tmp_path_factory.mktemp("trio")
    ds = serve_process(
        [*SERVE, "--role", "datasets", "--root", str(render_root), "--state-dir", str(state / "ds"),
         "--grpc-port", "0", "--register", str(render_root / "seed"), "--register", str(render_root / "slide.tif"),
         "--ready-file", str(state / "ds.json")],
        state / "ds.json",
    )  # fmt: skip
    rs = serve_process(
        [*SERVE, "--role", "renderer", "--root", str(render_root), "--state-dir", str(state / "rs"),
         "--grpc-port", "0", "--dataset-service", ds["grpc"], "--ready-file", str(state / "rs.json")],
        state / "rs.json",
    )  # fmt: skip
    ui = serve_process(
        [*SERVE, "--role", "gateway", "--state-dir", str(state / "ui"), "--http-port", str(free_tcp_port()),
         "--render-server", rs["grpc"], "--dataset-service", ds["grpc"], "--ready-file", str(state / "ui.json")],
        state / "ui.json",
    )  # fmt: skip
    assert "http" not in ds and "http" not in rs and "grpc" not in ui, "each role serves only its own part"
    return {"datasets": ds, "renderer": rs, "gateway": ui}


def _frames(http: str, dataset: str) -> tuple[dict, list[np.ndarray]]:
    """Through the gateway's WebSocket: the dataset's info, its opening frame and its MIP frame."""
    from websockets.sync.client import connect

    url = http.replace("http://", "ws://") + "ws"
    frames, info = [], {}
    with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        for msg in ({"type": "open", "dataset": dataset, "width": 96, "height": 80, "id": "open"},
                    {"type": "mode", "mode": "mip", "id": "mip"}):  # fmt: skip
            ws.send(json.dumps(msg))
            while True:
                reply = json.loads(ws.recv(timeout=60))
                assert reply["type"] != "error", reply
                if reply["type"] == "info":
                    info = reply["info"]
                if reply["type"] == "frame" and reply["ack"] == msg["id"]:
                    frames.append(decode(ws.recv(timeout=60)))
                    break
    return info, frames


def test_three_processes_render_what_one_process_renders(trio, render_stack):
    """Fails if the renderer reads another file or drops the label map, or the gateway lists from
    somewhere else than the dataset service."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx.get(trio["gateway"]["http"] + "api/datasets", headers=auth).json()
    assert sorted(d["id"] for d in listed) == sorted(trio["datasets"]["datasets"])
    phantom = next(d["id"] for d in listed if d["name"] == "phantom")
    assert phantom in render_stack["datasets"], "same path, same id in both deployments"
    info_split, split = _frames(trio["gateway"]["http"], phantom)
    info_one, one = _frames(render_stack["http"], phantom)
    assert info_split["geometry"] == info_one["geometry"] and info_split["labels"] == info_one["labels"]
    assert len(split) == len(one) == 2
    for a, b in zip(split, one, strict=True):
        assert a.shape == (80, 96, 3) and a.std() > 5
        assert np.array_equal(a, b)
    assert not np.array_equal(split[0], split[1]), "the mode change reached the renderer"
    slide = next(d["id"] for d in listed if d["kind"] == "DATASET_KIND_SLIDE")
    stacks = (trio["gateway"], render_stack)
    tiles = [httpx.get(f"{s['http']}api/tiles/{slide}/0/0/0.png", headers=auth) for s in stacks]
    assert [t.status_code for t in tiles] == [200, 200] and tiles[0].content == tiles[1].content


def test_split_roles_refuse_what_they_cannot_do(trio):
    with RenderClient(trio["datasets"]["grpc"], token=TOKEN) as ds:
        with pytest.raises(grpc.RpcError) as err:
            ds.open(trio["datasets"]["datasets"][0])
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, "the dataset service has no RenderService"
        with pytest.raises(grpc.RpcError) as err:
            ds.save_settings("nope")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "render server holding the session" in err.value.details()


def test_renderer_forwards_registration_and_confines_what_the_dataset_service_names(render_root, tmp_path):
    """Fails if the renderer trusts the dataset service's paths, or keeps registrations of its own."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    wide = DatasetRegistry([render_root, outside], tmp_path / "ds")
    server, port, _ = serve(wide, render=False)
    try:
        remote = RemoteRegistry(f"127.0.0.1:{port}", [render_root], tmp_path / "rs")
        rec = remote.register(render_root / "seed", dataset_id="fwd")
        assert rec.labels and wide.get("fwd").path == rec.path, "registered at the dataset service"
        assert not (tmp_path / "rs" / "datasets.json").exists()
        assert remote.volume("fwd").data.shape == wide.volume("fwd").data.shape
        from clara_stream.render import synthetic

        synthetic.write_seed_dataset(outside / "ct")
        wide.register(outside / "ct", dataset_id="escape")
        with pytest.raises(PermissionError, match="expected a path under"):
            remote.get("escape")
        assert "escape" not in [r.id for r in remote.list()]
        remote.close()
    finally:
        server.stop(None)
        wide.close()


def test_renderer_passes_on_an_absent_dataset_service(render_root, tmp_path):
    reg = RemoteRegistry(f"127.0.0.1:{free_tcp_port()}", [render_root], tmp_path / "rs")
    server, port, _ = serve(reg)
    try:
        with RenderClient(f"127.0.0.1:{port}", timeout_s=10) as c:
            with pytest.raises(grpc.RpcError) as err:
                c.list()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "dataset service" in err.value.details()
    finally:
        server.stop(None)
        reg.close()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--role", "renderer", "--root", "."], "expected --dataset-service HOST:PORT with --role renderer"),
        (["--role", "gateway"], "expected --render-server HOST:PORT with --role gateway"),
        (["--role", "gateway", "--render-server", "h:1", "--demo"], "expected --register/--demo only with"),
    ],
)
def test_role_without_its_peers_is_refused(args, text, capsys):
    from clara_stream.render.serve import main

    assert main(args) == 2
    assert text in capsys.readouterr().err
