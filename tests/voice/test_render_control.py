"""Voice commands change a live render session over gRPC (the real render server process):
typed queries through the dialog service and spoken ones through ASR, state checked after each."""

from __future__ import annotations

import pytest
from clara_stream.voice.audio import read_wav
from clara_stream.voice.service import VoiceContext, view_summary


@pytest.fixture()
def ctx(dialog, render_session):
    client, _ = render_session
    return VoiceContext(dialog, client)


def test_typed_commands_change_the_session(ctx, render_session):
    client, sid = render_session
    before = view_summary(client.state(sid))
    labels = {lb.name: lb.value for lb in client.info(client.state(sid).dataset_id).labels}
    assert labels == {"body": 1, "ribs": 2, "lesion": 3}  # the dataset's own names feed the slots

    s = ctx.handle("zoom in", session=sid)["state"]
    assert s["zoom"] == pytest.approx(before["zoom"] * 1.5)
    s = ctx.handle("zoom out a lot", session=sid)["state"]
    assert s["zoom"] == pytest.approx(before["zoom"] * 1.5 / 2.0)
    # pan left = drag the image left: the focus moves towards +x (image columns, LPS left) in axial
    s = ctx.handle("pan left", session=sid)["state"]
    assert s["focus_mm"][0] > before["focus_mm"][0] and s["focus_mm"][1:] == pytest.approx(before["focus_mm"][1:])
    z0 = s["focus_mm"][2]
    s = ctx.handle("skip ahead three slices", session=sid)["state"]
    assert abs(s["focus_mm"][2] - z0) == pytest.approx(3 * 2.0)  # phantom z spacing 2.0 mm
    assert ctx.handle("remove ribs", session=sid)["state"]["hidden_labels"] == [2]
    assert ctx.handle("show only the lesion", session=sid)["state"]["hidden_labels"] == [1, 2]
    assert ctx.handle("bring back the ribs", session=sid)["state"]["hidden_labels"] == [1]
    assert ctx.handle("set the body opacity to 30 percent", session=sid)["state"]["label_opacity"]["1"] == 0.3
    assert ctx.handle("lung window", session=sid)["state"]["window"] == [-600.0, 1500.0]
    assert ctx.handle("show the scale bar", session=sid)["state"]["scale_bar"] is True
    assert ctx.handle("switch to coronal", session=sid)["state"]["mode"] == "coronal"
    assert ctx.handle("maximum intensity projection", session=sid)["state"]["mode"] == "mip"
    assert ctx.handle("volume rendering", session=sid)["state"]["mode"] == "composite"


def test_reset_waits_for_yes_then_resets(ctx, render_session):
    client, sid = render_session
    fresh = view_summary(client.state(sid))
    ctx.handle("zoom in", session=sid)
    r = ctx.handle("reset the view", session=sid, conversation="r")
    assert r["pending_confirmation"] and r["state"]["zoom"] == pytest.approx(fresh["zoom"] * 1.5)
    r = ctx.handle("yes", session=sid, conversation="r")
    assert r["state"]["zoom"] == pytest.approx(fresh["zoom"]) and r["state"]["mode"] == fresh["mode"]


def test_unknown_request_leaves_the_session_alone(ctx, render_session):
    client, sid = render_session
    before = client.state(sid).view
    r = ctx.handle("what is the weather", session=sid)
    assert not r["understood"] and r["command"] == [] and client.state(sid).view == before


def test_spoken_commands_change_the_session(ctx, render_session, utterances):
    """Noisy espeak-ng speech → pocketsphinx (grammar with the dataset's labels) → intent → gRPC."""
    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.commands import execute
    from clara_stream.voice.pipeline import understand

    client, sid = render_session
    labels = [(lb.value, lb.name) for lb in client.info(client.state(sid).dataset_id).labels]
    asr = PocketSphinxASR(labels=labels)
    said = {u.text: u for u in reversed(utterances)}  # each command's first voice
    text, r = understand(asr, ctx.dialog, read_wav(said["remove the ribs"].noisy), labels)
    assert r.intent == "hide_label" and view_summary(execute(client, sid, r.command))["hidden_labels"] == [2], text
    text, r = understand(asr, ctx.dialog, read_wav(said["show the coronal view"].noisy), labels)
    assert view_summary(execute(client, sid, r.command))["mode"] == "coronal", text
