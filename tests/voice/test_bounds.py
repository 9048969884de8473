"""Bounds of the free-form path and the services around it (review of this sitting's voice work):
whisper's 30 s window and token budget, the gateway's configured backend, and that REST decoding
runs off the event loop."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from clara_stream.voice.audio import SAMPLE_RATE, AudioInputError, to_wav


@pytest.fixture(scope="module")
def whisper(whisper_extra):
    """One WhisperASR with a long prompt (the model is loaded once per process and shared)."""
    from clara_stream.voice.whisper import WhisperASR, vocabulary_prompt

    return WhisperASR(prompt=vocabulary_prompt(labels=[(i, f"organ_{i}") for i in range(1, 44)]))


def test_whisper_rejects_audio_past_its_window(whisper):
    """31 s of audio was cut to 30 s silently (MAX_SECONDS is 60); now a clear error naming the rule.
    The hybrid's escalation gives no whisper opinion there instead of half of one."""
    from clara_stream.voice.whisper import HybridASR

    long = (np.random.default_rng(7).normal(0, 300, 31 * SAMPLE_RATE)).astype("<i2")
    with pytest.raises(AudioInputError, match=r"whisper: expected at most 30 s of audio; got 31.0 s"):
        whisper.hypotheses(long)
    hybrid = HybridASR.__new__(HybridASR)  # the escalation alone: no pocketsphinx decoders needed
    hybrid.whisper = whisper
    assert hybrid.escalate(long) == [] and hybrid.escalate(long.tobytes()) == []


def test_whisper_token_budget_is_prompt_plus_64(whisper):
    """``max_length`` was 448 whatever the prompt (a repetition loop ran to the context's end)."""
    from clara_stream.voice.whisper import CONTEXT, WhisperASR

    assert whisper.max_length == len(whisper.start) + 64 < CONTEXT
    assert WhisperASR().max_length == len(WhisperASR().start) + 64


def test_gateway_uses_the_configured_backend(monkeypatch):
    """The gateway built ``auto`` whatever was configured; now ``$CLARA_STREAM_VOICE_ASR`` (or
    ``mount(backend=…)``) names it, and an unknown or unusable one is refused by name."""
    from clara_stream.voice import web
    from clara_stream.voice.asr import PocketSphinxASR
    from fastapi import FastAPI

    built: list = []
    real = web._Engines
    monkeypatch.setattr(web, "_Engines", lambda *a: built.append(real(*a)) or built[-1])
    monkeypatch.setenv(web.BACKEND_ENV, "pocketsphinx")
    web.mount(FastAPI(), None, lambda r: None, lambda s: None)
    asr, _ = built[-1].asr([(1, "liver")])
    assert built[-1].backend == "pocketsphinx" and type(asr) is PocketSphinxASR
    for bad in ("riva", "wav2vec"):
        with pytest.raises(ValueError, match=f"expected a gateway ASR backend in .*; got '{bad}'"):
            web.mount(FastAPI(), None, lambda r: None, lambda s: None, backend=bad)


def test_rest_transcribe_leaves_the_event_loop_free(dialog):
    """While one upload is being decoded, a typed query on the same server is answered: the decoder
    waits (in its thread) until that query's answer came back, which can only happen if the event
    loop is free. ``hear`` ran on the loop before: the query could not be served and the decoder's
    wait ran out (the test fails, it does not hang)."""
    import httpx
    from clara_stream.voice.service import VoiceContext, create_app

    answered, waited = threading.Event(), []

    class Waiting:
        alternatives: list[str] = []

        def transcribe(self, samples) -> str:
            waited.append(answered.wait(timeout=30))
            return "zoom in"

    ctx = VoiceContext(dialog)
    ctx.asr = lambda labels: (Waiting(), threading.Lock())
    wav = to_wav((np.random.default_rng(3).normal(0, 3000, SAMPLE_RATE)).astype("<i2"), SAMPLE_RATE)

    async def both() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:  # a loopback Host
            upload = asyncio.create_task(c.post("/p/transcribe", content=wav))
            query = await c.get("/p/process_query", params={"query": "pan left"})
            answered.set()
            return await upload, query

    upload, query = asyncio.run(both())
    assert query.status_code == 200 and query.json()["intent"] == "pan"
    assert waited == [True] and upload.status_code == 200 and upload.json()["intent"] == "zoom_in"


TOTALSEG = """spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right
adrenal_gland_left lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right
lung_lower_lobe_right esophagus trachea thyroid_gland small_bowel duodenum colon urinary_bladder prostate sacrum
vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 vertebrae_T12 heart aorta pulmonary_vein
brachiocephalic_trunk subclavian_artery_right subclavian_artery_left common_carotid_artery_right superior_vena_cava
inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left iliac_artery_right rib_left_1 rib_right_1""".split()


def test_prompt_keeps_the_command_words_with_43_labels(whisper):
    """The prompt kept its LAST 223 tokens with the label names last: on a 43-label dataset the
    command words were cut. Now names come first (deduplicated, capped) and the first example of
    every intent survives the cut. Checked on the decoded tokens the decoder is given."""
    from clara_stream.voice.catalogue import load
    from clara_stream.voice.whisper import MAX_PROMPT_TOKENS, WhisperASR, vocabulary_prompt

    labels = list(enumerate(TOTALSEG * 2, start=1))  # repeated names: deduplicated
    assert len(set(TOTALSEG)) == 43
    asr = WhisperASR(prompt=vocabulary_prompt(labels=labels))
    tk = asr.tokenizer
    given = asr.start[1 : asr.start.index(tk.sot_sequence[0])]
    kept = tk.decode(given)
    assert len(given) <= MAX_PROMPT_TOKENS and kept.count("kidney right") == 1
    firsts = [it.examples[0].replace("<label>", "spleen") for it in load().intents]
    assert [e for e in firsts if e not in kept] == [], kept
    for words in ("zoom in", "pan left", "lung window", "next slice"):
        assert words in kept, words
