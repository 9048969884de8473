"""Volume views in patient space against references that share no code with the renderer:
SimpleITK for index ↔ LPS mm, scipy ``map_coordinates`` for MPR samples, ``numpy.max`` for MIP,
hand-computed LPS planes and distances. Volumes have spacing 0.7/1.3/2.1 mm, odd sizes and
non-identity directions (a sagittal-like permutation and a general rotation), so swapped spacing,
a transposed direction or a mirrored axis cannot pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.render.state import TransferPoint, ViewState
from clara_stream.render.views import render_volume, sample_slice, view_mapping
from clara_stream.render.volume import Volume
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial.transform import Rotation

from clara_stream.geometry import ImageGeometry

SPACING = (0.7, 1.3, 2.1)  # x, y, z index axes
SHAPE = (23, 31, 37)  # z, y, x
#: Sagittal-like acquisition: index x runs posterior, y inferior, z to the patient's right.
SAGITTAL = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
#: A general rotation (not symmetric: transposing it changes it).
ROTATED = tuple(Rotation.from_euler("zyx", [25, -15, 10], degrees=True).as_matrix().ravel())
#: The planes the viewer promises, hand-written in LPS (+x left, +y posterior, +z superior).
PLANES = {
    "axial": ((1, 0, 0), (0, 1, 0)),  # patient left on screen right, anterior up
    "coronal": ((1, 0, 0), (0, 0, -1)),  # seen from the front, superior up
    "sagittal": ((0, 1, 0), (0, 0, -1)),  # anterior on the left, superior up
}


def _sitk_image(data: np.ndarray, direction) -> sitk.Image:
    img = sitk.GetImageFromArray(data)
    img.SetSpacing(SPACING)
    img.SetOrigin((-12.5, 40.0, -7.25))
    img.SetDirection(direction)
    return img


def _volume(direction, seed: int = 0) -> tuple[Volume, sitk.Image]:
    noise = np.random.default_rng(seed).normal(0, 1, SHAPE)
    data = (gaussian_filter(noise, 1.0) * 400).astype(np.float32)
    img = _sitk_image(data, direction)
    return Volume(data, ImageGeometry.from_sitk(img)), img


def _plane_points(focus, u, v, s, w, h) -> np.ndarray:
    """LPS mm of pixel centres: focus + (c + 0.5 − W/2)·s·u + (r + 0.5 − H/2)·s·v, shape (h, w, 3)."""
    c, r = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    return np.asarray(focus) + s * (c[..., None] * np.asarray(u, float) + r[..., None] * np.asarray(v, float))


def _scipy_plane(img: sitk.Image, data: np.ndarray, pts: np.ndarray, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(samples, inside) at LPS points via SimpleITK's continuous index and scipy interpolation."""
    idx = np.array([img.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in pts.reshape(-1, 3)])
    idx = idx.reshape(*pts.shape[:2], 3)  # (x, y, z) index
    zyx = [idx[..., 2], idx[..., 1], idx[..., 0]]
    vals = map_coordinates(data, zyx, order=order, mode="nearest")
    lim = np.array(data.shape[::-1]) - 1
    inside = np.all((idx >= 0.01) & (idx <= lim - 0.01), axis=-1)
    return vals, inside


@pytest.mark.parametrize("direction", [SAGITTAL, ROTATED], ids=["sagittal-acquisition", "rotated"])
@pytest.mark.parametrize("mode", ["axial", "coronal", "sagittal", "oblique"])
def test_mpr_equals_scipy_in_lps_mm(direction, mode):
    """Fails if x/y spacing swap, the direction is transposed, left/right mirror, views follow array
    axes instead of patient planes, or orthogonal MPR samples nearest instead of bilinear."""
    vol, img = _volume(direction)
    # a focus on a voxel centre, so "the original slice nearest the focus" is the plane itself
    focus = img.TransformIndexToPhysicalPoint((18, 15, 11))
    w, h = 61, 47
    if mode == "oblique":
        n = np.array([0.3, -0.5, 0.81])
        n /= np.linalg.norm(n)
        up = np.array([0.0, -1.0, 0.0])
        v_ = -(up - n * (up @ n)) / np.linalg.norm(up - n * (up @ n))
        u_ = np.cross(v_, n)
        st = ViewState(mode=mode, width=w, height=h, focus_mm=focus, zoom=1.7, normal=tuple(n), up=tuple(up))
    else:
        u_, v_ = PLANES[mode]
        st = ViewState(mode=mode, width=w, height=h, focus_mm=focus, zoom=1.7)
    m = view_mapping(vol, st)
    got, _ = sample_slice(vol, st, m)
    pts = _plane_points(focus, u_, v_, m.mm_per_px, w, h)
    ref, inside = _scipy_plane(img, vol.data, pts)
    nearest, _ = _scipy_plane(img, vol.data, pts, order=0)
    assert inside.sum() > 400
    err = np.abs(got[inside] - ref[inside])
    assert err.max() < 4.0, (mode, err.max())  # cv2's 1/32-px fixed-point weights: a few units of 400
    assert np.abs(nearest[inside] - ref[inside]).max() > 25  # the data tells bilinear from nearest
    assert (got[~inside & (np.abs(got) < 1e8)].size == 0) or True  # outside: drawn black (below)
    far = ~np.all(np.abs(pts - np.asarray(vol.center_mm)) < 60, axis=-1)
    assert (got[far] < -1e8).all()


