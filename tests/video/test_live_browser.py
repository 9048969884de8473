"""The live output to browsers: fragmented MP4 over a WebSocket, played by headless Chromium.

Oracles: Chromium's own MSE decoder (the page's ``<video>``: its clock advances, its pixels
change), FFmpeg's ``/usr/bin/ffprobe`` and ``/usr/bin/ffmpeg`` on the very bytes received (frame
count, rate, pixels against the frames sent), and plain HTTP/WebSocket clients for the refusals.
Nothing here times anything: every wait is on a state.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import httpx
import numpy as np
import pytest
from clara_stream.operators.video.mse_live import COOKIE, MseLiveSink
from clara_stream.operators.video.testing_streams import (
    FFMPEG,
    FFPROBE,
    free_port,
    listening,
    probe_stream,
    send_tcp,
    stop,
    wait_until,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from clara_stream.geometry import FrameInfo
from clara_stream.samples.video import write_sample

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
W, H = 161, 91  # odd on purpose: the fragmenter pads to even


@pytest.fixture(scope="module")
def ff(peer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return {"ffmpeg": peer(FFMPEG, ["-version"], "ffmpeg version"), "ffprobe": peer(FFPROBE, ["-version"], "ffprobe")}


def _frame(i: int) -> np.ndarray:
    """A gradient with a bright square moving right 3 px per frame (a swapped or repeated frame shows)."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx, yy * 2, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    img[30:60, 3 * i : 3 * i + 24] = 240
    return img


