"""digital_pathology end to end on the real slides: the output pyramid opens in tiffslide with the
input level's size, levels and MPP; its edge pixels equal whole-level cv2.Canny (lossless tiles);
it registers with a real render server as a slide dataset beside the original."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import tiffslide
from clara_stream.operators.pathology.edges import overlap_rule_violations
from clara_stream.operators.pathology.pyramid import level_sizes
from clara_stream.operators.pathology.slide import tile_rows
from clara_stream.render.client import RenderClient
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.server import serve

from clara_stream.runtime import load_app


def _run(slide: Path, out: Path, *overrides: str) -> object:
    items = [tuple(o.split("=", 1)) for o in overrides]
    app = load_app("digital_pathology", input=slide, output=out, overrides=items)
    app.run()
    return app


def _level(path: Path, level: int) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[level].asarray()[..., :3]


def test_lossless_output_is_the_slide_with_canny_edges_in_blue(slides: dict[str, Path], tmp_path: Path) -> None:
    """Fails if tiles land at the wrong place, a level or the MPP is lost, or edges differ from Canny."""
    _run(slides["cmu"], tmp_path, "stitcher.compression=zlib", "tiler.tile=192", "tiler.overlap=16")
    out = tmp_path / "edges.tif"
    src = _level(slides["cmu"], 0)
    with tiffslide.TiffSlide(out) as ts:
        assert ts.level_dimensions == tuple(level_sizes(2220, 2967, 256)) and ts.level_count == 4
        assert ts.level_dimensions[1] == (1110, 1483)
        assert float(ts.properties["tiffslide.mpp-x"]) == pytest.approx(0.499, abs=1e-4)
        got = np.asarray(ts.read_region((0, 0), 0, ts.level_dimensions[0], as_array=True))[..., :3]
    assert not (src == (0, 0, 255)).all(axis=-1).any()  # so every drawn pixel shows as a change
    drawn = (got != src).any(axis=-1)
    assert (got[drawn] == (0, 0, 255)).all()
    grey = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
    whole, strong, cand = (cv2.Canny(grey, lo, hi) > 0 for lo, hi in ((50, 150), (150, 150), (50, 50)))
    assert strong.any() and not (strong & ~drawn).any() and not (drawn & ~cand).any()
    boxes = [b for row in tile_rows(2220, 2967, 192, 16) for b in row]
    assert overlap_rule_violations(drawn, whole, boxes) == 0
    # level 1 is level 0 halved (area average), not a copy of another level
    lv1 = _level(out, 1).astype(int)
    ref = cv2.resize(got[:2966, :2220], (1110, 1483), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(lv1 - ref).max() <= 1


def test_jpeg_pyramid_of_the_jpeg2000_slide_registers_beside_the_original(slides: dict[str, Path],
                                                                          tmp_path: Path) -> None:  # fmt: skip
    """Level 1 of the 2-level Aperio JPEG 2000 slide, JPEG tiles (the default), registered over gRPC."""
    reg = DatasetRegistry([tmp_path, slides["tcga"].parent], tmp_path / "state")
    server, port, _ = serve(reg, port=0, token="k")
    try:
        _run(slides["tcga"], tmp_path / "out", "tiler.level=1", f"register.render_address=127.0.0.1:{port}",
             "register.token=k", "register.dataset_id=tcga-edges", "register.require_registration=true")  # fmt: skip
        out = tmp_path / "out" / "edges.tif"
        with tiffslide.TiffSlide(out) as ts:
            assert ts.level_dimensions == ((2221, 1783), (1110, 891), (555, 445), (277, 222))
            got = np.asarray(ts.read_region((0, 0), 0, (2221, 1783), as_array=True))[..., :3].astype(int)
        src = _level(slides["tcga"], 1)
        whole = cv2.Canny(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), 50, 150) > 0
        bluish = (got[..., 2] - np.maximum(got[..., 0], got[..., 1])) > 60
        assert whole.sum() > 10_000
        assert (bluish & whole).sum() / whole.sum() > 0.5  # JPEG blurs 1 px lines but keeps most blue
        assert (bluish & ~cv2.dilate(whole.astype(np.uint8), np.ones((5, 5))).astype(bool)).sum() < 0.01 * whole.sum()
        report = json.loads((tmp_path / "out" / "edges.tif.published.json").read_text())
        assert report["registered"] and report["dataset_id"] == "tcga-edges"
        with RenderClient(f"127.0.0.1:{port}", token="k") as client:
            original = client.register(str(slides["tcga"]), name="original", dataset_id="tcga")
            info = client.info("tcga-edges")
        assert info.format == "slide" and original.format == "slide"
        assert [(lv.width, lv.height) for lv in info.levels][:2] == [(2221, 1783), (1110, 891)]
    finally:
        server.stop(None)


def test_tiles_can_also_be_written_as_jpeg(slides: dict[str, Path], tmp_path: Path) -> None:
    _run(slides["cmu"], tmp_path, f"tiler.tiles_dir={tmp_path / 'tiles'}", "tiler.tile=512", "tiler.loader=process")
    names = sorted(p.name for p in (tmp_path / "tiles").iterdir())
    assert len(names) == 5 * 6 and "5_4.jpg" in names
    corner = cv2.imread(str(tmp_path / "tiles" / "5_4.jpg"))
    assert corner.shape == (2967 - 5 * 512, 2220 - 4 * 512, 3)
    assert (tmp_path / "edges.tif").is_file()


def test_bad_input_stops_with_the_reason_and_writes_nothing(slides: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"expected level in 0\.\.0; got 3"):
        _run(slides["cmu"], tmp_path / "a", "tiler.level=3")
    assert not (tmp_path / "a" / "edges.tif").exists()
    with pytest.raises(Exception, match="SlideTileSourceOp: expected tile a multiple of 16; got 100"):
        _run(slides["cmu"], tmp_path / "b", "tiler.tile=100")
    with pytest.raises(Exception, match="PyramidWriterOp: expected a plain file name"):
        _run(slides["cmu"], tmp_path / "c", "stitcher.filename=../escape.tif")
    assert not (tmp_path / "escape.tif").exists()


def test_slide_sample_runs_through_the_app(tmp_path: Path) -> None:
    """`clara-stream sample slide` gives digital_pathology a pyramid to run on (make demo's coverage)."""
    from clara_stream.samples import write_sample

    slide = write_sample("slide", tmp_path / "sample", width=1040, height=700)["slide"]
    with tiffslide.TiffSlide(slide) as ts:
        assert ts.level_dimensions == ((1040, 700), (520, 350), (260, 175))
        assert float(ts.properties["tiffslide.mpp-x"]) == 0.5
    _run(slide, tmp_path / "out", "tiler.level=1", "stitcher.compression=zlib", "stitcher.min_size=128")
    with tiffslide.TiffSlide(tmp_path / "out" / "edges.tif") as ts:
        assert ts.level_dimensions == ((520, 350), (260, 175), (130, 87))
        assert float(ts.properties["tiffslide.mpp-x"]) == pytest.approx(1.0)  # level 1 of a 0.5 µm slide
