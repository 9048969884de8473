"""Tiles (LRU, provisional coarse tiles, only visible tiles read), dataset registry and engine."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.render.annotate import nice_length
from clara_stream.render.client import decode
from clara_stream.render.datasets import DatasetRegistry, PathNotAllowed, UnknownDataset
from clara_stream.render.engine import RenderEngine
from clara_stream.render.sources import ArraySource, SlideSource
from clara_stream.render.synthetic import PHANTOM_SPACING
from clara_stream.render.tiles import TileServer


def test_region_equals_direct_read_and_reads_only_visible_tiles(render_root):
    ts = TileServer(SlideSource(render_root / "slide.tif"))
    try:
        img, provisional = ts.region(300, 200, 300, 200, 1.0)
        assert not provisional
        ref = ts.source.read(0, 300, 200, 300, 200)
        assert np.abs(img.astype(int) - ref.astype(int)).max() <= 1
        assert ts.reads == 4  # x 300..600 and y 200..400 cover 2 x 2 tiles of 256
        ts.region(300, 200, 300, 200, 1.0)
        assert ts.reads == 4  # served from the cache
    finally:
        ts.close()


def test_provisional_coarse_tile_then_exact(render_root):
    ts = TileServer(SlideSource(render_root / "slide.tif"))
    try:
        ts.tile(3, 0, 0)  # the whole level-3 image is one tile: cached overview
        arr, provisional = ts.tile_or_provisional(0, 2, 1)
        assert provisional and arr.shape == (256, 256, 3)
        ts.wait_loaded()
        exact, provisional = ts.tile_or_provisional(0, 2, 1)
        assert not provisional
        assert np.abs(exact.astype(int) - ts.source.read(0, 512, 256, 256, 256).astype(int)).max() <= 1
        assert np.abs(arr.astype(float) - exact).mean() < 40  # the upscaled guess resembles the truth
        region, provisional = ts.region(1500, 1000, 256, 256, 1.0, allow_provisional=True)
        assert provisional and region.shape == (256, 256, 3)
    finally:
        ts.close()


def test_lru_budget_evicts_oldest():
    src = ArraySource(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8))
    ts = TileServer(src, tile_size=256, cache_mb=3 * 256 * 256 * 3 / 2**20)
    for tx in range(4):
        ts.tile(0, tx, 0)
    assert ts.cached(0, 0, 0) is None and ts.cached(0, 3, 0) is not None
    ts.close()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ts: ts.tile(9, 0, 0), "expected level in 0..3; got 9"),
        (lambda ts: ts.tile(0, 99, 0), r"expected tile x in 0..11"),
        (lambda ts: ts.region(0, 0, 5000, 10, 1.0), "expected region size 1..4096"),
        (lambda ts: ts.region(1e7, 0, 10, 10, 1.0), "expected a region overlapping"),
        (lambda ts: ts.region(0, 0, 10, 10, -1.0), r"expected downsample in \(0, 1e4\]"),
    ],
)
def test_bad_tile_requests_name_the_rule(render_root, call, match):
    ts = TileServer(SlideSource(render_root / "slide.tif"))
    try:
        with pytest.raises(ValueError, match=match):
            call(ts)
    finally:
        ts.close()


def test_nice_length():
    assert [nice_length(v) for v in (0.37, 1, 7.9, 23, 99)] == [0.2, 1, 5, 20, 50]


def test_paths_are_confined_to_roots(registry, render_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(PathNotAllowed, match="expected a path under"):
        registry.register(outside)
    link = render_root / "escape"
    if not link.exists():
        os.symlink(outside, link)
    with pytest.raises(PathNotAllowed):
        registry.register(link)
    with pytest.raises(PathNotAllowed):
        registry.register(render_root / ".." / "..")
    with pytest.raises(UnknownDataset, match="expected a registered dataset id"):
        registry.get("nope")
    with pytest.raises(ValueError, match="expected id matching"):
        registry.register(render_root / "seed", dataset_id="../x")


def test_seed_nifti_and_settings_round_trip(registry, render_root, tmp_path):
    rec = registry.register(render_root / "seed")
    assert rec.format == "seed" and rec.name == "phantom" and rec.mask_path.endswith("mask.mhd")
    info = registry.info(rec.id)
    assert info["geometry"]["spacing"] == list(PHANTOM_SPACING) and info["label_values"] == [1, 2, 3]
    # a NIfTI copy of the same phantom registers as a volume with the same voxels
    img = sitk.ReadImage(str(render_root / "seed" / "image.mhd"))
    nii = render_root / "phantom.nii.gz"
    if not nii.exists():
        sitk.WriteImage(img, str(nii))
    rec2 = registry.register(nii, name="nifti")
    np.testing.assert_array_equal(registry.volume(rec2.id).data, registry.volume(rec.id).data)
    # settings: the seed folder is writable -> its own config_render.json
    engine = RenderEngine(registry)
    s = engine.open(rec.id)
    engine.interact(s.id, "mode", mode="coronal")
    engine.interact(s.id, "label", value=2, hidden=True)
    path = registry.save_settings(rec.id, s.state)
    assert path == render_root / "seed" / "config_render.json"
    assert json.loads(path.read_text())["view"]["mode"] == "coronal"
    s2 = engine.open(rec.id)
    assert s2.state.mode == "coronal" and s2.state.label_style(2).hidden
    path.unlink()
    # the registry survives a restart
    again = DatasetRegistry(registry.roots, registry.state_dir)
    assert {r.id for r in again.list()} == {rec.id, rec2.id}


def test_engine_measures_mm_and_pixels(registry, render_root):
    rec = registry.register(render_root / "seed")
    engine = RenderEngine(registry)
    s = engine.open(rec.id)
    engine.interact(s.id, "zoom", factor=2.0)
    frame = engine.render(s.id)
    m = engine.measure(s.id, (100, 100), (200, 100))
    assert m.unit == "mm" and m.distance == pytest.approx(100 * frame.units_per_px)
    # axial u axis is +x: the two LPS points differ only in x
    a, b = np.array(m.points)
    assert b[0] - a[0] == pytest.approx(m.distance) and abs(b[1] - a[1]) < 1e-9
    img = registry.register(render_root / "seed", dataset_id="again")  # re-registering is allowed
    assert img.id == "again"
    with pytest.raises(ValueError, match="expected op in"):
        engine.interact(s.id, "explode")
    with pytest.raises(ValueError, match="expected zoom factor > 0"):
        engine.interact(s.id, "zoom", factor=-1)
    with pytest.raises(ValueError, match="expected dx finite"):
        engine.interact(s.id, "pan", dx=float("nan"), dy=0)


def test_planar_image_without_geometry_measures_pixels(registry, render_root):
    import cv2

    png = render_root / "plain.png"
    cv2.imwrite(str(png), np.full((300, 400, 3), 128, np.uint8))
    rec = registry.register(png)
    engine = RenderEngine(registry)
    s = engine.open(rec.id)
    assert s.state.mode == "image"
    m = engine.measure(s.id, (0, 0), (30, 40))
    assert m.unit == "px" and m.distance == pytest.approx(50 * 400 / 512)


def test_slide_frames_pan_zoom_pip_and_scale_bar(registry, render_root):
    rec = registry.register(render_root / "slide.tif")
    engine = RenderEngine(registry)
    s = engine.open(rec.id)
    base = decode(engine.render(s.id).data)
    engine.interact(s.id, "zoom", factor=8.0, x=256, y=256)
    zoomed = decode(engine.render(s.id).data)
    assert np.abs(base.astype(int) - zoomed.astype(int)).mean() > 5
    st = s.state
    st.picture_in_picture = st.scale_bar = True
    engine.set_view(s.id, st)
    annotated = decode(engine.render(s.id).data)
    corner = np.s_[-140:-8, -140:-8]
    assert np.abs(annotated[corner].astype(int) - zoomed[corner].astype(int)).mean() > 5
    m = engine.measure(s.id, (0, 0), (100, 0))
    assert m.unit == "mm" and m.distance == pytest.approx(100 * (3000 / 512 / 8) * 0.5 / 1000, rel=1e-6)


def test_real_ct_series_with_nifti_labels(shared_render_data, tmp_path):
    reg = DatasetRegistry([shared_render_data.root], tmp_path / "state")
    rec = reg.register(shared_render_data.ct_dir, name="ct", mask=shared_render_data.ct_seg)
    assert rec.format == "dicom"  # this anonymised series has an empty SeriesInstanceUID
    vol = reg.volume(rec.id)
    assert vol.shape_zyx == (20, 512, 512) and vol.geometry.spacing[2] == pytest.approx(2.0)
    # the NIfTI label map is stored y-flipped: after resampling, organs sit inside the body, not in air
    labelled = vol.labels > 0
    assert labelled.sum() > 10000
    assert (vol.data[labelled] < -900).mean() < 0.02
    engine = RenderEngine(reg)
    s = engine.open(rec.id)
    path = reg.save_settings(rec.id, s.state)  # shared data is never written
    assert path.is_relative_to(tmp_path / "state")
    reg.close()


def test_real_svs_pyramid_tiles(shared_render_data, tmp_path):
    reg = DatasetRegistry([shared_render_data.root], tmp_path / "state")
    rec = reg.register(shared_render_data.svs_dir / "tcga-cr-7395-01a-01-ts1.svs")
    ts = reg.tiles(rec.id)
    assert [(lv.width, lv.height) for lv in ts.levels[:2]] == [(4443, 3567), (2221, 1783)]
    tile = ts.tile(1, 2, 2)
    assert tile.shape == (256, 256, 3) and tile.std() > 5  # J2K tiles decode to tissue
    # single-level slide: its thumbnail becomes the overview level, so a fit view reads few tiles
    small = reg.tiles(reg.register(shared_render_data.svs_dir / "cmu-1-small-region.svs").id)
    assert len(small.levels) == 2 and small.levels[1].width == 574
    overview, _ = small.region(0, 0, 300, 400, 2220 / 300)
    cols, rows = small.grid(1)  # the file's own 240 px tile grid
    assert small.reads <= cols * rows and overview.std() > 10  # only the overview level was read
    _, provisional = small.region(600, 600, 256, 256, 1.0, allow_provisional=True)
    assert provisional  # the upscaled thumbnail stands in while level-0 tiles load
    small.wait_loaded()
    reg.close()


def test_volume_pipeline_seed_layout_and_hints(render_root, tmp_path):
    """A folder written by the volume pipeline's writer opens with its label names, colours and window."""
    writer = pytest.importorskip("clara_stream.operators.volume.render_dataset")
    from clara_stream.render.synthetic import phantom

    from clara_stream.geometry import ImageGeometry

    vol, labels = phantom((16, 48, 48))
    folder = render_root / "from_pipeline"
    writer.write_render_dataset(
        folder,
        vol,
        ImageGeometry((1, 2, 3), (1.0, 1.0, 2.5)),
        labels,
        {1: "body", 2: "ribs", 3: "lesion"},
        name="pipeline",
        window=(50.0, 350.0),
    )
    doc = json.loads((folder / "config_render.json").read_text())
    doc["labels"]["2"]["visible"] = False
    (folder / "config_render.json").write_text(json.dumps(doc))
    reg = DatasetRegistry([render_root], tmp_path / "state")
    rec = reg.register(folder)
    engine = RenderEngine(reg)
    st = engine.open(rec.id).state
    assert (st.window_center, st.window_width) == (50.0, 350.0)
    ribs = st.label_style(2)
    assert ribs.name == "ribs" and ribs.hidden and max(ribs.color) <= 1.0
    assert reg.volume(rec.id).geometry.spacing == (1.0, 1.0, 2.5)
    reg.close()