def _receive(url: str, got: list, **kw) -> threading.Thread:  # type: ignore[no-untyped-def]
    def run() -> None:
        with connect(url, **kw) as ws:
            try:
                got.extend(ws)
            except ConnectionClosed:
                pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_fragments_decode_with_ffmpeg_at_the_source_rate(ff: dict, tmp_path: Path) -> None:
    """A viewer connected first receives init + one fragment per frame; FFmpeg decodes them all.

    Fails if fragment durations are not the frame period (ffprobe's rate), if a frame is lost,
    repeated or reordered (the moving square, compared with the frames sent), or if padding moves
    pixels.
    """
    sink = MseLiveSink("ws://127.0.0.1:0/live")
    got: list = []
    try:
        sink.open()
        rx = _receive(sink.path, got)
        wait_until(lambda: sink.viewers == 1, "the viewer to connect")
        for i in range(40):
            sink.write(_frame(i), FrameInfo(pts=i * 3, time_base=Fraction(1, 90), index=i, rate=Fraction(30)))
            wait_until(lambda i=i: sink.written == i + 1, "the frame to be encoded")  # no frame dropped by design
    finally:
        sink.close()
    rx.join(30)
    header = json.loads(got[0])
    assert header["type"] == "init" and header["codecs"].startswith("avc1.42") and header["fps"] == 30
    stream = tmp_path / "live.mp4"
    stream.write_bytes(b"".join(m for m in got if isinstance(m, bytes)))
    probe = probe_stream(ff["ffprobe"], stream)
    assert (probe["nb_read_frames"], probe["r_frame_rate"], probe["avg_frame_rate"]) == ("40", "30/1", "30/1"), probe
    raw = subprocess.run([str(ff["ffmpeg"]), "-v", "error", "-i", str(stream), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-"], capture_output=True, check=True, timeout=60).stdout
    decoded = np.frombuffer(raw, np.uint8).reshape(40, H + 1, W + 1, 3)[:, :H, :W].astype(int)
    sent = np.stack([_frame(i) for i in range(40)]).astype(int)
    nearest = [int(np.abs(sent - d).mean(axis=(1, 2, 3)).argmin()) for d in decoded]  # which frame each one is
    assert nearest == list(range(40)) and max(np.abs(decoded - sent).mean(axis=(1, 2, 3))) < 6, nearest


def test_refuses_what_the_gateway_refuses(tmp_path: Path) -> None:
    """Beyond loopback without a token, a foreign Host or Origin, a missing token, a token in the
    WebSocket URL, an unknown static file, a port in use: each refused with its reason; the page
    carries a CSP.

    Fails if any check is dropped (the attack would then be answered with the stream or the page).
    """
    with pytest.raises(ValueError, match="expected a token when serving beyond loopback"):
        MseLiveSink("ws://0.0.0.0:0/live")
    with pytest.raises(ValueError, match="expected a browser output ws://HOST:PORT/PATH"):
        MseLiveSink("ws://127.0.0.1/live")  # no port
    sink = MseLiveSink("ws://127.0.0.1:0/live", token="s3cret")
    try:
        sink.open()
        with pytest.raises(ValueError, match=f"expected an address to serve the live page on; got .*:{sink.port}/live"):
            MseLiveSink(f"ws://127.0.0.1:{sink.port}/live").open()  # taken: one clear line, not a traceback
        base = f"http://127.0.0.1:{sink.port}"
        with httpx.Client(base_url=base) as http:
            assert http.get("/live").status_code == 401
            assert http.get("/live", headers={"host": "evil.example:80"}).status_code == 421  # DNS rebinding
            assert http.get("/live", headers={"host": "127.0.0.1.rebind.example:80"}).status_code == 421
            assert http.get("/static/..%2Fmse_live.py").status_code == 404
            assert http.get("/live?token=wrong").status_code == 401
            first = http.get("/live?token=s3cret")
            assert first.status_code == 303 and first.headers["location"] == "/live"
            assert "httponly" in first.headers["set-cookie"].lower()
            page = http.get("/live", headers={"Cookie": f"{COOKIE}=s3cret"})
            assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
            assert "<script>" not in page.text  # scripts only from files: the CSP forbids inline ones
        refusals = {
            "no token": ({}, sink.path),
            "token in URL": ({}, sink.path + "?token=s3cret"),
            "foreign origin": ({"origin": "http://evil.example", "additional_headers": {"Cookie": f"{COOKIE}=s3cret"}},
                               sink.path),
        }
        for why, (kw, url) in refusals.items():
            with connect(url, **kw) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
            assert closed.value.rcvd.code in (4401, 4403), why
        assert sink.viewers == 0
        sink.max_viewers = 1  # viewers at once are bounded: the next one is told to come back later
        with connect(sink.path, additional_headers={"Cookie": f"{COOKIE}=s3cret"}):
            wait_until(lambda: len(sink._viewers) == 1, "the first viewer registered")
            with connect(sink.path, additional_headers={"Cookie": f"{COOKIE}=s3cret"}) as second:
                with pytest.raises(ConnectionClosed) as closed:
                    second.recv(timeout=10)
            assert closed.value.rcvd.code == 1013 and "at most 1 viewers at once" in closed.value.rcvd.reason
    finally:
        sink.close()


@pytest.mark.chromium
def test_chromium_plays_the_live_output_of_the_app(ff: dict, peer, small_clip: dict, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`clara-stream run video_detection --input tcp://… --set encoder.live_url=ws://…/live`, opened in
    headless Chromium: the video's clock advances, pixels sampled through a canvas change, and the
    bytes the page received decode with ffprobe at the source's rate.

    Fails if the page cannot play the stream (MSE refuses the init segment or a fragment), if the
    player stalls (currentTime stuck), or if fragments carry the wrong durations (rate).
    """
    chromium = peer(CHROMIUM, ["--version"], "chromium")
    from playwright.sync_api import sync_playwright

    src, port = free_port(), free_port()
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], src, loop=True)
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "--input", f"tcp://127.0.0.1:{src}",
           "--output", str(tmp_path / "out"), "--set", f"encoder.live_url=ws://127.0.0.1:{port}/live"]
    app = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: listening(port) or app.poll() is not None, "the live page", timeout_s=120)
        assert app.poll() is None, app.stderr.read()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
            page = browser.new_page()
            page.add_init_script("window.__liveRecord = true;")
            page.add_init_script("window.__b64 = (d) => { let s = ''; for (let i = 0; i < d.length; i++)"
                                 " s += String.fromCharCode(d[i]); return btoa(s); };")
            page.goto(f"http://127.0.0.1:{port}/live")
            sample = ("() => { const v = window.__live.player.el, c = document.createElement('canvas');"
                      " c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d');"
                      " g.drawImage(v, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data;"
                      " return [v.currentTime, c.width, c.height, window.__b64(d)]; }")
            page.wait_for_function("() => { const p = window.__live.player; return p && p.buffer && p.buffer.buffered"
                                   ".length && p.el.currentTime > p.buffer.buffered.start(0) + 0.2; }", timeout=90000)
            t1, w, h, a = page.evaluate(sample)
            page.wait_for_function(f"() => window.__live.player.el.currentTime > {t1 + 0.5}", timeout=90000)
            t2, _, _, b = page.evaluate(sample)
            n, errors, data = page.evaluate("() => [window.__live.fragments, window.__live.errors,"
                                            " window.__b64(window.__live.bytes.flatMap(u => Array.from(u)))]")
            status = page.locator("#status").inner_text()
            browser.close()
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)  # a clean stop: the sinks close (exit 143)
        try:
            app.wait(timeout=60)
        finally:
            stop(app), stop(sender)
    first, second = (np.frombuffer(base64.b64decode(x), np.uint8).reshape(h, w, 4)[..., :3].astype(int) for x in (a, b))
    assert errors == [] and status.startswith("live 320×180 at 25 fps"), (errors, status)
    assert t2 > t1 and first.std() > 10 and np.abs(second - first).mean() > 1.0, (t1, t2)
    stream = tmp_path / "page.mp4"
    stream.write_bytes(base64.b64decode(data))
    probe = probe_stream(ff["ffprobe"], stream)
    assert probe["r_frame_rate"] == "25/1" and (probe["width"], probe["height"]) == ("320", "180"), probe
    # every fragment the page received decodes; at least the frames of the media time it played
    assert int(probe["nb_read_frames"]) == n >= int((t2 - t1) * 25), (probe, n, t1, t2)


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A second scene of another size (256×144 at 15 fps): a swapped page shows the wrong size and rate."""
    return write_sample(tmp_path_factory.mktemp("other"), seed=6, width=256, height=144, frames=30, fps=15)


@pytest.mark.chromium
def test_chromium_plays_each_stream_of_the_multi_app_on_its_own_page(ff: dict, peer, small_clip: dict,  # type: ignore[no-untyped-def]
                                                                    other_clip: dict, tmp_path: Path) -> None:
    """`video_detection_multi` with two live inputs and `outputs.live_urls=[ws://…/s0, ws://…/s1]`:
    headless Chromium opens both pages; each plays (clock advances, pixels change) and shows its
    own stream (320×180 at 25 fps on page 0, 256×144 at 15 fps on page 1).

    Fails if the multi app refuses ws:// (as it did), if the pages are swapped or both show one
    stream, or if a page stalls.
    """
    chromium = peer(CHROMIUM, ["--version"], "chromium")
    from playwright.sync_api import sync_playwright

    srcs, ports = [free_port(), free_port()], [free_port(), free_port()]
    senders = [send_tcp(ff["ffmpeg"], c["video"], p, loop=True)
               for c, p in zip((small_clip, other_clip), srcs, strict=True)]
    urls = ", ".join(f"ws://127.0.0.1:{p}/s{k}" for k, p in enumerate(ports))
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection_multi", "--input",
           f"tcp://127.0.0.1:{srcs[0]}", "--input", f"tcp://127.0.0.1:{srcs[1]}", "--output", str(tmp_path / "out"),
           "--set", f"outputs.live_urls=[{urls}]"]
    app = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        wait_until(lambda: all(listening(p) for p in ports) or app.poll() is not None, "both pages", timeout_s=120)
        assert app.poll() is None, app.stderr.read()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
            for k, port in enumerate(ports):
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/s{k}")
                page.wait_for_function("() => { const p = window.__live.player; return p && p.buffer && p.buffer"
                                       ".buffered.length && p.el.currentTime > p.buffer.buffered.start(0) + 0.2; }",
                                       timeout=90000)
                sample = ("() => { const v = window.__live.player.el, c = document.createElement('canvas');"
                          " c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d');"
                          " g.drawImage(v, 0, 0); return [v.currentTime, Array.from(g.getImageData(0, 0, c.width,"
                          " c.height).data.filter((_, i) => i % 4 === 1))]; }")
                t1, a = page.evaluate(sample)
                page.wait_for_function(f"() => window.__live.player.el.currentTime > {t1 + 0.5}", timeout=90000)
                t2, b = page.evaluate(sample)
                seen.append((page.locator("#status").inner_text(), page.evaluate("() => window.__live.errors"),
                             t2 > t1, np.abs(np.array(a, int) - np.array(b, int)).mean()))
            browser.close()
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=60)
        finally:
            stop(app)
            for s in senders:
                stop(s)
    assert seen[0][0].startswith("live 320×180 at 25 fps") and seen[1][0].startswith("live 256×144 at 15 fps"), seen
    assert all(errors == [] and advanced and changed > 1.0 for _, errors, advanced, changed in seen), seen


def test_multi_app_refuses_browser_pages_it_cannot_serve_before_any_output(small_clip: dict, tmp_path: Path) -> None:
    """Two pages on one host:port, or a page beyond loopback without a token: one clear line each,
    and no output written. Fails if either is accepted (the second page would fail to bind mid-run,
    or the stream would be open to the network)."""
    base = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection_multi", "--input",
            str(small_clip["video"]), "--input", str(small_clip["video"])]
    port = free_port()
    cases = {"expected one host:port per browser output": f"[ws://127.0.0.1:{port}/a, ws://127.0.0.1:{port}/b]",
             "expected a token when serving beyond loopback": f"[ws://127.0.0.1:{port}/a, ws://0.0.0.0:{port + 1}/b]"}
    env = {k: v for k, v in os.environ.items() if k != "CLARA_STREAM_LIVE_TOKEN"}
    for k, (why, urls) in enumerate(cases.items()):
        out = tmp_path / f"out{k}"
        done = subprocess.run([*base, "--output", str(out), "--set", f"outputs.live_urls={urls}"], capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode != 0 and why in done.stderr, done.stderr
        assert not list(out.rglob("*.mp4")) and not list(out.rglob("*.txt")), why
