"""The array-API Canny (numpy here, cupy on a GPU) against cv2.Canny: pixel-equal, not "close".

The oracle is OpenCV's own cv2.Canny / cv2.cvtColor, which share no code with canny_xp. Inputs:
every padded tile window of the real slides (read by tifffile, not our reader), whole levels with
L2 gradients and fractional thresholds, odd shapes, and synthetic plateaus and noise where ties
and thresholds land exactly on magnitude values.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from clara_stream.operators.pathology.canny_xp import canny_xp, rgb_to_grey_xp
from clara_stream.operators.pathology.edges import canny, filter_tile
from clara_stream.operators.pathology.slide import tile_rows

from clara_stream.arrays import gpu_available
from clara_stream.runtime import load_app


def _level(path: Path, level: int) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[level].asarray()[..., :3]


def _cv2(grey: np.ndarray, low: float, high: float, l2: bool = False) -> np.ndarray:
    return cv2.Canny(grey, low, high, L2gradient=l2)


def test_grey_equals_cv2_rgb2gray() -> None:
    """Fails with 14-bit weights (4899/9617/1868: cv2 4's), no rounding term, or swapped R and B."""
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (1023, 1001, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 1, 1], [254, 1, 0], [3, 0, 0]]
    np.testing.assert_array_equal(rgb_to_grey_xp(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize(("name", "level"), [("cmu", 0), ("tcga", 1)])
def test_every_tile_window_of_the_real_slides_equals_cv2(slides: dict[str, Path], name: str, level: int) -> None:
    """The pipeline's unit of work (a padded window, 256 px tiles, 16 px overlap): edges and overlaid
    core equal cv2's on every tile, so the array backend can replace cv2 without changing a pixel."""
    rgb = _level(slides[name], level)
    h, w = rgb.shape[:2]
    n_edges = 0
    for row in tile_rows(w, h, 256, 16):
        for b in row:
            x0, y0, x1, y1 = b.pad
            window = rgb[y0:y1, x0:x1]
            tile_a, edges_a = filter_tile(window, b.core_in_pad(), 50, 150, backend="array")
            tile_c, edges_c = filter_tile(window, b.core_in_pad(), 50, 150, backend="cv2")
            np.testing.assert_array_equal(edges_a, edges_c, err_msg=f"tile {b.row},{b.col}")
            np.testing.assert_array_equal(tile_a, tile_c, err_msg=f"tile {b.row},{b.col}")
            n_edges += int((edges_c > 0).sum())
    assert n_edges > 10_000  # the slides have edges to get wrong


def test_whole_level_l2_and_fractional_thresholds_equal_cv2(slides: dict[str, Path]) -> None:
    """Fails if L2 thresholds are not squared before flooring, floored after squaring the floor,
    or if reversed thresholds are not swapped (cv2 swaps them)."""
    grey = cv2.cvtColor(_level(slides["tcga"], 1), cv2.COLOR_RGB2GRAY)
    for low, high, l2 in ((20.5, 80.7, True), (50, 150, True), (80.7, 20.5, False), (33.9, 33.9, False)):
        np.testing.assert_array_equal(canny_xp(grey, low, high, l2gradient=l2), _cv2(grey, low, high, l2),
                                      err_msg=f"low={low} high={high} l2={l2}")  # fmt: skip


def _plateaus() -> list[np.ndarray]:
    """Steps two pixels wide (equal magnitudes side by side) along every direction bin, non-square."""
    yy, xx = np.mgrid[0:41, 0:57]
    out = []
    for a, b in ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, -2), (5, 2)):
        d = a * xx + b * yy
        out.append(np.where(d < d.mean() - 1, 40, np.where(d < d.mean() + 1, 100, 160)).astype(np.uint8))
    return out


def test_ties_directions_and_thresholds_equal_cv2() -> None:
    """Fails if a '>' and '>=' of the suppression swap, the diagonal sign rule flips, tan 22.5° is
    rounded differently, thresholds compare with >= instead of >, or hysteresis is 4-connected."""
    rng = np.random.default_rng(5)
    images = _plateaus() + [rng.integers(0, 256, (67, 45), dtype=np.uint8),
                            cv2.GaussianBlur(rng.integers(0, 256, (129, 97), dtype=np.uint8), (5, 5), 1.2)]  # fmt: skip
    images += [np.ascontiguousarray(images[-1][:1]), np.ascontiguousarray(images[-1][:, :1]), images[-1][:2, :3].copy()]
    for img in images:
        for low, high in ((0, 0), (40, 40), (40, 120), (60, 240), (100, 101), (239.99, 240)):
            for l2 in (False, True):
                np.testing.assert_array_equal(canny_xp(img, low, high, l2gradient=l2), _cv2(img, low, high, l2),
                                              err_msg=f"{img.shape} low={low} high={high} l2={l2}")  # fmt: skip


