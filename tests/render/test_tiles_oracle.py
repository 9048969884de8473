"""Slide tiles against tifffile's own read of each pyramid page, and bounded region reads."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from clara_stream.render.sources import ArraySource, SlideSource
from clara_stream.render.synthetic import write_slide
from clara_stream.render.tiles import TileServer


@pytest.fixture(scope="module")
def odd_slide(tmp_path_factory):
    """2001 x 1403 px: levels 1000x701, 500x350, 250x175, downsamples 2.001, 4.002.., none integer."""
    return write_slide(tmp_path_factory.mktemp("odd") / "odd.tif", width=2001, height=1403)


def _levels(path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [lv.asarray() for lv in tif.series[0].levels]


def test_every_tile_of_every_level_equals_tifffile(odd_slide):
    """Fails if a level's tiles are read 1 px off (level-0 rounding at a non-integer downsample)."""
    ref = _levels(odd_slide)
    ts = TileServer(SlideSource(odd_slide))
    try:
        assert len(ref) == 4 and all(lv.downsample % 1 > 1e-4 for lv in ts.levels[1:])
        for level, page in enumerate(ref):
            cols, rows = ts.grid(level)
            for ty in range(rows):
                for tx in range(cols):
                    t = ts.tile(level, tx, ty)
                    np.testing.assert_array_equal(t, page[ty * 256 : ty * 256 + 256, tx * 256 : tx * 256 + 256])
    finally:
        ts.close()


def test_real_tcga_level_one_equals_tifffile(shared_render_data):
    """The TCGA slide's level 1 has downsample 2.0005: its tiles must be tifffile's pixels exactly."""
    path = shared_render_data.svs_dir / "tcga-cr-7395-01a-01-ts1.svs"
    page = _levels(path)[1]
    ts = TileServer(SlideSource(path))
    try:
        assert ts.levels[1].downsample != int(ts.levels[1].downsample)
        for tx, ty in ((0, 0), (3, 2), (8, 6)):
            np.testing.assert_array_equal(
                ts.tile(1, tx, ty)[..., :3], page[ty * 256 : ty * 256 + 256, tx * 256 : tx * 256 + 256, :3]
            )
    finally:
        ts.close()


def test_region_at_integer_downsample_is_the_block_average():
    """A region at downsample 4 on a 1-level source is numpy's 4x4 block mean (fails if the shrink
    drops or shifts a row of blocks, or reads a finer level than needed)."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (400, 520, 3), dtype=np.uint8)
    src = ArraySource(img)
    ts = TileServer(src)
    try:
        out, _ = ts.region(40, 80, 100, 60, 4.0)
        block = img[80 : 80 + 240, 40 : 40 + 400].astype(np.float64).reshape(60, 4, 100, 4, 3).mean(axis=(1, 3))
        assert np.abs(out.astype(np.float64) - block).max() <= 1.0
    finally:
        ts.close()


def test_huge_request_reads_the_level_for_its_scale_and_is_bounded():
    """4096² output at downsample 20: read from the coarse level, clipped to the image; a request
    needing more source pixels than the bound is refused by name, not allocated."""
    img = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)
    ts = TileServer(ArraySource(img), max_source_px=512 * 512)
    try:
        out, _ = ts.region(-20000, -20000, 4096, 4096, 20.0)
        assert out.shape == (4096, 4096, 3)
        coarse = ts.best_level(20.0)
        assert ts.levels[coarse].downsample > 4 and ts.reads == ts.grid(coarse)[0] * ts.grid(coarse)[1]
        with pytest.raises(ValueError, match="expected at most 262144 source pixels per request"):
            ts.region(0, 0, 1024, 1024, 1.0)
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="expected x finite"):
                ts.region(bad, 0, 64, 64, 1.0)
    finally:
        ts.close()


def test_stored_jpeg_tiles_pass_through_and_decode_like_tifffile(render_root):
    """A tile the file stores as YCbCr JPEG on the server's grid is sent as the file's own bytes
    (no decode or re-encode, so no second loss); decoded, it is tifffile's pixels."""
    import cv2
    from clara_stream.render.annotate import encode

    path = render_root / "slide.tif"
    ref = _levels(path)
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[0].keyframe
        fh = tif.filehandle
        fh.seek(page.dataoffsets[1])
        stored = fh.read(page.databytecounts[1])
    ts = TileServer(SlideSource(path))
    try:
        assert ts.source.native_tile == 256 == ts.tile_size
        jpeg = ts.encoded_tile(0, 1, 0, "jpeg", 85, encode)
        assert jpeg.endswith(stored[2:])  # the stored entropy-coded data, untouched
        got = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.abs(got.astype(int) - ref[0][:256, 256:512]).max() <= 2  # another decoder, same image
        assert ts.reads == 0  # nothing decoded to serve it
        np.testing.assert_array_equal(ts.tile(0, 1, 0), ref[0][:256, 256:512])
    finally:
        ts.close()


