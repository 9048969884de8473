"""The viewer page in headless Chromium with touch: gestures change what the screenshot shows.

The whole stack runs for real: ``python -m clara_stream.render.serve`` (gRPC services + gateway)
in a subprocess on free loopback ports, stopped by its pid.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.chromium
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def stack(render_stack, peer):
    peer(CHROMIUM, ["--version"], "chromium")  # pinned by absolute path; fails under CI if missing
    return render_stack


@pytest.fixture(scope="module")
def page(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(has_touch=True, viewport={"width": 900, "height": 900})
        pg = ctx.new_page()
        pg.goto(stack["http"] + "?token=t0k")  # the first load trades the token for a cookie
        pg.wait_for_selector("#datasets button")
        pg.cdp = ctx.new_cdp_session(pg)
        yield pg
        browser.close()


def _tap(page, selector: str) -> None:
    page.locator(selector).first.scroll_into_view_if_needed()
    box = page.locator(selector).first.bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _settled(page, frames_before: int) -> dict:
    """Wait until the page has handled every input event, every message it sent is answered by a
    frame on screen, and a full-quality frame was shown after that answer.

    The answer must be a shown frame's, not just any full-quality frame: the gateway sends one
    whenever it idles 150 ms, which on a slow page happens in the middle of a gesture."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    try:
        page.wait_for_function(  # no coalesced gesture still waiting for its animation frame, all answered
            f"() => !window.__viewer.flushPending() && window.__viewer.frames > {frames_before}"
            " && window.__viewer.acked >= window.__viewer.sent && window.__viewer.shownAck >= window.__viewer.sent"
            " && window.__viewer.fullSinceAck && window.__viewer.lastFrame && !window.__viewer.lastFrame.interactive",
            timeout=90000,
        )
    except PlaywrightTimeout:
        state = page.evaluate(
            "({frames: window.__viewer.frames, sent: window.__viewer.sent, acked: window.__viewer.acked,"
            " shownAck: window.__viewer.shownAck, fullSinceAck: window.__viewer.fullSinceAck,"
            " flushPending: window.__viewer.flushPending(), lastFrame: window.__viewer.lastFrame,"
            " errors: window.__viewer.errors})"
        )
        pytest.fail(f"viewer not settled after 90 s (frames before {frames_before}): {state}")
    return page.evaluate("window.__viewer.lastFrame")


def _shot(page) -> np.ndarray:
    png = page.locator("#view").screenshot()
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _frames(page) -> int:
    return page.evaluate("window.__viewer.frames")


def _gesture(page, start: list[tuple[float, float]], end: list[tuple[float, float]], steps: int = 8) -> None:
    """Dispatch real multi-touch events (CDP) moving each finger from start to end, canvas pixels."""
    box = page.locator("#view").bounding_box()

    def pts(t: float):
        return [
            {"x": box["x"] + s[0] + (e[0] - s[0]) * t, "y": box["y"] + s[1] + (e[1] - s[1]) * t, "id": i}
            for i, (s, e) in enumerate(zip(start, end, strict=True))
        ]

    page.cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": pts(0)})
    for k in range(1, steps + 1):
        page.cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": pts(k / steps)})
        page.wait_for_timeout(16)
    page.cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _bright_fraction(img: np.ndarray) -> float:
    return float((img.mean(axis=2) > 20).mean())


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img.mean(axis=2) > 20)
    return np.array([xs.mean(), ys.mean()])


