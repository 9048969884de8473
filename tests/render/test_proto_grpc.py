"""The committed generated code matches render.proto; both services over real gRPC on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from clara_stream.render.client import RenderClient, decode
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.proto import build
from clara_stream.render.proto import render_pb2 as pb
from clara_stream.render.server import serve


def test_generated_code_is_in_sync(tmp_path):
    for generated in build.build(tmp_path):
        committed = build.HERE / generated.name
        assert committed.read_text() == generated.read_text(), (
            f"{committed.name} is stale: run python -m clara_stream.render.proto.build"
        )


@pytest.fixture(scope="module")
def server(render_root, tmp_path_factory):
    reg = DatasetRegistry([render_root], tmp_path_factory.mktemp("grpc_state"))
    srv, port, _ = serve(reg, port=0, token="s3cret")
    yield f"127.0.0.1:{port}"
    srv.stop(grace=None).wait()
    reg.close()


@pytest.fixture(scope="module")
def client(server):
    with RenderClient(server, token="s3cret") as c:
        yield c


def test_token_is_required(server):
    with RenderClient(server) as anon, pytest.raises(grpc.RpcError) as err:
        anon.list()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with RenderClient(server, token="wrong") as bad, pytest.raises(grpc.RpcError) as err:
        bad.list()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_volume_view_over_grpc(client, render_root):
    info = client.register(str(render_root / "seed"), dataset_id="phantom")
    assert info.kind == pb.DATASET_KIND_VOLUME and list(info.geometry.shape_zyx) == [48, 160, 160]
    assert [lab.value for lab in info.labels] == [1, 2, 3] and info.labels[1].name == "ribs"
    assert "phantom" in [d.id for d in client.list()]
    s = client.open("phantom")
    frames = {}
    for mode in ("axial", "coronal", "sagittal", "oblique", "mip", "composite"):
        r = client.interact(s.session_id, mode=mode, render=True)
        if mode == "oblique":  # tilt the plane away from axial by dragging
            r = client.interact(s.session_id, rotate=(90, 40), render=True)
        assert r.state.view.mode == getattr(pb, f"VIEW_MODE_{mode.upper()}")
        img = decode(r.frame.data)
        assert img.shape == (512, 512, 3) and r.frame.mime == "image/jpeg" and r.frame.unit == "mm"
        frames[mode] = img
    for a in frames:
        for b in frames:
            if a < b:
                diff = np.abs(frames[a].astype(int) - frames[b].astype(int)).mean()
                assert diff > 1, f"{a} and {b} frames look alike ({diff:.3f})"
    before = frames["composite"]
    client.interact(s.session_id, label=(2, True))  # hide the ribs
    after = client.render_rgb(s.session_id)
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1
    client.close(s.session_id)


def test_interaction_stream_and_measurement(client, render_root):
    client.register(str(render_root / "seed"), dataset_id="phantom")
    s = client.open("phantom")
    reqs = [
        client.action(s.session_id, scroll=5),
        client.action(s.session_id, zoom=(2.0, 100, 100)),
        client.action(s.session_id, pan=(20, -10)),
    ]
    frames = list(client.stream(reqs))
    assert 2 <= len(frames) <= 4
    assert [f.sequence for f in frames] == sorted(f.sequence for f in frames)
    first, last = decode(frames[0].data), decode(frames[-1].data)
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 1
    m = client.measure(s.session_id, (100, 200), (100, 300))
    assert m.unit == "mm" and m.distance == pytest.approx(100 * frames[-1].units_per_px)
    assert m.b.y - m.a.y == pytest.approx(m.distance)  # axial rows run along +y (posterior)
    path = client.save_settings(s.session_id)
    assert path.endswith("seed/config_render.json")
    saved = json.loads(Path(path).read_text())["view"]
    assert saved["zoom"] == pytest.approx(2.0) and saved["mode"] == "axial"
    s2 = client.open("phantom")  # a new session starts from the saved view
    assert s2.view.camera.zoom == pytest.approx(2.0)
    Path(path).unlink()  # leave the shared fixture folder as it was


def test_transfer_function_and_window_over_grpc(client, render_root):
    client.register(str(render_root / "seed"), dataset_id="phantom")
    s = client.open("phantom")
    view = s.view
    view.mode = pb.VIEW_MODE_COMPOSITE
    view.window.center, view.window.width = 0, 2000
    client.set_view(s.session_id, view)
    default_tf = client.render_rgb(s.session_id)
    del view.transfer[:]
    view.transfer.extend(
        [
            pb.TransferPoint(value=-200, color=pb.Color(r=0, g=1, b=0), opacity=0.0),
            pb.TransferPoint(value=0, color=pb.Color(r=0, g=1, b=0), opacity=0.3),
        ]
    )
    view.show_mask = False
    del view.labels[:]
    view.labels.extend([pb.LabelStyle(value=v, color=pb.Color(r=0, g=1, b=0), opacity=1.0) for v in (1, 2, 3)])
    client.set_view(s.session_id, view)
    green = client.render_rgb(s.session_id)
    assert green[..., 1].mean() > 2 * green[..., 0].mean() + 1  # soft tissue now renders green
    assert np.abs(green.astype(int) - default_tf.astype(int)).mean() > 5
    before = client.state(s.session_id).view.window
    after = client.interact(s.session_id, window=(100, -500)).state.view.window
    assert (after.center, after.width) == (before.center + 100, before.width - 500)


def test_slide_tiles_and_regions(client, render_root):
    info = client.register(str(render_root / "slide.tif"), dataset_id="slide")
    assert info.kind == pb.DATASET_KIND_SLIDE and len(info.levels) == 4 and info.mpp == pytest.approx(0.5)
    t = client.tile("slide", 0, 1, 1, fmt="png")
    tile = decode(t.data)
    assert tile.shape == (256, 256, 3) and (tile[:, :, 0] == 0).any()  # grid lines present
    r = client.region("slide", 0, 0, 300, 200, 10.0)
    assert decode(r.data).shape == (200, 300, 3)


@pytest.mark.parametrize(
    "call, code, text",
    [
        (lambda c, root: c.register("/etc"), grpc.StatusCode.PERMISSION_DENIED, "expected a path under"),
        (lambda c, root: c.open("missing"), grpc.StatusCode.NOT_FOUND, "expected a registered dataset id"),
        (lambda c, root: c.render("nosuchsession"), grpc.StatusCode.NOT_FOUND, "expected an open session"),
        (lambda c, root: c.tile("slide", 0, 1000, 0), grpc.StatusCode.INVALID_ARGUMENT, "expected tile x in"),
        (
            lambda c, root: c.region("slide", 0, 0, 99999, 10, 1.0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected region size",
        ),
        (
            lambda c, root: c.open("phantom", pb.ViewState(mode=pb.VIEW_MODE_AXIAL, width=100000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected width in 16..4096",
        ),
    ],
)
def test_errors_map_to_status_codes(client, render_root, call, code, text):
    client.register(str(render_root / "seed"), dataset_id="phantom")
    client.register(str(render_root / "slide.tif"), dataset_id="slide")
    with pytest.raises(grpc.RpcError) as err:
        call(client, render_root)
    assert err.value.code() == code and text in err.value.details()


def test_oversized_request_is_refused(client):
    with pytest.raises(grpc.RpcError) as err:
        client.register("x" * (2 << 20))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_provisional_tile_then_exact_over_grpc(client, render_root):
    client.register(str(render_root / "slide.tif"), dataset_id="slide_prov")
    client.tile("slide_prov", 3, 0, 0)  # the overview level is cached
    first = client.tile("slide_prov", 0, 5, 3, allow_provisional=True)
    assert first.provisional and decode(first.data).shape == (256, 256, 3)
    for _ in range(500):  # the exact tile loads in the background (bounded wait, up to ~10 s)
        again = client.tile("slide_prov", 0, 5, 3, allow_provisional=True)
        if not again.provisional:
            break
        time.sleep(0.02)
    assert not again.provisional
    exact = client.tile("slide_prov", 0, 5, 3)
    assert exact.data == again.data


def test_a_long_stream_of_gestures_is_applied_whole_through_the_bounded_queue(client, render_root):
    """More gestures than the server's Stream queue holds (its reader then waits for the loop):
    every one is applied, in order: 600 zooms of 1.001 give 1.001**600 = 1.82, and 600 scrolls of
    one slice move as far as one scroll of 600 (clamped at the volume's end the same way)."""
    from clara_stream.render.server import STREAM_QUEUE

    n = STREAM_QUEUE + 344
    client.register(str(render_root / "seed"), dataset_id="phantom")
    s = client.open("phantom")
    frames = list(client.stream(client.action(s.session_id, zoom=(1.001, 100, 100)) for _ in range(n)))
    assert frames and client.state(s.session_id).view.camera.zoom == pytest.approx(1.001**n, rel=1e-6)
    ref, one = client.open("phantom"), client.open("phantom")
    list(client.stream([client.action(ref.session_id, scroll=n)]))
    list(client.stream(client.action(one.session_id, scroll=1) for _ in range(n)))
    ref_view, got = client.state(ref.session_id).view, client.state(one.session_id).view
    assert (got.camera.focus_mm.x, got.camera.focus_mm.y, got.camera.focus_mm.z) == pytest.approx(
        (ref_view.camera.focus_mm.x, ref_view.camera.focus_mm.y, ref_view.camera.focus_mm.z))
    assert got.camera.focus_mm != client.open("phantom").view.camera.focus_mm  # the scrolls moved it
    for x in (s, ref, one):
        client.close(x.session_id)
