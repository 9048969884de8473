"""``voice riva-serve`` (Riva's own servicers over the embedded engines) ↔ the Riva client backends:
streaming ASR with interim results, offline Recognize, TTS round trip, bad configs, the token."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from clara_stream.voice.audio import chunks, read_wav


@pytest.fixture(scope="module")
def riva_uri(services, voice_peers):
    proc, info = services.start(["voice", "riva-serve", "--port", "0", "--label", "body", "--label", "ribs",
                                 "--label", "lesion"], services.tmp / "riva.json")  # fmt: skip
    yield info["grpc"]
    services.stop(proc)


def _clip(utterances, text):
    return read_wav(next(u for u in utterances if u.text == text).noisy)


def test_streaming_asr_through_the_riva_client(riva_uri, utterances, dialog):
    """Riva's streaming protocol end to end: interim results, then one final that is what the engine
    behind it hears (checked against the same engine in-process) and means the command said."""
    from clara_stream.voice.asr import PocketSphinxASR, RivaASR

    asr = RivaASR(riva_uri, boost=["coronal", "ribs"])
    local = PocketSphinxASR(labels=[(1, "body"), (2, "ribs"), (3, "lesion")])
    for text, intent in (("show the coronal view", "set_view"), ("next slice", "next_slice")):
        clip = _clip(utterances, text)
        out = list(asr.stream(chunks(clip)))
        assert [t.final for t in out].count(True) == 1 and out[-1].final and len(out) > 1
        assert out[-1].text == local.transcribe(clip)
        assert dialog.process(out[-1].text).intent == intent, out[-1].text


def test_offline_recognize_and_bad_config(riva_uri, utterances):
    import riva.client

    auth = riva.client.Auth(uri=riva_uri)
    service = riva.client.ASRService(auth)
    cfg = riva.client.RecognitionConfig(encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000,
                                        language_code="en-US", audio_channel_count=1)  # fmt: skip
    clip = _clip(utterances, "show the coronal view")
    resp = service.offline_recognize(clip.tobytes(), cfg)
    assert resp.results[0].alternatives[0].transcript.startswith("show the coronal")
    cfg.sample_rate_hertz = 8000
    with pytest.raises(grpc.RpcError) as e:
        service.offline_recognize(b"\x00\x01" * 800, cfg)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "16000; got 8000" in e.value.details()


def test_tts_round_trip(riva_uri, tmp_path, voice_peers):
    """Riva TTS at 22.05 kHz carries espeak-ng's speech unchanged: sample for sample what the espeak-ng
    CLI writes itself (en-us, 160 wpm, pitch 50: the server's voice); streamed in several parts."""
    import subprocess
    import wave

    from clara_stream.voice.tts import RivaTTS

    samples, rate = RivaTTS(riva_uri).synthesize("hide the lesion")
    ref = tmp_path / "ref.wav"
    subprocess.run([str(voice_peers[0]), "-v", "en-us", "-s", "160", "-p", "50", "-w", str(ref), "hide the lesion"],
                   check=True)  # fmt: skip
    with wave.open(str(ref)) as w:
        assert w.getframerate() == rate == 22050
        expected = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    np.testing.assert_array_equal(samples, expected)
    import riva.client

    tts = riva.client.SpeechSynthesisService(riva.client.Auth(uri=riva_uri))
    parts = list(tts.synthesize_online("next slice", language_code="en-US", sample_rate_hz=16000))
    assert len(parts) > 1 and sum(len(p.audio) for p in parts) > 16000  # streamed, over half a second


def test_token_and_binding_rules():
    import riva.client
    from clara_stream.voice.riva_server import serve

    with pytest.raises(ValueError, match="expected a token when listening beyond loopback"):
        serve("0.0.0.0", 0)
    server, port = serve("127.0.0.1", 0, token="s3cret")
    try:
        plain = riva.client.SpeechSynthesisService(riva.client.Auth(uri=f"127.0.0.1:{port}"))
        with pytest.raises(grpc.RpcError) as e:
            plain.synthesize("yes", language_code="en-US")
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        auth = riva.client.Auth(uri=f"127.0.0.1:{port}", metadata_args=[["authorization", "Bearer s3cret"]])
        assert len(riva.client.SpeechSynthesisService(auth).synthesize("yes", language_code="en-US").audio) > 1000
    finally:
        server.stop(None)


def test_doctor_checks_a_riva_server(riva_uri, utterances):
    """`clara-stream doctor --riva-uri`: Riva's ASR hears a spoken command and its TTS speaks."""
    from clara_stream.voice import health

    speech = read_wav(next(u for u in utterances if u.text == health.PHRASE).clean)
    rows = {name: (ok, detail) for name, ok, detail in health.riva(riva_uri, speech)}
    ok, detail = rows["voice asr riva"]
    assert ok and "heard 'zoom in'" in detail, detail
    ok, detail = rows["voice tts riva"]
    assert ok and "22050 Hz" in detail, detail