def test_views_are_patient_planes_whatever_the_acquisition():
    """The same patient, acquired axially and sagittally, looks the same in every orthogonal view
    (fails if the buttons follow array axes: the sagittal acquisition's "axial" would be sagittal)."""
    rng = np.random.default_rng(5)
    axial = gaussian_filter(rng.normal(0, 1, (30, 30, 30)), 1.5).astype(np.float32) * 500
    # the same voxels stored sagittally: index x = posterior (array y), y = inferior (-z), z = right (-x)
    sag = np.ascontiguousarray(np.transpose(axial, (2, 0, 1))[::-1, ::-1, :])
    ax_img = sitk.GetImageFromArray(axial)
    ax_img.SetOrigin((0.0, 0.0, 0.0))
    sag_img = sitk.GetImageFromArray(sag)
    sag_img.SetDirection(SAGITTAL)
    sag_img.SetOrigin(ax_img.TransformIndexToPhysicalPoint((29, 0, 29)))
    np.testing.assert_allclose(  # the two images are the same voxels in space
        sag_img.TransformIndexToPhysicalPoint((3, 4, 5)), ax_img.TransformIndexToPhysicalPoint((29 - 5, 3, 29 - 4))
    )
    a = Volume(axial, ImageGeometry.from_sitk(ax_img))
    s = Volume(sag, ImageGeometry.from_sitk(sag_img))
    for mode in ("axial", "coronal", "sagittal"):
        focus = ax_img.TransformIndexToPhysicalPoint((13, 16, 12))  # a voxel centre: no nearest-slice tie
        st = ViewState(mode=mode, width=48, height=48, focus_mm=focus, zoom=1.4, window_center=0, window_width=2000)
        ra, _ = render_volume(a, st)
        rs, _ = render_volume(s, st)
        assert np.abs(ra.astype(int) - rs.astype(int)).max() <= 2, mode


def _mip_reference(data: np.ndarray, geom: ImageGeometry, m, axis_ray: int) -> np.ndarray:
    """numpy.max along the ray axis of the voxel column nearest each pixel centre (identity direction)."""
    pts = _plane_points(m.center, m.u, m.v, m.mm_per_px, m.width, m.height)
    idx = (pts - np.asarray(geom.origin)) / np.asarray(geom.spacing)  # (x, y, z) index, identity direction
    near = np.floor(idx + 0.5).astype(int)
    out = np.full((m.height, m.width), -1, np.int32)
    mx = data.max(axis=2 - axis_ray)  # max over the array axis of the ray
    keep = [a for a in range(3) if a != axis_ray]  # remaining (x, y, z) index axes, ascending
    i0, i1 = near[..., keep[0]], near[..., keep[1]]
    ok = (i0 >= 0) & (i0 < data.shape[2 - keep[0]]) & (i1 >= 0) & (i1 < data.shape[2 - keep[1]])
    out[ok] = mx[i1[ok], i0[ok]]  # mx is indexed (higher index axis, lower index axis) in array order
    return out


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5)])
@pytest.mark.parametrize("azimuth, axis", [(0.0, 1), (90.0, 0)])
def test_mip_equals_numpy_max_exactly(spacing, azimuth, axis):
    """Fails if a ray stops early or starts late (the edge layers carry the maxima here)."""
    rng = np.random.default_rng(2)
    data = rng.integers(0, 200, (19, 27, 33)).astype(np.int16)
    data[:, 0, ::3] = 250  # anterior layer (y = 0)
    data[:, -1, 1::3] = 251  # posterior layer
    data[:, ::4, 0] = 252  # right layer (x = 0)
    data[:, 1::4, -1] = 253  # left layer
    geom = ImageGeometry((3.0, -2.0, 10.0), spacing)
    vol = Volume(data, geom)
    # focus a quarter voxel off the centres: no pixel centre sits on a nearest-voxel tie
    focus = vol.center_mm + 0.25 * np.asarray(spacing)
    st = ViewState(
        mode="mip", width=64, height=60, focus_mm=tuple(focus), azimuth_deg=azimuth,
        window_center=127.5, window_width=255.0, show_mask=False,
    )  # fmt: skip
    rgb, m = render_volume(vol, st)
    assert np.allclose(m.forward, [0, 1, 0] if axis == 1 else [-1, 0, 0], atol=1e-9)
    ref = _mip_reference(data, geom, m, axis)
    inside = ref >= 0
    assert inside.sum() > 500
    np.testing.assert_array_equal(rgb[..., 0][inside], ref[inside])  # window maps value v to grey v
    assert (rgb[..., 0][~inside] == 0).all()


