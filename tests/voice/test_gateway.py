"""Voice through the render gateway: audio over ``/ws/voice`` → partials, intent, spoken reply; the
command sent over the viewer's own ``/ws`` changes the rendered frame (the real render process)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from clara_stream.voice.audio import chunks, read_wav
from websockets.sync.client import connect


def _ws(render_service, path, **kw):
    return connect(render_service["http"].replace("http", "ws").rstrip("/") + path, max_size=1 << 24, **kw)


def _frame(viewer):
    """The next frame (header, decoded RGB), skipping info/ack messages."""
    import cv2

    while True:
        msg = json.loads(viewer.recv(timeout=60))
        if msg["type"] == "frame":
            data = viewer.recv(timeout=60)
            return msg, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert msg["type"] in ("info", "ack", "measure"), msg


def _speak(render_service, clip):
    with _ws(render_service, "/ws/voice") as v:
        v.send(json.dumps({"type": "start", "dataset": render_service["datasets"][0], "conversation": "t"}))
        for c in chunks(read_wav(clip)):
            v.send(c)
        v.send(json.dumps({"type": "end"}))
        partials = []
        while True:
            msg = json.loads(v.recv(timeout=60))
            if msg["type"] == "partial":
                partials.append(msg["text"])
                continue
            assert msg["type"] == "result", msg
            head = json.loads(v.recv(timeout=60))
            wav = v.recv(timeout=60)
            assert head["type"] == "reply-audio" and wav[:4] == b"RIFF" and len(wav) == head["bytes"]
            return msg, partials


def test_spoken_command_changes_the_frame_through_the_gateway(render_service, utterances):
    said = {u.text: u for u in reversed(utterances)}
    with _ws(render_service, "/ws") as viewer:
        viewer.send(
            json.dumps({"type": "open", "dataset": render_service["datasets"][0], "width": 192, "height": 160, "id": 1})
        )
        head, before = _frame(viewer)
        assert head["mode"] == "axial"
        result, partials = _speak(render_service, said["remove the ribs"].noisy)
        assert result["intent"] == "hide_label" and partials, result
        for i, m in enumerate(result["command"]):
            viewer.send(json.dumps({**m, "id": 10 + i}))
        _, after = _frame(viewer)
        # ribs (label 2) drawn in their colour before, gone after: the frame changed where they were
        assert np.abs(after.astype(int) - before.astype(int)).max() > 40
        result, _ = _speak(render_service, said["show the coronal view"].noisy)
        assert result["command"] == [{"type": "mode", "mode": "coronal"}]
        viewer.send(json.dumps({**result["command"][0], "id": 20}))
        head, _ = _frame(viewer)
        assert head["mode"] == "coronal"


def test_typed_query_and_socket_rules(render_service):
    url = render_service["http"] + "api/voice/query?q=remove+the+ribs&dataset=" + render_service["datasets"][0]
    body = json.loads(urllib.request.urlopen(url, timeout=60).read())
    assert body["intent"] == "hide_label" and body["command"] == [{"type": "label", "value": 2, "hidden": True}]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(render_service["http"] + "api/voice/query?q=" + "x" * 400, timeout=60)
    assert e.value.code == 400 and "1..300 characters" in e.value.read().decode()
    with _ws(render_service, "/ws/voice", additional_headers={"Origin": "http://evil.example"}) as v:
        with pytest.raises(Exception) as closed:
            v.recv(timeout=30)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4403
    with _ws(render_service, "/ws/voice") as v:  # audio before start, then silence: named errors
        v.send(b"\x00\x00" * 1600)
        assert "start message" in json.loads(v.recv(timeout=30))["message"]
        v.send(json.dumps({"type": "start", "dataset": render_service["datasets"][0]}))
        v.send(b"\x00\x00" * 16000)
        v.send(json.dumps({"type": "end"}))
        assert "silence" in json.loads(v.recv(timeout=30))["message"]