def test_volume_gestures_change_the_picture(page):
    n = _frames(page)
    _tap(page, "#datasets button >> text=phantom")
    first = _settled(page, n)
    assert first["mode"] == "axial" and first["unit"] == "mm"
    base = _shot(page)
    assert _bright_fraction(base) > 0.2 and base.std() > 20  # a body is drawn, not a blank canvas

    n = _frames(page)  # one-finger drag: pan right and down
    _gesture(page, [(200, 200)], [(260, 240)])
    _settled(page, n)
    panned = _shot(page)
    moved = _centroid(panned) - _centroid(base)
    assert moved[0] > 20 and moved[1] > 10

    n = _frames(page)  # pinch out: zoom in around the centre
    _gesture(page, [(216, 256), (296, 256)], [(136, 256), (376, 256)])
    zoomed_hdr = _settled(page, n)
    zoomed = _shot(page)
    assert zoomed_hdr["zoom"] > 1.5
    assert _bright_fraction(zoomed) > _bright_fraction(panned) + 0.1

    n = _frames(page)  # two-finger vertical drag scrolls slices: same zoom, different anatomy
    before = _shot(page)
    _gesture(page, [(200, 150), (300, 150)], [(200, 330), (300, 330)], steps=10)
    hdr = _settled(page, n)
    after = _shot(page)
    assert hdr["zoom"] == pytest.approx(zoomed_hdr["zoom"], rel=0.05)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 2


def test_a_frame_that_fails_to_decode_does_not_freeze_the_viewer(page):
    """JPEG frames are drawn on one promise chain; one rejected decode used to leave the chain
    rejected, so no later frame was ever drawn. Now it is named in ``errors`` and the next draws."""
    transport = page.evaluate("window.__viewer.transport")
    page.evaluate("() => window.__viewer.setStream('jpeg')")
    n = _frames(page)
    _tap(page, "#datasets button >> text=phantom")
    assert _settled(page, n)["mime"] == "image/jpeg"
    page.evaluate(
        """() => { const real = window.createImageBitmap; window.__realBitmap = real;
                   window.createImageBitmap = () => { window.createImageBitmap = real;
                                                       return Promise.reject(new Error("undecodable")); }; }"""
    )
    try:
        n = _frames(page)
        _gesture(page, [(200, 200)], [(260, 240)])
        _settled(page, n)
        errors = page.evaluate("window.__viewer.errors.splice(0)")  # taken out: later tests expect none
    finally:
        page.evaluate(f"() => {{ window.createImageBitmap = window.__realBitmap; "
                      f"window.__viewer.setStream('{transport}'); }}")
    assert len(errors) == 1 and "not drawn" in errors[0] and "undecodable" in errors[0], errors


def test_modes_labels_and_measurement(page):
    if page.evaluate("!window.__viewer.lastFrame"):
        _tap(page, "#datasets button >> text=phantom")
        _settled(page, 0)
    n = _frames(page)
    _tap(page, "#reset")
    _settled(page, n)
    axial = _shot(page)
    n = _frames(page)
    _tap(page, "#presets button >> text=Lung")  # a wide window: soft tissue turns grey, not white
    _settled(page, n)
    lung = _shot(page)
    assert np.abs(lung.astype(int) - axial.astype(int)).mean() > 3
    n = _frames(page)
    _tap(page, "#presets button >> text=Soft")
    _settled(page, n)
    n = _frames(page)
    _tap(page, "#modes button[data-mode=mip]")
    assert _settled(page, n)["mode"] == "mip"
    mip = _shot(page)
    assert np.abs(mip.astype(int) - axial.astype(int)).mean() > 5

    n = _frames(page)
    _tap(page, "#modes button[data-mode=composite]")
    _settled(page, n)
    vr = _shot(page)
    n = _frames(page)
    _tap(page, "#labels input[data-label='2']")  # hide the ribs
    _settled(page, n)
    no_ribs = _shot(page)
    assert np.abs(vr.astype(int) - no_ribs.astype(int)).mean() > 1

    n = _frames(page)  # one-finger drag rotates the 3D view
    _gesture(page, [(150, 256)], [(330, 256)])
    _settled(page, n)
    assert np.abs(_shot(page).astype(int) - no_ribs.astype(int)).mean() > 1

    n = _frames(page)
    _tap(page, "#modes button[data-mode=axial]")
    hdr = _settled(page, n)
    _tap(page, "#measure-btn")
    page.wait_for_selector("#measure-btn.active", timeout=30000)  # measure mode on before the taps
    box = page.locator("#view").bounding_box()
    page.touchscreen.tap(box["x"] + 156, box["y"] + 256)
    page.touchscreen.tap(box["x"] + 356, box["y"] + 256)
    page.wait_for_function("() => window.__viewer.measure !== null", timeout=60000)
    m = page.evaluate("window.__viewer.measure")
    assert m["unit"] == "mm" and m["distance"] == pytest.approx(200 * hdr["units_per_px"], rel=0.01)
    assert "mm" in page.locator("#measure-result").inner_text()
    line = _shot(page)
    yellow = (line[..., 0] > 200) & (line[..., 1] > 180) & (line[..., 2] < 80)
    assert yellow[250:262, 160:350].sum() > 100  # the measurement line is drawn over the image
    _tap(page, "#measure-btn")


