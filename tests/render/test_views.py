"""Volume views against independent references (scipy, numpy slicing, known geometry)."""

from __future__ import annotations

import numpy as np
import pytest
from clara_stream.render import kernels
from clara_stream.render.state import LabelStyle, ViewState
from clara_stream.render.synthetic import PHANTOM_ORIGIN, PHANTOM_SPACING, phantom
from clara_stream.render.transfer import window_to_u8
from clara_stream.render.views import render_volume, view_mapping
from clara_stream.render.volume import Volume
from scipy.ndimage import map_coordinates

from clara_stream.geometry import ImageGeometry


@pytest.fixture(scope="module")
def vol() -> Volume:
    data, labels = phantom((40, 96, 128))
    return Volume(data, ImageGeometry(PHANTOM_ORIGIN, PHANTOM_SPACING), labels)


def test_oblique_plane_matches_scipy_trilinear():
    rng = np.random.default_rng(1)
    data = rng.normal(0, 100, (30, 40, 50)).astype(np.float32)
    out = np.empty((64, 70), np.float32)
    base, du, dv = np.array([3.2, 1.1, 4.0]), np.array([0.55, 0.12, 0.21]), np.array([-0.05, 0.48, 0.17])
    kernels.sample_plane(data, base, du, dv, out, np.float32(-1e9))
    r, c = np.mgrid[0:64, 0:70]
    pts = base[:, None, None] + c * du[:, None, None] + r * dv[:, None, None]
    ref = map_coordinates(data, [pts[2], pts[1], pts[0]], order=1, mode="nearest")
    inside = (out > -1e8) & (pts[0] < 49) & (pts[1] < 39) & (pts[2] < 29)
    assert inside.sum() > 1000
    np.testing.assert_allclose(out[inside], ref[inside], atol=1e-3)
    assert (out[pts[0] > 49.01] == np.float32(-1e9)).all()


def _one_px_per_voxel(v: Volume, st: ViewState) -> ViewState:
    st.zoom = view_mapping(v, st).mm_per_px / PHANTOM_SPACING[0]
    return st


def test_axial_is_the_original_slice(vol):
    k = 17
    focus = vol.to_mm(np.array([63.5, 47.5, k]))  # between voxel centres in x/y: pixel centres land on voxels
    st = _one_px_per_voxel(
        vol,
        ViewState(
            mode="axial",
            width=128,
            height=96,
            focus_mm=tuple(focus),
            window_center=0,
            window_width=2000,
            show_mask=False,
        ),
    )
    rgb, m = render_volume(vol, st)
    assert m.mm_per_px == pytest.approx(PHANTOM_SPACING[0])
    np.testing.assert_array_equal(rgb, window_to_u8(vol.data[k].astype(np.float32), -1000, 1000))


def test_coronal_and_sagittal_put_superior_at_the_top():
    data = np.zeros((20, 30, 40), np.int16)
    data[-3:] = 1000  # highest z = superior in LPS
    v = Volume(data, ImageGeometry((0, 0, 0), (1, 1, 1)))
    for mode in ("coronal", "sagittal"):
        rgb, _ = render_volume(
            v,
            ViewState(
                mode=mode, width=64, height=64, focus_mm=tuple(v.center_mm), window_center=500, window_width=1000
            ),
        )
        rows = rgb[..., 0].mean(axis=1)
        bright = np.nonzero(rows > 200)[0]
        assert bright.size and bright.max() < 32, mode


def test_oblique_with_axial_normal_matches_axial(vol):
    focus = tuple(vol.to_mm(np.array([63.5, 47.5, 20])))
    a = ViewState(mode="axial", width=128, height=96, focus_mm=focus, window_center=0, window_width=2000)
    o = ViewState(
        mode="oblique",
        width=128,
        height=96,
        focus_mm=focus,
        window_center=0,
        window_width=2000,
        normal=(0, 0, 1),
        up=(0, -1, 0),
    )
    ra, _ = render_volume(vol, a)
    ro, _ = render_volume(vol, o)
    assert np.abs(ra.astype(int) - ro.astype(int)).mean() < 1.0


def test_mip_shows_the_maximum_along_the_ray():
    data = np.full((20, 30, 40), -100, np.int16)
    data[5, 12, 30] = 900  # one bright voxel
    v = Volume(data, ImageGeometry((0, 0, 0), (1, 1, 1)))
    st = ViewState(mode="mip", width=100, height=100, focus_mm=tuple(v.center_mm), window_center=400, window_width=1000)
    rgb, m = render_volume(v, st)
    r, c = np.unravel_index(np.argmax(rgb[..., 0]), rgb.shape[:2])
    # project the voxel into the anterior view: u = +x, v = -z
    p = v.to_mm(np.array([30, 12, 5]))
    col = (p - m.center) @ m.u / m.mm_per_px + m.width / 2
    row = (p - m.center) @ m.v / m.mm_per_px + m.height / 2
    assert abs(c - col) <= 1.5 and abs(r - row) <= 1.5
    st.azimuth_deg = 90
    rgb2, _ = render_volume(v, st)
    assert not np.array_equal(rgb, rgb2)