def test_concurrent_regions_are_bounded():
    """Six simultaneous region requests never have more than two source boxes being read at once
    (fails if the bound is per request only: three 4096² regions at once took 4.6 GB before)."""
    import threading

    from clara_stream.render.tiles import MAX_CONCURRENT_REGIONS

    class Gate(ArraySource):
        """A source whose reads hold until the test lets them go, counting readers in flight."""

        def __init__(self, image):
            super().__init__(image)
            self.lock, self.active, self.peak = threading.Lock(), set(), 0
            self.release = threading.Event()

        def read(self, level, x, y, w, h):
            me = threading.get_ident()
            with self.lock:
                self.active.add(me)
                self.peak = max(self.peak, len(self.active))
            self.release.wait(timeout=30)
            try:
                return super().read(level, x, y, w, h)
            finally:
                with self.lock:
                    self.active.discard(me)

    src = Gate(np.zeros((512, 2048, 3), np.uint8))
    ts = TileServer(src, tile_size=256)
    started = threading.Semaphore(0)

    def request(i: int) -> None:
        started.release()
        ts.region(i * 300, 0, 200, 200, 1.0)  # distinct tiles: no request is served from the cache

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire()  # every request is under way
    while True:  # until the first ones are reading (waiting on state, not on time)
        with src.lock:
            if len(src.active) >= MAX_CONCURRENT_REGIONS:
                break
    src.release.set()
    for t in threads:
        t.join(timeout=30)
    assert src.peak == MAX_CONCURRENT_REGIONS == 2
    ts.close()


def test_grid_aligned_region_reads_only_its_own_tiles(odd_slide):
    """A 512² region at 1:1 on the tile grid is tifffile's pixels and decodes exactly its 2 x 2 tiles
    (fails if the source box takes one pixel more than the samples need: 3 x 3 = 9 tiles decoded)."""
    page = _levels(odd_slide)[0]
    ts = TileServer(SlideSource(odd_slide))
    try:
        out, _ = ts.region(256, 256, 512, 512, 1.0)
        np.testing.assert_array_equal(out, page[256:768, 256:768])
        assert ts.reads == 4
    finally:
        ts.close()


@pytest.mark.parametrize(("x0", "y0", "ds"), [(100.0, 80.0, 0.5), (37.25, 18.5, 1.5)])
def test_region_below_a_2x_shrink_is_bilinear_to_its_edges(x0, y0, ds):
    """Below a 2x shrink each output pixel is scipy's bilinear sample at x0 + (c + 0.5)·ds - 0.5,
    first and last rows and columns included, across tile borders (fails if the box starts at
    floor(x0): zoomed in, the first column then blends in a quarter of white background; or if
    it stops short of the last sample's right neighbour)."""
    from scipy.ndimage import map_coordinates

    img = np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    ts = TileServer(ArraySource(img), tile_size=64)
    try:
        out, _ = ts.region(x0, y0, 64, 48, ds)
        rr, cc = np.mgrid[0:48, 0:64]
        coords = [y0 + (rr + 0.5) * ds - 0.5, x0 + (cc + 0.5) * ds - 0.5]
        ref = np.stack([map_coordinates(img[..., k].astype(np.float64), coords, order=1) for k in range(3)], -1)
        assert np.abs(out.astype(np.float64) - ref).max() <= 1.0
    finally:
        ts.close()


def test_tiles_of_a_region_row_decode_at_once():
    """A region over a row of four cold tiles of a source whose codec releases the GIL has two tile
    reads in flight at once (fails if the tiles are decoded one after the other)."""
    import threading

    from clara_stream.render.tiles import DECODE_THREADS

    class Concurrent(ArraySource):
        concurrent_reads = True

        def __init__(self, image):
            super().__init__(image)
            self.lock, self.active, self.peak = threading.Lock(), 0, 0
            self.both = threading.Event()

        def read(self, level, x, y, w, h):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
                if self.active >= DECODE_THREADS:
                    self.both.set()
            self.both.wait(timeout=30)  # serial reads would each wait here in vain
            try:
                return super().read(level, x, y, w, h)
            finally:
                with self.lock:
                    self.active -= 1

    img = np.random.default_rng(7).integers(0, 256, (256, 1024, 3), dtype=np.uint8)
    src = Concurrent(img)
    ts = TileServer(src, tile_size=256)
    try:
        out, _ = ts.region(0, 0, 1024, 256, 1.0)
        np.testing.assert_array_equal(out, img)
        assert src.peak == DECODE_THREADS == 2 and ts.reads == 4
    finally:
        ts.close()
