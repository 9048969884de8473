"""Regions of a tiled TIFF page decoded straight from its stored tiles (tifffile's decoder, no zarr).

Reading a level through a zarr view costs a Python round trip per stored tile on top of the
decode; on a cheap-to-decode JPEG slide that overhead was about a third of the read. Here the
bytes of the stored tiles a box touches are read under one lock (threads share the file handle),
decoded outside it (imagecodecs releases the GIL) and pasted into the box.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

__all__ = ["PageTiles"]


class PageTiles:
    """RGB uint8 regions of one tiled, chunky, 2-D page (the levels of SVS and pyramidal TIFFs)."""

    def __init__(self, page: Any, lock: threading.RLock | None = None) -> None:
        if not self.usable(page):
            raise ValueError(f"PageTiles: expected a tiled 2-D uint8 page with >= 3 interleaved samples; "
                             f"got shape {page.shape}, tiled={page.is_tiled}")  # fmt: skip
        self.page = page
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.tile_h, self.tile_w = int(page.tilelength), int(page.tilewidth)
        self.cols = math.ceil(self.width / self.tile_w)
        self.decoded = 0  # stored tiles decoded so far (tests count them; reads are not double-decoded)
        self._lock = lock or threading.RLock()

    @staticmethod
    def usable(page: Any) -> bool:
        """True for pages this decoder handles (anything else goes through zarr)."""
        return bool(page.is_tiled and page.planarconfig == 1 and page.imagedepth == 1 and page.tiledepth == 1
                    and page.samplesperpixel >= 3 and page.dtype == np.uint8)  # fmt: skip

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Contiguous (y1 - y0, x1 - x0, 3) pixels of the box; missing stored tiles read as 0."""
        th, tw, page = self.tile_h, self.tile_w, self.page
        out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        index = [r * self.cols + c for r in range(y0 // th, math.ceil(y1 / th))
                 for c in range(x0 // tw, math.ceil(x1 / tw))]  # fmt: skip
        offsets = [page.dataoffsets[i] for i in index]
        counts = [page.databytecounts[i] for i in index]
        with self._lock:  # seek + read on the shared handle; decoding happens outside
            raw = list(page.parent.filehandle.read_segments(offsets, counts, indices=index, lock=self._lock))
        for data, i in raw:
            if not data:
                continue
            self.decoded += 1
            seg = page.decode(data, i, jpegtables=page.jpegtables, jpegheader=page.jpegheader)[0][0]
            r, c = divmod(i, self.cols)
            ty, tx = r * th, c * tw
            sy0, sy1 = max(y0, ty), min(y1, ty + th, self.height)
            sx0, sx1 = max(x0, tx), min(x1, tx + tw, self.width)
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = seg[sy0 - ty : sy1 - ty, sx0 - tx : sx1 - tx, :3]
        return out
