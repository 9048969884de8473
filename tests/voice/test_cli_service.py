"""``clara-stream voice`` commands, and ``voice serve``'s REST shape (the article's process_query)
as a real process acting on a live render session."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from clara_stream.voice.audio import read_wav

from clara_stream.cli import main


def test_intent_command_prints_the_json(capsys, render_service):
    assert main(["voice", "intent", "remove ribs", "--dataset", render_service["datasets"][0],
                 "--render", render_service["grpc"]]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"query", "intent", "confidence", "slots", "command", "reply"}
    assert out["intent"] == "hide_label" and out["command"] == [{"type": "label", "value": 2, "hidden": True}]
    assert main(["voice", "intent", "x" * 10_000]) != 0
    assert "expected a query of 1..300 characters; got 10000" in capsys.readouterr().err


def test_say_and_transcribe(tmp_path, capsys, utterances, voice_peers):
    out = tmp_path / "reply.wav"
    assert main(["voice", "say", "next slice", "--out", str(out)]) == 0
    assert len(read_wav(out, rate=22050)) > 22050 // 3
    clip = next(u for u in utterances if u.text == "show the coronal view").clean
    capsys.readouterr()
    assert main(["voice", "transcribe", str(clip), "--intent"]) == 0
    assert json.loads(capsys.readouterr().out)["intent"] == "set_view"
    (tmp_path / "x.mp3").write_bytes(b"ID3" + bytes(100))
    assert main(["voice", "transcribe", str(tmp_path / "x.mp3")]) != 0
    assert "expected a RIFF/WAVE file" in capsys.readouterr().err
    assert main(["voice", "transcribe", str(out)]) != 0  # 22.05 kHz: refused, not misheard
    assert "expected 16000 Hz; got 22050 Hz" in capsys.readouterr().err


@pytest.fixture(scope="module")
def rest(services, render_service):
    proc, info = services.start(["voice", "serve", "--port", "0", "--render", render_service["grpc"]],
                                services.tmp / "rest.json")  # fmt: skip
    yield info["http"]
    services.stop(proc)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_process_query_acts_on_a_render_session(rest, render_session):
    client, sid = render_session
    zoom = client.state(sid).view.camera.zoom
    status, body = _get(f"{rest}liver/process_query?" + urllib.parse.urlencode({"query": "zoom in", "session": sid}))
    assert status == 200 and body["intent"] == "zoom_in" and body["reply"] == "Zooming in."
    assert client.state(sid).view.camera.zoom == pytest.approx(zoom * 1.5) == body["state"]["zoom"]
    status, body = _get(f"{rest}liver/process_query?" + urllib.parse.urlencode({"query": "what is the weather"}))
    assert status == 200 and body["intent"] is None and body["command"] == []
    status, body = _get(f"{rest}liver/process_query?" + urllib.parse.urlencode({"query": "zoom " * 2000}))
    assert status == 400 and "1..300 characters" in body["detail"]
    status, body = _get(f"{rest}..%2F/process_query?query=zoom")
    assert status in (400, 404)
    status, body = _get(f"{rest}liver/process_query?" + urllib.parse.urlencode({"query": "zoom in", "session": "nope"}))
    assert status == 404 and "render service" in body["detail"]


def test_loopback_rest_refuses_foreign_hosts_and_other_origins_pages(dialog):
    """DNS rebinding (a foreign Host, or one that only starts like 127.x) gets 421; without a token a
    page of another origin gets 403 (process_query acts on a render session on a plain GET)."""
    from clara_stream.voice.service import VoiceContext, create_app
    from fastapi.testclient import TestClient

    with TestClient(base_url="http://127.0.0.1", app=create_app(VoiceContext(dialog))) as c:
        q = {"query": "zoom in"}
        for host in ("evil.example", "127.0.0.1.rebind.example:8080"):
            r = c.get("/p/process_query", params=q, headers={"Host": host})
            assert r.status_code == 421 and "expected a loopback Host header" in r.json()["detail"], host
        r = c.get("/p/process_query", params=q, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.json()["detail"]
        ok = c.get("/p/process_query", params=q, headers={"Origin": "http://localhost:8765"})
        assert ok.status_code == 200 and ok.json()["intent"] == "zoom_in"


def test_rest_needs_a_token_beyond_loopback(dialog):
    from clara_stream.voice.service import VoiceContext, create_app
    from fastapi.testclient import TestClient

    with pytest.raises(ValueError, match="expected a token when listening beyond loopback"):
        create_app(VoiceContext(dialog), bind_host="0.0.0.0")
    app = create_app(VoiceContext(dialog), token="k", bind_host="0.0.0.0")
    with TestClient(app) as c:
        assert c.get("/p/process_query", params={"query": "zoom in"}).status_code == 401
        ok = c.get("/p/process_query", params={"query": "zoom in"}, headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200 and ok.json()["intent"] == "zoom_in"


def test_rest_transcribe_chooses_as_the_viewer_does(dialog, utterances):
    """``POST /<project>/transcribe`` must act on the transcript the viewer's path picks (best,
    n-best, second opinion), not on the best sentence alone: same transcript and intent as
    ``understand`` for every clip, and the spoken intent where that path gets it."""
    from clara_stream.voice.pipeline import understand
    from clara_stream.voice.service import VoiceContext, create_app
    from fastapi.testclient import TestClient

    ctx = VoiceContext(dialog)
    clips = [(u.intent, u.clean) for u in utterances] + [(u.intent, u.noisy) for u in utterances[:12]]
    with TestClient(base_url="http://127.0.0.1", app=create_app(ctx)) as c:
        right = 0
        for intent, clip in clips:
            text, res = understand(ctx.asr([])[0], dialog, read_wav(clip), [], "oracle")
            got = c.post("/p/transcribe", content=clip.read_bytes(), params={"conversation": "rest"})
            assert got.status_code == 200, got.text
            body = got.json()
            assert (body["transcript"], body["intent"]) == (text, res.intent if res and res.understood else None), clip
            right += body["intent"] == intent
    assert right >= len(clips) // 2  # it understands spoken commands (the accuracy bars live in test_audio_asr)
