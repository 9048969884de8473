"""Transfer-function presets: CT opens as a see-through body with visible bone (not the old opaque
slab), MR gets a preset relative to its own range, and the viewer's preset message applies one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.render.client import decode
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.engine import RenderEngine
from clara_stream.render.presets import PRESETS, preset


def _engine(tmp_path, data: np.ndarray) -> tuple[RenderEngine, str]:
    img = sitk.GetImageFromArray(data)
    img.SetSpacing((0.9, 0.9, 2.5))
    (tmp_path / "d").mkdir(exist_ok=True)
    sitk.WriteImage(img, str(tmp_path / "d" / "v.mhd"))
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    return RenderEngine(reg), reg.register(tmp_path / "d" / "v.mhd").id


def test_default_ct_volume_shows_bone_through_soft_tissue(tmp_path):
    """A 40 HU body with a 700 HU rod: rays through soft tissue only stay dark, the rod is bright
    (fails with the old relative ramp, which drew the whole body as an opaque slab)."""
    data = np.full((40, 64, 64), -1000, np.int16)
    data[4:36, 8:56, 8:56] = 40
    data[4:36, 28:36, 28:36] = 700
    eng, ds = _engine(tmp_path, data)
    sess = eng.open(ds)
    assert [p.value for p in sess.state.transfer] == [v for v, _, _ in PRESETS["ct-bone"]]
    st = sess.state
    st.mode, st.format, st.width, st.height = "composite", "png", 128, 128
    eng.set_view(sess.id, st)
    rgb = decode(eng.render(sess.id).data).astype(int)
    grey = rgb.mean(axis=2)
    # anterior view: screen x = patient x, screen y = −z; the rod spans x voxels 28..35 (centre 31.5)
    m_x = np.abs(np.arange(128) - 63.5)
    rod_cols, tissue_cols = m_x < 2, (m_x > 8) & (m_x < 16)
    assert grey[50:78, rod_cols].mean() > 100
    assert grey[50:78, tissue_cols].mean() < 25
    eng.registry.close()


def test_mr_default_is_relative_to_its_range(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1200, (12, 40, 40)).astype(np.uint16)
    eng, ds = _engine(tmp_path, data)
    st = eng.open(ds).state
    lo, hi = eng.registry.volume(ds).value_range()
    assert [p.value for p in st.transfer] == pytest.approx([lo + f * (hi - lo) for f, _, _ in PRESETS["mr"]])
    with pytest.raises(ValueError, match="expected a preset in"):
        preset("ct-brain", (lo, hi))
    eng.registry.close()


def test_viewer_preset_message_sets_the_transfer_function(render_stack):
    from websockets.sync.client import connect

    url = render_stack["http"].replace("http://", "ws://") + "ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {render_stack['token']}"}) as ws:
        ws.send(json.dumps({"type": "open", "dataset": _id(render_stack), "width": 96, "height": 96}))
        frames = {}
        for name in ("ct-bone", "ct-lung"):
            ws.send(json.dumps({"type": "preset", "name": name, "id": name}))
            while True:
                msg = ws.recv(timeout=30)
                if isinstance(msg, str) and json.loads(msg).get("ack") == name:
                    header = json.loads(msg)
                    frames[name] = decode(ws.recv(timeout=30))
                    break
            assert header["mode"] == "composite"
        assert np.abs(frames["ct-bone"].astype(int) - frames["ct-lung"].astype(int)).mean() > 3
        ws.send(json.dumps({"type": "preset", "name": "nope"}))
        reply = json.loads(ws.recv(timeout=30))
        while reply.get("type") != "error":
            reply = json.loads(ws.recv(timeout=30))
        assert "expected a preset in" in reply["message"]


def _id(stack) -> str:
    import httpx

    auth = {"Authorization": f"Bearer {stack['token']}"}
    listed = httpx.get(stack["http"] + "api/datasets", headers=auth).json()
    return next(d["id"] for d in listed if d["name"] == "phantom")