def test_slide_pinch_and_overview(page):
    n = _frames(page)
    _tap(page, "#datasets button >> text=slide")
    hdr = _settled(page, n)
    assert hdr["mode"] == "slide"
    base = _shot(page)
    pink = (base[..., 0] > 180) & (base[..., 1] < 190) & (base[..., 2] > 150)
    assert pink.mean() > 0.05  # synthetic tissue is visible
    n = _frames(page)
    _gesture(page, [(226, 256), (286, 256)], [(106, 256), (406, 256)])
    assert _settled(page, n)["zoom"] > 2
    zoomed = _shot(page)
    assert np.abs(zoomed.astype(int) - base.astype(int)).mean() > 5
    n = _frames(page)
    page.locator("#picture_in_picture").check()
    _settled(page, n)
    pip = _shot(page)
    corner = np.s_[-130:-10, -130:-10]
    assert np.abs(pip[corner].astype(int) - zoomed[corner].astype(int)).mean() > 5
    lat = page.evaluate("window.__viewer.latencies")
    assert len(lat) >= 3  # every gesture was answered by a frame


def test_gateway_refuses_without_token(stack):
    import httpx

    r = httpx.get(stack["http"] + "api/datasets")
    assert r.status_code == 401 and "expected a valid token" in r.text
    r = httpx.get(stack["http"] + "api/datasets", headers={"Authorization": "Bearer t0k"})
    assert r.status_code == 200 and {d["id"] for d in r.json()} == set(stack["datasets"])
    r = httpx.get(stack["http"] + "api/tiles/nope/0/0/0.jpg", headers={"Authorization": "Bearer t0k"})
    assert r.status_code == 404


def test_websocket_refuses_bad_messages(stack):
    from websockets.sync.client import connect

    url = stack["http"].replace("http://", "ws://") + "ws"
    with connect(url, additional_headers={"Authorization": "Bearer t0k"}) as ws:
        for msg, text in [
            ("not json", "Expecting value"),
            (json.dumps({"type": "pan", "dx": 1, "dy": 1}), "expected an 'open' message first"),
            (json.dumps({"type": "open", "dataset": "nope"}), "expected a registered dataset id"),
            (
                json.dumps({"type": "open", "dataset": stack["datasets"][0], "width": 99999}),
                "expected width and height in 16..4096",
            ),
            (json.dumps({"type": "x" * 5000}), "expected messages of at most 4096 bytes"),
        ]:
            ws.send(msg)
            reply = json.loads(ws.recv(timeout=20))
            while reply["type"] != "error":  # an open that half-succeeded may send info first
                reply = json.loads(ws.recv(timeout=20))
            assert reply["type"] == "error" and text in reply["message"], (msg, reply)
    with pytest.raises(Exception, match="4401"):
        with connect(stack["http"].replace("http://", "ws://") + "ws") as ws:
            ws.recv(timeout=10)


