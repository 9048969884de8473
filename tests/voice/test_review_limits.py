"""Security review of the voice services: concurrent uploads on one recogniser, a gateway utterance
that breaks off or never ends, Riva streams without a time limit, confirmations shared between
clients without a conversation id. Each test tries the attack and asserts the refusal."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from clara_stream.voice.audio import chunks, read_wav
from websockets.sync.client import connect

PHANTOM = [(1, "body"), (2, "ribs"), (3, "lesion")]


def _clip(utterances, text: str):
    return next(u for u in utterances if u.text == text).clean


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {"detail": e.read().decode()}


@pytest.fixture(scope="module")
def serve_ps(services, voice_peers):
    """``voice serve`` (pocketsphinx) as its own process: a crash there fails the test, not pytest."""
    proc, info = services.start(["voice", "serve", "--port", "0", "--backend", "pocketsphinx"],
                                services.tmp / "review-rest.json")  # fmt: skip
    yield info["http"]
    services.stop(proc)


def test_concurrent_transcribe_keeps_each_transcript(serve_ps, utterances):
    """4 threads x 6 POSTs of two different utterances: every one answered 200 with its own
    transcript and intent, equal to the answer it got alone. Fails with one unlocked recogniser
    shared by all requests (500 "Failed to start utterance processing", mixed transcripts, SIGSEGV)."""
    clips = {t: _clip(utterances, t).read_bytes() for t in ("show the coronal view", "next slice")}
    intents = {"show the coronal view": "set_view", "next slice": "next_slice"}
    alone = {t: _post(serve_ps + "p/transcribe", b) for t, b in clips.items()}
    for t, (status, body) in alone.items():
        assert status == 200 and body["intent"] == intents[t], (t, body)
    order = [t for _ in range(12) for t in clips]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: (t, *_post(serve_ps + "p/transcribe", clips[t])), order))
    for t, status, body in got:
        assert status == 200, (t, body)
        assert (body["transcript"], body["intent"]) == (alone[t][1]["transcript"], intents[t]), (t, body)


class _Gateway:
    """The voice routes mounted on a bare FastAPI app, served by uvicorn in a thread on a free port."""

    def __init__(self, **mount_kw) -> None:
        import uvicorn
        from clara_stream.voice.web import mount
        from fastapi import FastAPI

        app = FastAPI()
        mount(app, None, lambda r: None, lambda s: None, backend="pocketsphinx", **mount_kw)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            self.thread.join(0.05)
        assert self.thread.is_alive(), "gateway app did not start"
        self.url = f"ws://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/ws/voice"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def gateway():
    gw = _Gateway(utterance_s=4.0)
    yield gw
    gw.stop()


def _result(v) -> dict:
    """The utterance's result (partials skipped), then its spoken reply."""
    while True:
        msg = json.loads(v.recv(timeout=60))
        if msg["type"] != "partial":
            break
    assert msg["type"] == "result", msg
    assert json.loads(v.recv(timeout=60))["type"] == "reply-audio" and v.recv(timeout=60)[:4] == b"RIFF"
    return msg


def _utter(v, clip, start: dict) -> dict:
    v.send(json.dumps({"type": "start", **start}))
    for c in chunks(read_wav(clip)):
        v.send(c)
    v.send(json.dumps({"type": "end"}))
    return _result(v)


def _say(url: str, clip) -> dict:
    with connect(url, max_size=1 << 24) as v:
        return _utter(v, clip, {"conversation": "other"})


