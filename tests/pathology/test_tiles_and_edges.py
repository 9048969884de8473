"""Tiling and per-tile Canny on the real slides, against cv2.Canny on the whole level.

The oracle is cv2.Canny run once on the level read by tifffile (not through our reader, and not
tiled): strong edges (Canny with low = high) must all be in the tiled result, the tiled result must
lie inside the candidates (Canny with high = low), and any other difference must sit on a chain
that leaves a padded window (the overlap rule).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from clara_stream.operators.pathology.edges import canny, filter_tile, overlap_rule_violations, overlay
from clara_stream.operators.pathology.slide import SlideLevel, band_span, stripe_bands, tile_rows

LOW, HIGH = 50, 150


def _tifffile_level(path: Path, level: int) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[level].asarray()[..., :3]


def _tiled_edges(rgb: np.ndarray, tile: int, overlap: int) -> tuple[np.ndarray, list]:
    h, w = rgb.shape[:2]
    out, boxes = np.zeros((h, w), np.uint8), []
    for row in tile_rows(w, h, tile, overlap):
        for b in row:
            x0, y0, x1, y1 = b.pad
            _, edges = filter_tile(rgb[y0:y1, x0:x1], b.core_in_pad(), LOW, HIGH)
            out[b.y : b.y + b.h, b.x : b.x + b.w] = edges
            boxes.append(b)
    return out, boxes


def test_tile_cores_partition_an_odd_sized_level() -> None:
    """Fails if a core is dropped or doubled at the right/bottom edge, or pads are not clipped."""
    w, h, tile, ov = 1001, 517, 256, 16
    cover = np.zeros((h, w), int)
    for row in tile_rows(w, h, tile, ov):
        for b in row:
            cover[b.y : b.y + b.h, b.x : b.x + b.w] += 1
            x0, y0, x1, y1 = b.pad
            assert (x0, y0) == (max(0, b.x - ov), max(0, b.y - ov)) and (x1, y1) == (min(w, b.x + b.w + ov),
                                                                                  min(h, b.y + b.h + ov))  # fmt: skip
    assert (cover == 1).all()
    with pytest.raises(ValueError, match="tile_rows: expected"):
        tile_rows(w, h, 0, 4)


@pytest.mark.parametrize(("name", "level"), [("cmu", 0), ("tcga", 1)])
def test_tiled_canny_follows_the_overlap_rule(slides: dict[str, Path], name: str, level: int) -> None:
    """Fails if the overlap is not read (seams: strong edges missing, non-candidates drawn), if the
    core is cut from the wrong place in the window, or if grey conversion differs from cv2's."""
    rgb = _tifffile_level(slides[name], level)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    whole, strong, cand = cv2.Canny(grey, LOW, HIGH), cv2.Canny(grey, HIGH, HIGH), cv2.Canny(grey, LOW, LOW)
    tiled, boxes = _tiled_edges(rgb, 256, 16)
    assert strong.any() and not (strong & ~tiled).any(), "a strong edge pixel is missing"
    assert not (tiled & ~cand).any(), "a pixel that is no Canny candidate was drawn"
    assert overlap_rule_violations(tiled, whole, boxes) == 0
    # a 2 px margin leaves hysteresis differences, all on chains that leave a window (the rule is exercised)
    thin, thin_boxes = _tiled_edges(rgb, 256, 2)
    assert ((thin > 0) != (whole > 0)).any() and overlap_rule_violations(thin, whole, thin_boxes) == 0
    # the same check catches tiles filtered without their margin
    seams, _ = _tiled_edges(rgb, 256, 0)
    assert (strong & ~seams).any() or (seams & ~cand).any()


def test_reader_matches_tifffile_on_both_slides(slides: dict[str, Path]) -> None:
    """Fails if a band is read at the wrong rows or level, or channels are reordered."""
    for name, level in (("cmu", 0), ("tcga", 0), ("tcga", 1)):
        ref = _tifffile_level(slides[name], level)
        for loader in ("tiffslide", "tifffile"):
            lv = SlideLevel(slides[name], level, loader)
            try:
                assert (lv.width, lv.height) == (ref.shape[1], ref.shape[0])
                np.testing.assert_array_equal(lv.read(37, 301, 37 + 513, 301 + 259), ref[301:560, 37:550])
            finally:
                lv.close()
    pil = SlideLevel(slides["cmu"], 0, "pillow")
    np.testing.assert_array_equal(pil.read(0, 0, 300, 200), _tifffile_level(slides["cmu"], 0)[:200, :300])