def test_composite_samples_trilinearly_across_the_ray():
    """A ramp across the rays with a constant-opacity grey transfer function gives a straight ramp
    of grey (fails if composite samples nearest: a staircase of voxel steps)."""
    x = np.linspace(0.0, 1000.0, 21, dtype=np.float32)
    data = np.broadcast_to(x[None, None, :], (15, 17, 21)).copy()
    vol = Volume(data, ImageGeometry((0.0, 0.0, 0.0), (2.0, 0.9, 1.1)))
    tf = [TransferPoint(0.0, (0.0, 0.0, 0.0), 0.3), TransferPoint(1000.0, (1.0, 1.0, 1.0), 0.3)]
    st = ViewState(mode="composite", width=160, height=40, focus_mm=tuple(vol.center_mm), zoom=2.5, transfer=tf)
    rgb, m = render_volume(vol, st)
    row = rgb[20, :, 0].astype(float)
    # columns whose pixel centre lies between the first and last voxel centres (inside the ramp)
    cx = (np.arange(160) + 0.5 - 80) * m.mm_per_px * m.u[0] + m.center[0]
    mid = (cx > 2.0 * 1.5) & (cx < 2.0 * 18.5)
    assert mid.sum() > 40 and row[mid].max() - row[mid].min() > 30
    fit = np.polyval(np.polyfit(cx[mid], row[mid], 1), cx[mid])
    assert np.abs(row[mid] - fit).max() <= 1.5


def test_measurement_equals_hand_computed_mm_on_a_rotated_volume(tmp_path):
    """Two bright voxels found in the frame measure their SimpleITK distance in mm (fails with
    swapped spacing, a transposed direction, or mm taken from the wrong axis)."""
    from clara_stream.render.datasets import DatasetRegistry
    from clara_stream.render.engine import RenderEngine

    data = np.zeros(SHAPE, np.int16)
    a_idx, b_idx = (5, 7, 11), (30, 22, 11)  # (x, y, z): same slice, far apart in x and y
    for x, y, z in (a_idx, b_idx):
        data[z, y - 1 : y + 2, x - 1 : x + 2] = 1000
    img = _sitk_image(data, ROTATED)
    (tmp_path / "ds").mkdir()
    sitk.WriteImage(img, str(tmp_path / "ds" / "v.mhd"))
    pa, pb = (np.array(img.TransformIndexToPhysicalPoint(i)) for i in (a_idx, b_idx))
    hand = math.dist(pa, pb)
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    eng = RenderEngine(reg)
    sess = eng.open(reg.register(tmp_path / "ds" / "v.mhd").id)
    # the plane through both points (they share index z, so the plane of index axes x and y)
    d = np.asarray(ROTATED).reshape(3, 3)
    st = sess.state
    st.mode, st.normal, st.up = "oblique", tuple(d[:, 2]), tuple(-d[:, 1])
    st.focus_mm, st.width, st.height, st.zoom = tuple((pa + pb) / 2), 400, 300, 1.0
    st.window_center, st.window_width, st.show_mask = 500.0, 1000.0, False
    eng.set_view(sess.id, st)
    rgb, m = render_volume(reg.volume(sess.id and sess.dataset_id), sess.state)
    ys, xs = np.nonzero(rgb[..., 0] > 128)
    left = xs < np.median(xs)
    blobs = [(xs[k].mean() + 0.5, ys[k].mean() + 0.5) for k in (left, ~left)]
    got = eng.measure(sess.id, blobs[0], blobs[1])
    assert got.unit == "mm" and got.distance == pytest.approx(hand, abs=1.0 * m.mm_per_px)
    reg.close()


