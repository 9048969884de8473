"""Planar (pathology slide / 2D image) tiles and region-at-zoom with an LRU cache.

Only the tiles a request touches are read. When a finer tile is not cached yet, a request may get
a *provisional* answer — the best cached coarser level, upscaled — while the exact tile loads in
the background; the next request for the same area gets the exact pixels.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np
from clara_stream.render.sources import Level

BACKGROUND = 255  # slides are white where there is no tissue / outside the image
MAX_REGION_PX = 4096
MAX_SOURCE_PX = 32 * 2**20
MAX_CONCURRENT_REGIONS = 2  # regions assembled at once per slide: peak memory ≤ 2 × MAX_SOURCE_PX × 3 B
DECODE_THREADS = 2  # tiles of one region row decoded at once (per tile server)


def _span(start: float, size: float, n_out: int, n_level: int) -> tuple[int, int]:
    """[lo, hi): the level pixels ``n_out`` output samples of a box (start, size) read, clipped.

    Output pixel c samples the level at ``start + (c + 0.5)·s − 0.5`` (s = size / n_out). Below a 2×
    shrink that is one bilinear sample: pixels floor and floor + 1 of the first and last positions
    (only floor where a position is whole, so a grid-aligned 1:1 box reads no extra tile row). A
    larger shrink averages k×k blocks aligned at floor(start) first, then needs one block more.
    """
    s = size / n_out
    if s < 2:
        first, last = start + 0.5 * s - 0.5, start + (n_out - 0.5) * s - 0.5
        lo, hi = math.floor(first), math.floor(last) + (1 if last == math.floor(last) else 2)
    else:
        lo, hi = math.floor(start), math.ceil(start + size) + 1
    lo, hi = max(0, int(lo)), min(n_level, int(hi))
    return lo, max(lo, hi)


class TileServer:
    """Tiles and regions of one planar source, with an LRU cache of decoded tiles.

    Parameters
    ----------
    source : ArraySource or SlideSource
    tile_size : int
        Tile edge in pixels (default 256).
    cache_mb : float
        Budget of decoded RGB tiles kept (least recently used dropped first).
    loader : ThreadPoolExecutor, optional
        Background loader for exact tiles behind provisional answers.
    max_source_px : int
        Most source pixels one region request may read (at the level chosen for its scale);
        larger requests are refused. Default 32 Mi px (≈ 96 MB RGB).
    """

    def __init__(
        self,
        source,
        tile_size: int = 256,
        cache_mb: float = 256.0,
        loader: ThreadPoolExecutor | None = None,
        max_source_px: int = MAX_SOURCE_PX,
    ) -> None:
        if not 64 <= tile_size <= 2048:
            raise ValueError(f"TileServer: expected tile_size in 64..2048; got {tile_size}")
        if max_source_px < tile_size * tile_size:
            raise ValueError(f"TileServer: expected max_source_px >= one tile ({tile_size}²); got {max_source_px}")
        self.max_source_px = int(max_source_px)
        self._regions = threading.BoundedSemaphore(MAX_CONCURRENT_REGIONS)
        self.source = source
        self.tile_size = int(tile_size)
        self.levels: list[Level] = list(source.levels)
        self._budget = int(cache_mb * 2**20)
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._encoded: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int, int], Future] = {}
        self._loader = loader or ThreadPoolExecutor(max_workers=2, thread_name_prefix="tile-load")
        # the tiles of one region row decode at once where the source's codec releases the GIL
        self._decoders = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="tile-decode")
        self.reads = 0  # tiles read from the source (a test of "only visible data loaded")

    # ---- grid ---------------------------------------------------------------------------------
    def grid(self, level: int) -> tuple[int, int]:
        """(columns, rows) of tiles at ``level``."""
        lv = self._level(level)
        return math.ceil(lv.width / self.tile_size), math.ceil(lv.height / self.tile_size)

    def _level(self, level: int) -> Level:
        if not 0 <= level < len(self.levels):
            raise ValueError(f"TileServer: expected level in 0..{len(self.levels) - 1}; got {level}")
        return self.levels[level]

    def _check_tile(self, level: int, tx: int, ty: int) -> None:
        cols, rows = self.grid(level)
        if not (0 <= tx < cols and 0 <= ty < rows):
            raise ValueError(
                f"TileServer: expected tile x in 0..{cols - 1} and y in 0..{rows - 1} at level {level}; "
                f"got ({tx}, {ty})"
            )

    # ---- cache --------------------------------------------------------------------------------
    def cached(self, level: int, tx: int, ty: int) -> np.ndarray | None:
        with self._lock:
            arr = self._cache.get((level, tx, ty))
            if arr is not None:
                self._cache.move_to_end((level, tx, ty))
            return arr

    def _load(self, key: tuple[int, int, int]) -> np.ndarray:
        level, tx, ty = key
        lv = self.levels[level]
        t = self.tile_size
        w, h = min(t, lv.width - tx * t), min(t, lv.height - ty * t)
        arr = self.source.read(level, tx * t, ty * t, w, h)
        with self._lock:
            self.reads += 1
            if key not in self._cache:
                self._cache[key] = arr
                self._bytes += arr.nbytes
                while self._bytes > self._budget and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._bytes -= old.nbytes
            self._pending.pop(key, None)
        return arr

    def tile(self, level: int, tx: int, ty: int) -> np.ndarray:
        """Exact RGB tile (edge tiles are smaller), read on a cache miss."""
        self._check_tile(level, tx, ty)
        arr = self.cached(level, tx, ty)
        return arr if arr is not None else self._load((level, tx, ty))

    def _schedule(self, key: tuple[int, int, int]) -> None:
        with self._lock:
            if key in self._pending or key in self._cache:
                return
            self._pending[key] = self._loader.submit(self._load, key)

    def wait_loaded(self, timeout_s: float = 30.0) -> None:
        """Block until background tile loads finish (tests, benchmarks)."""
        with self._lock:
            futures = list(self._pending.values())
        for f in futures:
            f.result(timeout=timeout_s)

    def tile_or_provisional(self, level: int, tx: int, ty: int) -> tuple[np.ndarray, bool]:
        """(tile, provisional). Provisional = a cached coarser level upscaled; exact one queued."""
        self._check_tile(level, tx, ty)
        arr = self.cached(level, tx, ty)
        if arr is not None:
            return arr, False
        t = self.tile_size
        lv = self.levels[level]
        w, h = min(t, lv.width - tx * t), min(t, lv.height - ty * t)
        for coarse in range(level + 1, len(self.levels)):
            patch = self._from_level(coarse, level, tx * t, ty * t, w, h, cached_only=True)
            if patch is not None:
                self._schedule((level, tx, ty))
                return patch, True
        return self._load((level, tx, ty)), False

    def _from_level(self, src: int, dst: int, x: int, y: int, w: int, h: int, cached_only: bool) -> np.ndarray | None:
        """Pixels of the ``dst``-level box (x, y, w, h) built from ``src``-level tiles, resized."""
        scale = self.levels[dst].downsample / self.levels[src].downsample
        sx0, sy0 = x * scale, y * scale
        sw, sh = max(1e-3, w * scale), max(1e-3, h * scale)
        img = self._assemble(
            src,
            int(math.floor(sx0)),
            int(math.floor(sy0)),
            int(math.ceil(sx0 + sw)) - int(math.floor(sx0)),
            int(math.ceil(sy0 + sh)) - int(math.floor(sy0)),
            cached_only,
        )
        if img is None:
            return None
        fx, fy = sx0 - math.floor(sx0), sy0 - math.floor(sy0)
        affine = np.array([[scale, 0, fx + 0.5 * scale - 0.5], [0, scale, fy + 0.5 * scale - 0.5]])
        interp = cv2.INTER_LINEAR if scale < 1 else cv2.INTER_AREA
        if scale >= 1:
            return cv2.resize(img, (w, h), interpolation=interp)
        return cv2.warpAffine(img, affine, (w, h), flags=interp | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)

    def _assemble(self, level: int, x: int, y: int, w: int, h: int, cached_only: bool) -> np.ndarray | None:
        """Level pixels of box (x, y, w, h); outside the image is background."""
        lv = self.levels[level]
        t = self.tile_size
        out = np.full((h, w, 3), BACKGROUND, np.uint8)
        tx0, ty0 = max(0, x // t), max(0, y // t)
        tx1, ty1 = (
            min(self.grid(level)[0] - 1, (x + w - 1) // t),
            min(self.grid(level)[1] - 1, (y + h - 1) // t),
        )
        for ty in range(ty0, ty1 + 1):
            row = {tx: self.cached(level, tx, ty) for tx in range(tx0, tx1 + 1)}
            missing = [(level, tx, ty) for tx, arr in row.items() if arr is None]
            if missing and cached_only:
                return None
            if len(missing) > 1 and getattr(self.source, "concurrent_reads", False):
                row.update((k[1], arr) for k, arr in zip(missing, self._decoders.map(self._load, missing), strict=True))
            for tx in range(tx0, tx1 + 1):
                arr = row[tx]
                if arr is None:
                    arr = self._load((level, tx, ty))
                ox, oy = tx * t, ty * t
                ix0, iy0 = max(x, ox), max(y, oy)
                ix1, iy1 = min(x + w, ox + arr.shape[1], lv.width), min(y + h, oy + arr.shape[0], lv.height)
                if ix1 > ix0 and iy1 > iy0:
                    out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = arr[iy0 - oy : iy1 - oy, ix0 - ox : ix1 - ox]
        return out

    def best_level(self, downsample: float) -> int:
        """Finest level not finer than needed for ``downsample`` (level-0 px per output px)."""
        best = 0
        for i, lv in enumerate(self.levels):
            if lv.downsample <= downsample * 1.01:
                best = i
        return best

    def region(
        self,
        x0: float,
        y0: float,
        width: int,
        height: int,
        downsample: float,
        allow_provisional: bool = False,
    ) -> tuple[np.ndarray, bool]:
        """(RGB (height, width, 3), provisional) of the level-0 box at ``(x0, y0)`` seen at
        ``downsample`` level-0 pixels per output pixel.

        Raises
        ------
        ValueError
            If the output size is outside 1..4096, downsample not positive, or the box misses the image.
        """
        if not (1 <= width <= MAX_REGION_PX and 1 <= height <= MAX_REGION_PX):
            raise ValueError(f"TileServer: expected region size 1..{MAX_REGION_PX}; got {width}x{height}")
        if not (downsample > 0 and math.isfinite(downsample)) or downsample > 1e4:
            raise ValueError(f"TileServer: expected downsample in (0, 1e4]; got {downsample}")
        for name, v in (("x", x0), ("y", y0)):
            if not math.isfinite(v) or abs(v) > 2**31:
                raise ValueError(f"TileServer: expected {name} finite with |{name}| <= 2^31; got {v}")
        l0 = self.levels[0]
        if x0 >= l0.width or y0 >= l0.height or x0 + width * downsample <= 0 or y0 + height * downsample <= 0:
            raise ValueError(
                f"TileServer: expected a region overlapping the {l0.width}x{l0.height} image; "
                f"got x={x0}, y={y0}, {width}x{height} at downsample {downsample}"
            )
        level = self.best_level(downsample)
        ds = self.levels[level].downsample
        lx, ly = x0 / ds, y0 / ds
        lw, lh = width * downsample / ds, height * downsample / ds
        bx0, by0, bx1, by1 = self._clipped_box(level, lx, ly, lw, lh, width, height)
        if (bx1 - bx0) * (by1 - by0) > self.max_source_px:
            raise ValueError(
                f"TileServer: expected at most {self.max_source_px} source pixels per request; got "
                f"{bx1 - bx0}x{by1 - by0} at level {level} (downsample {ds:g}) for {width}x{height} at "
                f"downsample {downsample:g}: ask for a smaller region"
            )
        ix, iy, iw, ih = bx0, by0, bx1 - bx0, by1 - by0
        provisional = False
        img = None
        if allow_provisional and not self._all_cached(level, ix, iy, iw, ih):
            for coarse in range(level + 1, len(self.levels)):
                cds = self.levels[coarse].downsample
                patch = self._region_at(
                    coarse,
                    x0 / cds,
                    y0 / cds,
                    width * downsample / cds,
                    height * downsample / cds,
                    width,
                    height,
                    cached_only=True,
                )
                if patch is not None:
                    self._schedule_box(level, ix, iy, iw, ih)
                    return patch, True
        with self._regions:  # at most MAX_CONCURRENT_REGIONS source boxes in memory at once
            img = self._region_at(level, lx, ly, lw, lh, width, height, cached_only=False)
        return img, provisional

    def _clipped_box(
        self, level: int, lx: float, ly: float, lw: float, lh: float, width: int, height: int
    ) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the level pixels the ``width`` x ``height`` output samples, clipped to
        the image (may be empty)."""
        lv = self.levels[level]
        x0, x1 = _span(lx, lw, width, lv.width)
        y0, y1 = _span(ly, lh, height, lv.height)
        return x0, y0, x1, y1

    def _region_at(
        self,
        level: int,
        lx: float,
        ly: float,
        lw: float,
        lh: float,
        width: int,
        height: int,
        cached_only: bool,
    ) -> np.ndarray | None:
        """Output (height, width) of the level box (lx, ly, lw, lh): only the part inside the image
        is read; shrinking is an exact k×k box average followed by bilinear for the rest of the scale."""
        x0, y0, x1, y1 = self._clipped_box(level, lx, ly, lw, lh, width, height)
        if x1 <= x0 or y1 <= y0:
            return np.full((height, width, 3), BACKGROUND, np.uint8)
        src = self._assemble(level, x0, y0, x1 - x0, y1 - y0, cached_only)
        if src is None:
            return None
        sx, sy = lw / width, lh / height
        if sx == sy == 1 and (x0, y0, x1 - x0, y1 - y0) == (lx, ly, width, height):
            return src  # 1:1 on whole pixels inside the image: the samples are the pixels themselves
        kx, ky = max(1, int(sx)), max(1, int(sy))
        if kx > 1 or ky > 1:  # pad to whole blocks with background, then average each block
            ph, pw = (-src.shape[0]) % ky, (-src.shape[1]) % kx
            if ph or pw:
                src = cv2.copyMakeBorder(src, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(BACKGROUND,) * 3)
            src = cv2.resize(src, (src.shape[1] // kx, src.shape[0] // ky), interpolation=cv2.INTER_AREA)
        # output pixel centre c ↦ level coordinate lx + (c + 0.5)·sx − 0.5, then into block units
        affine = np.array(
            [
                [sx / kx, 0, (lx - x0 + 0.5 * sx - 0.5 - (kx - 1) / 2) / kx],
                [0, sy / ky, (ly - y0 + 0.5 * sy - 0.5 - (ky - 1) / 2) / ky],
            ]
        )
        return cv2.warpAffine(
            src,
            affine,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(BACKGROUND,) * 3,
        )

    def _tiles_in(self, level: int, x: int, y: int, w: int, h: int):
        t = self.tile_size
        cols, rows = self.grid(level)
        for ty in range(max(0, y // t), min(rows - 1, (y + h - 1) // t) + 1):
            for tx in range(max(0, x // t), min(cols - 1, (x + w - 1) // t) + 1):
                yield level, tx, ty

    def _all_cached(self, level: int, x: int, y: int, w: int, h: int) -> bool:
        with self._lock:
            return all(k in self._cache for k in self._tiles_in(level, x, y, w, h))

    def _schedule_box(self, level: int, x: int, y: int, w: int, h: int) -> None:
        for key in self._tiles_in(level, x, y, w, h):
            self._schedule(key)

    def encoded_tile(
        self,
        level: int,
        tx: int,
        ty: int,
        fmt: str,
        quality: int,
        encode: Callable[[np.ndarray, str, int], bytes],
    ) -> bytes:
        """Encoded exact tile, cached (a warm tile costs a dictionary look-up). A JPEG tile the file
        stores as such (aligned, YCbCr) is served as its own bytes: no decode, no re-encode."""
        key = (level, tx, ty, fmt, quality)
        with self._lock:
            data = self._encoded.get(key)
            if data is not None:
                self._encoded.move_to_end(key)
                return data
        data = None
        stored = getattr(self.source, "stored_jpeg", None)
        if fmt == "jpeg" and stored is not None and self.cached(level, tx, ty) is None:
            t = self.tile_size
            lv = self.levels[level]
            data = stored(level, tx * t, ty * t, min(t, lv.width - tx * t), min(t, lv.height - ty * t))
        if data is None:
            data = encode(self.tile(level, tx, ty), fmt, quality)
        with self._lock:
            self._encoded[key] = data
            while len(self._encoded) > 4096:
                self._encoded.popitem(last=False)
        return data

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)
        self._decoders.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