@pytest.mark.parametrize(("name", "level", "tile"), [("cmu", 0, 256), ("tcga", 1, 208)])
def test_bands_cut_from_stripes_equal_the_level_and_decode_each_stored_tile_once(
        slides: dict[str, Path], name: str, level: int, tile: int) -> None:  # fmt: skip
    """Fails if a band is cut at the wrong rows, a stripe is dropped too early (bands straddle
    stored tile rows: 240 px stored vs 256 + 2 x 16 px bands on CMU), a tile is pasted at the wrong
    place, or a stored tile is decoded twice (the point of reading stripes)."""
    ref = _tifffile_level(slides[name], level)
    lv = SlideLevel(slides[name], level)
    try:
        assert lv.tiles is not None and lv.stripe_height == lv.tiles.tile_h  # the direct decoder is in use
        rows = tile_rows(lv.width, lv.height, tile, 16)
        n = 0
        for boxes, (y0, band) in zip(rows, stripe_bands(rows, map(lv.stripe, lv.stripe_spans())), strict=True):
            assert (y0, y0 + band.shape[0]) == band_span(boxes)
            np.testing.assert_array_equal(band, ref[y0 : y0 + band.shape[0]], err_msg=f"row {boxes[0].row}")
            n += 1
        assert n == len(rows) and lv.tiles.decoded == lv.tiles.cols * -(-lv.height // lv.tiles.tile_h)
    finally:
        lv.close()
    with pytest.raises(ValueError, match="stripe_bands: expected stripes down to row"):
        list(stripe_bands(rows, iter([(0, ref[:100])])))


def test_direct_decode_equals_pillow_on_the_jpeg_slide(slides: dict[str, Path]) -> None:
    """An independent decoder (Pillow: libtiff + libjpeg) gives the same level pixel for pixel."""
    from PIL import Image

    with Image.open(slides["cmu"]) as img:
        ref = np.asarray(img.convert("RGB"))
    lv = SlideLevel(slides["cmu"], 0, "tifffile")
    try:
        assert lv.tiles is not None
        np.testing.assert_array_equal(lv.read(0, 0, lv.width, lv.height), ref)
        np.testing.assert_array_equal(lv.read(1001, 7, 1002, 2967), ref[7:, 1001:1002])  # one column, odd rows
    finally:
        lv.close()


def test_bad_slides_and_levels_are_named(slides: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="SlideLevel: expected a slide file"):
        SlideLevel(tmp_path / "none.svs")
    with pytest.raises(ValueError, match=r"expected level in 0\.\.1; got 2 \[tcga"):
        SlideLevel(slides["tcga"], 2)
    with pytest.raises(ValueError, match="Pillow can decode"):  # Aperio JPEG 2000
        SlideLevel(slides["tcga"], 0, "pillow")
    junk = tmp_path / "junk.svs"
    junk.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"SlideLevel: expected a TIFF slide; got .*\[junk.svs\]"):
        SlideLevel(junk)


def test_overlay_draws_edges_blue_and_nothing_else() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 200, (37, 53, 3), dtype=np.uint8)
    rgb[:, 20:] = 250
    edges = canny(rgb, LOW, HIGH)
    out, e = filter_tile(rgb, (slice(0, 37), slice(0, 53)), LOW, HIGH)
    assert (e == edges).all() and edges.any()
    assert (out[edges > 0] == (0, 0, 255)).all() and (out[edges == 0] == rgb[edges == 0]).all()
    # the generic path (xp.where, the one cupy takes) draws the same pixels as cv2.copyTo's
    np.testing.assert_array_equal(overlay(rgb, edges > 0), out)
    assert not (rgb == (0, 0, 255)).all(axis=-1).any()  # the input is left alone


def test_level0_is_encoded_while_tiles_still_arrive(tmp_path: Path) -> None:
    """Fails if the writer holds every tile before encoding any (tifffile's default 512 MB pass with
    several workers), which made the streamed pipeline write nothing until its last row."""
    from clara_stream.operators.pathology.pyramid import write_pyramid

    rng = np.random.default_rng(2)
    width, height, tile = 5 * 128 - 7, 6 * 128 - 30, 128
    level = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = tmp_path / "s.tif"
    partial = tmp_path / "s.tif.partial"
    written: list[int] = []

    def tiles():  # noqa: ANN202 - records the bytes on disk as each row starts
        for r in range(-(-height // tile)):
            written.append(partial.stat().st_size if partial.exists() else 0)
            for c in range(-(-width // tile)):
                yield level[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]

    write_pyramid(out, tiles(), width, height, tile=tile, compression="zlib", workers=2, min_size=128)
    assert written[-1] > written[1] + 3 * 128 * 128, f"nothing encoded while rows arrived: {written}"
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.pages[0].asarray(), level)
