"""The viewer's microphone in headless Chromium: fake capture plays a real espeak-ng utterance, the
voice panel streams it to the gateway (continuous mode), and the rendered frame changes."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.chromium
CHROMIUM = "/usr/bin/chromium"


def test_microphone_changes_the_rendered_frame(render_service, utterances, peer, tmp_path):
    peer(CHROMIUM, ["--version"], "chromium")
    from playwright.sync_api import sync_playwright

    clip = next(u for u in utterances if u.text == "show the coronal view").clean
    wav = tmp_path / "mic.wav"  # a second of silence after the command: the energy gate closes it
    subprocess.run(["/usr/bin/sox", str(clip), str(wav), "pad", "0.3", "1.0"], check=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.goto(render_service["http"])
            page.wait_for_selector("#datasets button")
            page.locator("#datasets button").first.click()
            page.wait_for_function("() => window.__viewer.lastFrame && window.__viewer.lastFrame.mode === 'axial'"
                                   " && !window.__viewer.lastFrame.interactive", timeout=60000)  # fmt: skip
            before = page.locator("#view").screenshot()
            page.locator("#voice-continuous").check()
            page.wait_for_function("() => window.__voice.results.length > 0 || window.__voice.errors.length > 0",
                                   timeout=90000)  # fmt: skip
            voice = page.evaluate("() => window.__voice")
            assert voice["errors"] == [] and voice["results"][0]["intent"] == "set_view", voice
            assert voice["partials"], "no partial transcript was streamed back"
            page.wait_for_function("() => window.__viewer.lastFrame.mode === 'coronal'", timeout=60000)
            after = page.locator("#view").screenshot()
            assert before != after
            assert page.locator("#voice-intent").text_content().startswith("set_view")
            page.locator("#voice-continuous").uncheck()
            page.fill("#voice-query", "switch to sagittal")  # the typed box, same dialog manager
            page.locator("#voice-form button").click()
            page.wait_for_function("() => window.__viewer.lastFrame.mode === 'sagittal'", timeout=60000)
        finally:
            browser.close()