def test_hidden_label_disappears_from_composite_and_overlay(vol):
    st = ViewState(
        mode="composite",
        width=96,
        height=96,
        focus_mm=tuple(vol.center_mm),
        window_center=0,
        window_width=2000,
        elevation_deg=20,
    )
    shown, _ = render_volume(vol, st)
    st.labels = [LabelStyle(2, (1, 1, 1), 1.0, hidden=True)]  # remove the ribs
    hidden, _ = render_volume(vol, st)
    assert np.abs(shown.astype(int) - hidden.astype(int)).mean() > 2.0
    ax = ViewState(
        mode="axial",
        width=128,
        height=96,
        focus_mm=tuple(vol.center_mm),
        window_center=40,
        window_width=400,
        mask_opacity=0.8,
        labels=[LabelStyle(1, (0, 0, 0), 0.0)],
    )
    with_mask, _ = render_volume(vol, ax)
    ax.show_mask = False
    no_mask, _ = render_volume(vol, ax)
    lesion = with_mask[..., 2].astype(int) - with_mask[..., 0].astype(int)  # label 3 is blue
    assert (lesion > 80).sum() > 20
    assert ((no_mask[..., 2].astype(int) - no_mask[..., 0].astype(int)) > 80).sum() == 0


def test_interactive_ray_frame_is_close_to_the_full_one(vol):
    st = ViewState(
        mode="mip",
        width=128,
        height=128,
        focus_mm=tuple(vol.center_mm),
        window_center=0,
        window_width=2000,
        azimuth_deg=30,
    )
    full, _ = render_volume(vol, st)
    st.interactive = True
    fast, _ = render_volume(vol, st)
    assert np.abs(full.astype(int) - fast.astype(int)).mean() < 20


def test_mip_block_skipping_is_exact():
    """Jumping over 8³ blocks that cannot raise the maximum gives the same image as visiting all."""
    from clara_stream.render.views import ray_setup

    rng = np.random.default_rng(3)
    data = (rng.normal(0, 50, (37, 45, 51)) + np.linspace(0, 400, 51)[None, None, :]).astype(np.int16)
    v = Volume(data, ImageGeometry((0, 0, 0), (0.7, 0.9, 1.6)))
    st = ViewState(mode="mip", width=90, height=80, focus_mm=tuple(v.center_mm), azimuth_deg=37, elevation_deg=-23)
    m = view_mapping(v, st)
    base, du, dv, dstep, nsteps, _ = ray_setup(v, m, 1)
    outs = []
    for bmax in (kernels.block_max(data), np.full_like(kernels.block_max(data), np.iinfo(np.int16).max)):
        img = np.empty((80, 90), np.float32)
        lab = np.empty((80, 90), np.uint8)
        no_labels, hidden = np.zeros((0, 0, 0), np.uint8), np.zeros(256, bool)
        kernels.mip(data, no_labels, hidden, bmax, base, du, dv, dstep, nsteps, img, lab, np.float32(-1e9))
        outs.append(img)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert (outs[0] > -1e8).sum() > 2000


def test_overview_is_drawn_on_request(tmp_path):
    from clara_stream.render.client import decode
    from clara_stream.render.datasets import DatasetRegistry
    from clara_stream.render.engine import RenderEngine
    from clara_stream.render.synthetic import write_seed_dataset

    write_seed_dataset(tmp_path / "seed", (24, 64, 64))
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    engine = RenderEngine(reg)
    s = engine.open(reg.register(tmp_path / "seed").id)
    engine.interact(s.id, "zoom", factor=3.0)
    plain = decode(engine.render(s.id).data)
    st = s.state
    st.scale_bar, st.picture_in_picture, st.format = True, True, "png"
    engine.set_view(s.id, st)
    annotated = decode(engine.render(s.id).data)
    # the bar's length is checked against anatomy in test_patient_space.py::test_scale_bar_length_matches_the_anatomy
    inset = np.s_[-136:-8, -136:-8]
    assert np.abs(annotated[inset].astype(int) - plain[inset].astype(int)).mean() > 10
    reg.close()


def test_hidden_label_leaves_the_mip(vol):
    st = ViewState(
        mode="mip",
        width=96,
        height=96,
        focus_mm=tuple(vol.center_mm),
        window_center=300,
        window_width=1000,
        show_mask=False,
    )
    with_ribs, _ = render_volume(vol, st)
    st.labels = [LabelStyle(2, (1, 1, 1), 1.0, hidden=True)]
    without, _ = render_volume(vol, st)
    assert with_ribs.max() > 200 and without.max() < 150  # 700 HU shell gone; 300 HU lesion is brightest


def test_composite_label_colours_follow_show_mask(vol):
    st = ViewState(
        mode="composite",
        width=64,
        height=64,
        focus_mm=tuple(vol.center_mm),
        window_center=0,
        window_width=2000,
        labels=[LabelStyle(v, (0.0, 0.0, 1.0), 1.0) for v in (1, 2, 3)],
    )
    coloured, _ = render_volume(vol, st)
    st.show_mask = False
    plain, _ = render_volume(vol, st)
    assert coloured[..., 2].mean() > coloured[..., 0].mean() + 5  # labels paint it blue
    assert plain[..., 0].mean() >= plain[..., 2].mean()  # the warm default transfer function


def test_gpu_failure_falls_back_to_cpu(monkeypatch):
    """A kernel that fails on the device disables the GPU path; frames still render on the CPU."""

    def broken(*args, **kwargs):
        raise RuntimeError("simulated CUDA failure")

    from clara_stream.render import gpu

    monkeypatch.setattr(gpu, "available", lambda: True)  # pretend a device answers
    monkeypatch.setattr(gpu, "sample_plane", broken)
    monkeypatch.setattr(gpu, "_DISABLED", [])
    v = Volume(np.zeros((8, 16, 16), np.int16), ImageGeometry())
    rgb, _ = render_volume(v, ViewState(mode="oblique", width=32, height=32, focus_mm=tuple(v.center_mm)))
    assert rgb.shape == (32, 32, 3) and not gpu.usable()