def test_label_markup_is_text_and_the_token_stays_out_of_the_page(page, stack):
    """A label named ``<img onerror=…>`` shows as text: no element is created and no script runs
    (fails with innerHTML); the page's URL and storage never hold the token."""
    n = _frames(page)
    _tap(page, "#datasets button >> text=xss")
    _settled(page, n)
    texts = page.locator("#labels label").all_inner_texts()
    assert any(stack["xss_name"] in t for t in texts), texts
    assert page.locator("#labels img").count() == 0 and page.evaluate("window.__pwned") is None
    assert "t0k" not in page.url and page.evaluate("document.cookie") == ""  # HttpOnly: script cannot read it
    assert "t0k" not in page.content()


def test_switching_datasets_resets_toggles_and_measurement(page):
    """Fails if the scale-bar/PiP boxes or the old distance survive a switch to a dataset whose own
    view has them off (the controls then lie about the frame)."""
    n = _frames(page)
    _tap(page, "#datasets button >> text=phantom")
    _settled(page, n)
    for name in ("scale_bar", "picture_in_picture"):
        n = _frames(page)
        page.locator(f"#{name}").check()
        _settled(page, n)
    _tap(page, "#measure-btn")
    page.wait_for_selector("#measure-btn.active", timeout=30000)  # measure mode on before the taps
    box = page.locator("#view").bounding_box()
    page.touchscreen.tap(box["x"] + 150, box["y"] + 200)
    page.touchscreen.tap(box["x"] + 300, box["y"] + 200)
    page.wait_for_function("() => window.__viewer.measure !== null", timeout=60000)
    _tap(page, "#measure-btn")
    assert page.locator("#measure-result").inner_text() != ""
    n = _frames(page)
    _tap(page, "#datasets button >> text=slide")
    _settled(page, n)
    assert not page.locator("#scale_bar").is_checked() and not page.locator("#picture_in_picture").is_checked()
    assert page.locator("#measure-result").inner_text() == "" and page.evaluate("window.__viewer.measure") is None


def test_h264_stream_plays_through_mse_and_falls_back_to_jpeg(page, stack):
    """This Chromium plays H.264: frames arrive as fMP4 and reach the canvas through the MSE player;
    a browser that cannot play the codec gets JPEG frames instead, and gestures work in both."""
    n = _frames(page)
    _tap(page, "#datasets button >> text=phantom")
    hdr = _settled(page, n)
    state = page.evaluate("() => [window.__viewer.transport, window.__viewer.errors]")
    assert state == ["h264", []] and hdr["mime"] == "video/mp4", (state, hdr)
    assert page.locator("video").count() == 1
    base = _shot(page)
    assert _bright_fraction(base) > 0.2 and base.std() > 20
    n = _frames(page)
    _gesture(page, [(200, 200)], [(260, 240)])
    _settled(page, n)
    assert (_centroid(_shot(page)) - _centroid(base))[0] > 20

    ctx = page.context.browser.new_context(has_touch=True, viewport={"width": 900, "height": 900})
    ctx.add_init_script("MediaSource.isTypeSupported = () => false;")  # a browser without H.264 MSE
    pg = ctx.new_page()
    try:
        pg.goto(stack["http"] + "?token=t0k")
        pg.wait_for_selector("#datasets button")
        pg.cdp = ctx.new_cdp_session(pg)
        n = _frames(pg)
        _tap(pg, "#datasets button >> text=phantom")
        hdr = _settled(pg, n)
        assert pg.evaluate("() => window.__viewer.transport") == "jpeg" and hdr["mime"] == "image/jpeg"
        jpeg_base = _shot(pg)
        n = _frames(pg)
        _gesture(pg, [(200, 200)], [(260, 240)])
        _settled(pg, n)
        assert (_centroid(_shot(pg)) - _centroid(jpeg_base))[0] > 20
    finally:
        ctx.close()
