"""ClaraViz DataConfig dimension orders (DXYZ, MXYZ, CXY) and colour 2D data of any pixel type,
against numpy's own indexing and hand-computed scaling."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from clara_stream.render.client import decode
from clara_stream.render.dataconfig import CHANNEL_COLORS, numpy_axes, to_rgb8, to_volume
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.engine import RenderEngine


def test_orders_name_axes_fastest_first():
    assert numpy_axes("DXYZ") == ("Z", "Y", "X", "D") and numpy_axes("cxy") == ("Y", "X", "C")
    for bad in ("XYZD", "DXZY", "QXY", "DXYZT", ""):
        with pytest.raises(ValueError, match="expected dimension_order = element D/M/C then XY or XYZ"):
            numpy_axes(bad)


def test_volume_orders_keep_values_and_axes():
    """(z, y, x, d) int32 → the first component as int16, same axes (fails if x/y/z are permuted)."""
    a = np.random.default_rng(0).integers(-1000, 3000, (5, 6, 7, 2)).astype(np.int32)
    v = to_volume(a, "DXYZ")
    assert v.dtype == np.int16 and v.shape == (5, 6, 7)
    np.testing.assert_array_equal(v, a[..., 0])
    assert to_volume(a.astype(np.float64) / 7, "DXYZ").dtype == np.float32
    m = to_volume(np.arange(24).reshape(2, 3, 4), "MXYZ")  # no component axis: one component
    assert m.dtype == np.uint8 and m[1, 2, 3] == 23
    with pytest.raises(ValueError, match="expected mask values as integers 0..255"):
        to_volume(np.full((2, 2, 2), 300), "MXYZ")
    with pytest.raises(ValueError, match=r"expected a 4D array \(axes \('Z', 'Y', 'X', 'D'\)\)"):
        to_volume(np.zeros((2, 2)), "DXYZ")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.float32, np.float64])
def test_colour_images_of_any_pixel_type(dtype):
    """RGB of every type scales by the rule: unsigned by the type's range, [0, 1] floats as they
    are, anything else min→max (hand-computed here with numpy)."""
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        a = rng.uniform(0, 1, (9, 11, 3)).astype(dtype)
        ref = a.astype(np.float64)
    elif np.dtype(dtype).kind == "u":
        top = np.iinfo(dtype).max
        a = rng.integers(0, top, (9, 11, 3), dtype=dtype, endpoint=True)
        ref = a.astype(np.float64) / top
    else:
        a = rng.integers(-500, 900, (9, 11, 3)).astype(dtype)
        ref = np.stack([(a[..., k] - a[..., k].min()) / (a[..., k].max() - a[..., k].min()) for k in range(3)], -1)
    got = to_rgb8(a, "CXY")
    assert got.dtype == np.uint8 and got.shape == (9, 11, 3)
    assert np.abs(got.astype(int) - np.rint(ref * 255)).max() <= 1


def test_multi_channel_image_colours_each_channel():
    a = np.zeros((4, 5, 6), np.uint16)
    a[1, 2, 4] = 65535  # channel 4 only
    got = to_rgb8(a, "CXY")
    np.testing.assert_array_equal(got[1, 2], np.rint(CHANNEL_COLORS[4] * 255).astype(np.uint8))
    assert got.sum() == got[1, 2].sum()
    with pytest.raises(ValueError, match="expected at most 6 channels"):
        to_rgb8(np.zeros((2, 2, 7)), "CXY")


def test_sixteen_bit_png_is_scaled_not_truncated(tmp_path):
    """A 16-bit grey PNG (cv2-written) shows v/65535 of white (fails with 8-bit reading: wrap/clip)."""
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    cv2.imwrite(str(tmp_path / "ramp.png"), ramp)
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    ts = reg.tiles(reg.register(tmp_path / "ramp.png").id)
    np.testing.assert_array_equal(ts.tile(0, 0, 0)[..., 0], np.rint(ramp / 257.0).astype(np.uint8))
    reg.close()


def test_dataconfig_arrays_register_render_and_stay_confined(tmp_path):
    """A seed folder whose config.meta lists DXYZ + MXYZ arrays renders the numpy slice with its mask;
    a CXY array is an image dataset; an array file outside the folder is refused."""
    root = tmp_path / "root"
    (root / "vol").mkdir(parents=True)
    rng = np.random.default_rng(2)
    dens = rng.integers(-1000, 1000, (7, 20, 30, 1)).astype(np.int32)
    mask = (dens[..., 0] > 500).astype(np.uint8)
    np.save(root / "vol" / "ct.npy", dens)
    np.save(root / "vol" / "seg.npy", mask)
    meta = {"name": "arrays", "arrays": [
        {"file": "ct.npy", "dimension_order": "DXYZ", "element_size_mm": [0.7, 0.9, 2.5], "origin_mm": [5, -3, 10]},
        {"file": "seg.npy", "dimension_order": "MXYZ"}]}  # fmt: skip
    (root / "vol" / "config.meta").write_text(json.dumps(meta))
    reg = DatasetRegistry([root], tmp_path / "state")
    eng = RenderEngine(reg)
    rec = reg.register(root / "vol")
    assert (rec.kind, rec.format) == ("volume", "arrays")
    vol = reg.volume(rec.id)
    np.testing.assert_array_equal(vol.data, dens[..., 0])
    np.testing.assert_array_equal(vol.labels, mask)
    assert vol.geometry.spacing == (0.7, 0.9, 2.5)
    np.testing.assert_allclose(vol.to_mm(np.array([2, 3, 4])), [5 + 2 * 0.7, -3 + 3 * 0.9, 10 + 4 * 2.5])

    (root / "rgb").mkdir()
    np.save(root / "rgb" / "c.npy", rng.integers(0, 65535, (40, 50, 3)).astype(np.uint16))
    (root / "rgb" / "config.meta").write_text(json.dumps({"arrays": [{"file": "c.npy", "dimension_order": "CXY"}]}))
    img_rec = reg.register(root / "rgb")
    assert img_rec.kind == "image"
    frame = decode(eng.render(eng.open(img_rec.id).id).data)
    assert frame.shape == (512, 512, 3) and frame.std() > 20

    np.save(tmp_path / "outside.npy", dens)
    (root / "evil").mkdir()
    (root / "evil" / "config.meta").write_text(
        json.dumps({"arrays": [{"file": "../../outside.npy", "dimension_order": "DXYZ"}]})
    )
    with pytest.raises(ValueError, match="expected image inside"):
        reg.register(root / "evil")
    reg.close()