def test_bad_input_is_named() -> None:
    rgb = np.zeros((8, 9, 3), np.uint8)
    with pytest.raises(ValueError, match=r"canny_xp: expected a non-empty 2-D uint8 image; got uint8 \(8, 9, 3\)"):
        canny_xp(rgb, 1, 2)
    with pytest.raises(ValueError, match=r"canny_xp: expected .*; got float32 \(8, 9\)"):
        canny_xp(np.zeros((8, 9), np.float32), 1, 2)
    with pytest.raises(ValueError, match=r"rgb_to_grey_xp: expected RGB uint8 .*; got uint8 \(8, 9\)"):
        rgb_to_grey_xp(rgb[..., 0])
    with pytest.raises(ValueError, match="canny: expected backend in"):
        canny(rgb, 1, 2, backend="cuda")


def test_bad_filter_settings_are_refused_before_anything_runs(slides: dict[str, Path], tmp_path: Path) -> None:
    for setting, message in (("filter.backend=cuda", "CannyEdgeOp: expected backend in"),
                             ("filter.device=cuda", "CannyEdgeOp: expected device in")):  # fmt: skip
        with pytest.raises(Exception, match=message):
            _run(slides["cmu"], tmp_path / "out", setting)
    assert not (tmp_path / "out" / "edges.tif").exists()


def _run(slide: Path, out: Path, *overrides: str) -> np.ndarray:
    ov = [tuple(o.split("=", 1)) for o in ("stitcher.compression=zlib", "stitcher.min_size=2000", *overrides)]
    load_app("digital_pathology", input=slide, output=out, overrides=ov).run()
    return _level(out / "edges.tif", 0)


def test_app_with_the_array_backend_writes_the_same_slide(slides: dict[str, Path], tmp_path: Path) -> None:
    """The operator's array path (the GPU code, run on numpy) gives the cv2 path's output, byte for byte."""
    ref = _run(slides["cmu"], tmp_path / "cv2", "filter.backend=cv2")
    got = _run(slides["cmu"], tmp_path / "array", "filter.backend=array")
    assert (ref == (0, 0, 255)).all(axis=-1).sum() > 10_000
    np.testing.assert_array_equal(got, ref)


@pytest.mark.skipif(gpu_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_device_without_a_gpu_is_refused_at_start(slides: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="CannyEdgeOp: expected a usable CUDA device for device='gpu'; got none"):
        _run(slides["cmu"], tmp_path, "filter.device=gpu")
    assert not (tmp_path / "edges.tif").exists()
    with pytest.raises(Exception, match="CannyEdgeOp: expected backend 'auto' or 'array' with device 'gpu'"):
        _run(slides["cmu"], tmp_path, "filter.device=gpu", "filter.backend=cv2")


@pytest.mark.gpu
def test_cupy_canny_equals_cv2_on_the_real_slides(slides: dict[str, Path]) -> None:
    """The same code on cupy (cupyx.scipy.ndimage.label for hysteresis): pixel-equal to cv2.Canny."""
    import cupy

    for name, level in (("cmu", 0), ("tcga", 1)):
        rgb = _level(slides[name], level)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        dev = cupy.asarray(rgb)
        np.testing.assert_array_equal(rgb_to_grey_xp(dev).get(), grey)
        for low, high, l2 in ((50, 150, False), (20.5, 80.7, True)):
            got = canny_xp(cupy.asarray(grey), low, high, l2gradient=l2)
            assert isinstance(got, cupy.ndarray)
            np.testing.assert_array_equal(got.get(), _cv2(grey, low, high, l2))
        edges = canny(dev[:300, :301], 50, 150)  # auto: device data takes the array path
        assert isinstance(edges, cupy.ndarray)
        np.testing.assert_array_equal(edges.get(), _cv2(grey[:300, :301].copy(), 50, 150))


@pytest.mark.gpu
def test_app_on_the_gpu_writes_the_same_slide(slides: dict[str, Path], tmp_path: Path) -> None:
    """Same pixels as the cv2 path; one host->device copy per band, one device->host copy per tile."""
    from clara_stream.arrays import count_copies

    ref = _run(slides["cmu"], tmp_path / "cv2", "filter.backend=cv2")
    with count_copies() as copies:
        got = _run(slides["cmu"], tmp_path / "gpu", "filter.device=gpu")
    np.testing.assert_array_equal(got, ref)
    rows = tile_rows(2220, 2967, 256, 16)
    assert copies.events.count("host->device") == len(rows)
    assert copies.events.count("device->host") == sum(len(r) for r in rows)


def test_cv2_threads_apply_while_running_and_are_put_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if the process-wide OpenCV setting leaks out of the run, or a bad value is accepted."""
    from clara_stream.operators.pathology.canny_op import CannyEdgeOp

    from clara_stream.samples import write_sample

    slide = write_sample("slide", tmp_path / "s", width=300, height=200)["slide"]
    seen: list[int] = []
    original, before = CannyEdgeOp._filter, cv2.getNumThreads()

    def spy(self: CannyEdgeOp, row: object, box: object) -> object:  # records the setting inside the run
        seen.append(cv2.getNumThreads())
        return original(self, row, box)

    monkeypatch.setattr(CannyEdgeOp, "_filter", spy)
    cv2.setNumThreads(3)
    try:
        _run(slide, tmp_path / "o", "filter.cv2_threads=1")
        assert seen and set(seen) == {1} and cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
    with pytest.raises(Exception, match="CannyEdgeOp: expected threads >= 1 and cv2_threads >= 0; got 2, -1"):
        _run(slide, tmp_path / "bad", "filter.cv2_threads=-1")