def _first_error(v) -> str:
    while True:
        msg = json.loads(v.recv(timeout=60))
        if msg["type"] == "error":
            return msg["message"]
        assert msg["type"] == "partial", msg


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"type": "x", "pad": "y" * 5000})])
def test_bad_frame_mid_utterance_frees_the_recogniser(gateway, utterances, bad):
    """Invalid JSON or an over-long text frame mid-utterance: the sender gets the named rule, its
    socket still works, and another client's whole utterance gets its result. Fails when ``_parse``
    raised out of the utterance: the decoder thread waited forever holding the recogniser's lock."""
    clip = read_wav(_clip(utterances, "next slice"))
    with connect(gateway.url, max_size=1 << 24) as a:
        a.send(json.dumps({"type": "start"}))
        for c in list(chunks(clip))[:5]:
            a.send(c)
        a.send(bad)
        message = _first_error(a)
        assert ("expected a JSON text message" in message or "at most 4096 bytes" in message), message
        assert "utterance was dropped" in message
        assert _say(gateway.url, _clip(utterances, "show the coronal view"))["intent"] == "set_view"
        a.send(json.dumps({"type": "start"}))  # the same socket takes the next utterance
        for c in chunks(clip):
            a.send(c)
        a.send(json.dumps({"type": "end"}))
        assert _result(a)["intent"] == "next_slice"


def test_silent_utterance_times_out_and_frees_the_recogniser(gateway, utterances):
    """``start`` and then nothing: after the (shortened, 4 s) deadline the client is told the rule and
    another client's utterance is answered. Fails without a deadline (the lock was held forever)."""
    with connect(gateway.url, max_size=1 << 24) as a:
        a.send(json.dumps({"type": "start"}))
        a.send(b"\x00\x00" * 1600)
        message = _first_error(a)
        assert "expected the end message within 4 s" in message, message
        assert _say(gateway.url, _clip(utterances, "next slice"))["intent"] == "next_slice"


def test_spoken_yes_on_another_socket_confirms_nothing(gateway, utterances):
    """Two sockets without a conversation id: A's spoken reset waits for A's yes; B's yes confirms
    nothing. Fails when both fell back to the shared key "" (B's yes ran A's reset)."""
    with connect(gateway.url, max_size=1 << 24) as a, connect(gateway.url, max_size=1 << 24) as b:
        assert _utter(a, _clip(utterances, "reset the view"), {})["pending_confirmation"]
        other = _utter(b, _clip(utterances, "yes"), {})
        assert other["intent"] == "confirm" and other["command"] == [], other
        assert _utter(a, _clip(utterances, "yes"), {})["command"]


def test_mount_refuses_a_bad_deadline():
    from clara_stream.voice.web import mount
    from fastapi import FastAPI

    with pytest.raises(ValueError, match="expected utterance_s > 0; got 0"):
        mount(FastAPI(), None, lambda r: None, lambda s: None, backend="pocketsphinx", utterance_s=0)


def _no_conversation_cannot_confirm(get) -> None:
    """A asks a reset without a conversation id, B says yes without one: nothing is reset; an id over
    64 characters is refused by name; within a conversation the reset still waits for its yes."""
    a = get("reset the view", "")
    assert a["command"] == [] and not a["pending_confirmation"] and "conversation" in a["reply"], a
    b = get("yes", "")
    assert b["command"] == [] and b["intent"] == "confirm", b
    with pytest.raises(AssertionError, match="at most 64 characters; got 65"):
        get("zoom in", "c" * 65)
    assert get("reset the view", "mine")["pending_confirmation"]
    assert get("yes", "")["command"] == []  # another client's yes without an id
    assert get("yes", "mine")["command"]


def test_gateway_query_without_conversation_shares_no_confirmation(gateway):
    """``/api/voice/query``: fails when no conversation meant the shared key "" (B's yes ran A's reset)."""
    import urllib.parse

    base = gateway.url.replace("ws://", "http://").removesuffix("/ws/voice")

    def get(q: str, conversation: str) -> dict:
        url = f"{base}/api/voice/query?" + urllib.parse.urlencode({"q": q, "conversation": conversation})
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(e.read().decode()) from None

    _no_conversation_cannot_confirm(get)