def test_folder_of_nifti_files_with_a_label_map(render_root, tmp_path):
    folder = render_root / "nifti_folder"
    folder.mkdir(exist_ok=True)
    img = sitk.ReadImage(str(render_root / "seed" / "image.mhd"))
    sitk.WriteImage(img, str(folder / "ct.nii.gz"))
    sitk.WriteImage(sitk.ReadImage(str(render_root / "seed" / "mask.mhd")), str(folder / "ct_seg.nii.gz"))
    reg = DatasetRegistry([render_root], tmp_path / "state")
    rec = reg.register(folder)
    assert rec.format == "seed" and rec.mask_path.endswith("ct_seg.nii.gz")
    assert reg.info(rec.id)["label_values"] == [1, 2, 3]
    empty = render_root / "empty_folder"
    empty.mkdir(exist_ok=True)
    with pytest.raises(ValueError, match="expected a folder with config.meta"):
        reg.register(empty)
    reg.close()


def test_single_dicom_image_measures_mm(shared_render_data, tmp_path):
    import pydicom

    path = shared_render_data.root / "highdicom_seg_ct" / "data" / "test_files" / "ct_image.dcm"
    if not path.is_file():
        pytest.skip(f"absent: {path}")
    reg = DatasetRegistry([shared_render_data.root], tmp_path / "state")
    rec = reg.register(path)
    assert rec.kind == "image"
    spacing = float(pydicom.dcmread(str(path), stop_before_pixels=True).PixelSpacing[1])
    engine = RenderEngine(reg)
    s = engine.open(rec.id)
    frame = decode(engine.render(s.id).data)
    assert frame.std() > 10  # the CT slice is drawn, windowed
    m = engine.measure(s.id, (100, 100), (200, 100))
    ds = 128 / 512  # 128 px image fitted to 512 px
    assert m.unit == "mm" and m.distance == pytest.approx(100 * ds * spacing, rel=1e-6)
    reg.close()


def test_loaded_volumes_respect_the_memory_budget(render_root, tmp_path):
    budget_gb = 1.5 * (48 * 160 * 160 * 3) / 2**30  # room for one phantom (int16 + uint8 labels), not two
    reg = DatasetRegistry([render_root], tmp_path / "state", max_loaded_gb=budget_gb)
    a = reg.register(render_root / "seed", dataset_id="a").id
    b = reg.register(render_root / "seed", dataset_id="b").id
    reg.volume(a)
    reg.volume(b)
    assert reg.loaded() == [b]
    assert reg.volume(a).shape_zyx == (48, 160, 160)  # reloaded on demand
    assert reg.loaded() == [a]
    reg.close()


def test_ray_frames_are_bounded():
    from clara_stream.render.state import ViewState

    with pytest.raises(ValueError, match="expected at most 4194304 pixels for mip frames"):
        ViewState(mode="mip", width=4096, height=4096).validate()
    ViewState(mode="axial", width=4096, height=4096).validate()