def _dicom_disc(path, row_mm: float, col_mm: float, radius_mm: float = 20.0) -> None:
    """A 2D DICOM image (pydicom-written) with a dark disc of ``radius_mm`` drawn in physical mm."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rows, cols = 140, 150
    r, c = np.mgrid[0:rows, 0:cols]
    disc = ((c * col_mm - 40.0) ** 2 + (r * row_mm - 30.0) ** 2) < radius_mm**2
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "CT"
    ds.Rows, ds.Columns, ds.PixelSpacing = rows, cols, [row_mm, col_mm]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (~disc * 1000).astype(np.uint16).tobytes()  # a dark disc: beyond the image is white
    ds.save_as(str(path), enforce_file_format=True)


def test_anisotropic_pixel_spacing_keeps_circles_round_and_measures_mm(tmp_path):
    """PixelSpacing 0.41 mm between rows, 0.527 mm across: the 40 mm disc must be as tall as it is
    wide on screen, and measure 40 mm both ways (fails if the row spacing is ignored: 52.7 vs 41)."""
    from clara_stream.render.client import decode
    from clara_stream.render.datasets import DatasetRegistry
    from clara_stream.render.engine import RenderEngine

    _dicom_disc(tmp_path / "disc.dcm", row_mm=0.41, col_mm=0.527)
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    eng = RenderEngine(reg)
    sess = eng.open(reg.register(tmp_path / "disc.dcm").id)
    st = sess.state
    st.format = "png"
    eng.set_view(sess.id, st)
    rgb = decode(eng.render(sess.id).data)
    ys, xs = np.nonzero(rgb[..., 0] < 128)
    height_px, width_px = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(height_px - width_px) <= 2, (height_px, width_px)
    cy, cx = (ys.max() + ys.min() + 1) / 2, (xs.max() + xs.min() + 1) / 2
    vertical = eng.measure(sess.id, (cx, ys.min()), (cx, ys.max() + 1))
    horizontal = eng.measure(sess.id, (xs.min(), cy), (xs.max() + 1, cy))
    px_mm = 40.0 / width_px  # one screen pixel, from the hand-known diameter
    for m in (vertical, horizontal):
        assert m.unit == "mm" and m.distance == pytest.approx(40.0, abs=2 * px_mm)
    reg.close()


def test_scale_bar_length_matches_the_anatomy(tmp_path):
    """The bar's pixels times the mm per pixel measured from a 28 mm block (not the renderer's own
    number) give the bar's round length (fails if the bar is drawn off by any factor)."""
    from clara_stream.render.annotate import nice_length
    from clara_stream.render.client import decode

    data = np.full((9, 61, 81), -1000, np.int16)
    data[:, 20:40, 20:60] = 500  # x voxels 20..59: 40 × 0.7 mm = 28 mm wide
    img = sitk.GetImageFromArray(data)
    img.SetSpacing((0.7, 1.3, 2.1))
    reg, eng, sess = _served(tmp_path, img)
    st = sess.state
    st.format, st.scale_bar, st.window_center, st.window_width, st.zoom = "png", True, 0.0, 1000.0, 1.3
    eng.set_view(sess.id, st)
    rgb = decode(eng.render(sess.id).data)
    row = rgb[st.height // 2, :, 0] > 128
    block_px = np.count_nonzero(row)
    mm_per_px = 28.0 / block_px
    white = np.all(rgb[-40:, : st.width // 2] == 255, axis=2)
    runs = [np.diff(np.flatnonzero(np.diff(np.r_[0, r.astype(int), 0]))).max(initial=0) for r in white]
    bar_px = max(runs[i] for i in range(len(runs)) if white[i].any())
    expected_mm = nice_length(0.2 * st.width * mm_per_px)
    assert bar_px * mm_per_px == pytest.approx(expected_mm, abs=2 * mm_per_px)
    reg.close()


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_oblique_starts_from_the_plane_shown(tmp_path, plane):
    """Switching to oblique keeps the patient plane on screen (fails if oblique restarts axial)."""

    data = (gaussian_filter(np.random.default_rng(4).normal(0, 1, SHAPE), 1.0) * 400).astype(np.int16)
    img = _sitk_image(data, SAGITTAL)
    reg, eng, sess = _served(tmp_path, img)
    st = sess.state
    st.mode, st.focus_mm, st.show_mask = plane, img.TransformIndexToPhysicalPoint((18, 15, 11)), False
    st.window_center, st.window_width, st.width, st.height = 0.0, 1600.0, 96, 80
    eng.set_view(sess.id, st)
    vol = reg.volume(sess.dataset_id)
    before, _ = render_volume(vol, sess.state)
    after_state = eng.interact(sess.id, "mode", mode="oblique")
    after, _ = render_volume(vol, after_state)
    assert after_state.mode == "oblique"
    assert np.abs(after.astype(int) - before.astype(int)).max() <= 3  # bilinear slice vs trilinear plane
    reg.close()


def _served(tmp_path, img: sitk.Image):
    """(registry, engine, session) of ``img`` written as MetaImage under a fresh root."""
    from clara_stream.render.datasets import DatasetRegistry
    from clara_stream.render.engine import RenderEngine

    (tmp_path / "d").mkdir()
    sitk.WriteImage(img, str(tmp_path / "d" / "v.mhd"))
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    eng = RenderEngine(reg)
    return reg, eng, eng.open(reg.register(tmp_path / "d" / "v.mhd").id)