def test_rest_query_without_conversation_shares_no_confirmation(dialog):
    """``voice serve``'s process_query: fails when no conversation meant the project's key."""
    from clara_stream.voice.service import VoiceContext, create_app
    from fastapi.testclient import TestClient

    client = TestClient(base_url="http://127.0.0.1", app=create_app(VoiceContext(dialog)))

    def get(q: str, conversation: str) -> dict:
        r = client.get("/liver/process_query", params={"query": q, "conversation": conversation})
        if r.status_code != 200:
            raise AssertionError(r.text)
        return r.json()

    _no_conversation_cannot_confirm(get)


@pytest.fixture()
def riva_small(voice_peers):
    from clara_stream.voice.riva_server import serve

    server, port = serve("127.0.0.1", 0, labels=PHANTOM, workers=2, stream_s=5.0)
    yield grpc.insecure_channel(f"127.0.0.1:{port}")
    server.stop(None)


def test_riva_streams_end_at_the_limit_and_excess_calls_are_refused(riva_small, utterances):
    """Two streams that go quiet (TTS after one text, ASR after the audio, no end) hold both workers:
    a third call is refused at once with RESOURCE_EXHAUSTED (was queued until its deadline), and both
    streams are ended with DEADLINE_EXCEEDED naming the server's 5 s limit (were held forever)."""
    from riva.client.proto import riva_asr_pb2 as rasr
    from riva.client.proto import riva_asr_pb2_grpc as rasr_grpc
    from riva.client.proto import riva_tts_pb2 as rtts
    from riva.client.proto import riva_tts_pb2_grpc as rtts_grpc

    done = threading.Event()
    tts, asr = rtts_grpc.RivaSpeechSynthesisStub(riva_small), rasr_grpc.RivaSpeechRecognitionStub(riva_small)
    clip = read_wav(_clip(utterances, "zoom in"))
    cfg = rasr.RecognitionConfig(sample_rate_hertz=16000)
    assert asr.Recognize(rasr.RecognizeRequest(config=cfg, audio=clip.tobytes()), timeout=120).results  # builds one

    def quiet(first: list):
        yield from first
        done.wait(60)  # the client goes quiet; released when the test ends

    streaming = rasr.StreamingRecognitionConfig(config=cfg, interim_results=True)
    audio = [rasr.StreamingRecognizeRequest(audio_content=c) for c in chunks(clip)]
    hear = asr.StreamingRecognize(quiet([rasr.StreamingRecognizeRequest(streaming_config=streaming), *audio]),
                                  timeout=60)  # fmt: skip
    speak = tts.SynthesizeOnline(quiet([rtts.SynthesizeSpeechRequest(text="next slice", sample_rate_hz=16000)]),
                                 timeout=60)  # fmt: skip
    try:
        assert next(hear).results and len(next(speak).audio) > 0  # both calls are running on the server
        with pytest.raises(grpc.RpcError) as refused:
            tts.Synthesize(rtts.SynthesizeSpeechRequest(text="yes"), timeout=20)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        for stream in (speak, hear):
            with pytest.raises(grpc.RpcError) as ended:
                list(stream)
            assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value
            assert "expected a stream to end within 5 s" in ended.value.details()
    finally:
        done.set()


def test_riva_synthesize_online_caps_its_requests(riva_small, monkeypatch):
    """More texts than MAX_TTS_REQUESTS in one SynthesizeOnline call: RESOURCE_EXHAUSTED naming the cap
    (was: any number, each a synthesis)."""
    from clara_stream.voice import riva_server
    from riva.client.proto import riva_tts_pb2 as rtts
    from riva.client.proto import riva_tts_pb2_grpc as rtts_grpc

    monkeypatch.setattr(riva_server, "MAX_TTS_REQUESTS", 2)
    stub = rtts_grpc.RivaSpeechSynthesisStub(riva_small)
    texts = (rtts.SynthesizeSpeechRequest(text=t, sample_rate_hz=16000) for t in ("yes", "no", "cancel"))
    with pytest.raises(grpc.RpcError) as e:
        list(stub.SynthesizeOnline(texts, timeout=60))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 2 requests" in e.value.details()
