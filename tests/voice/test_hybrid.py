"""The hybrid spoken path (pocketsphinx, and faster-whisper tiny.en where its two decoders disagree):
the escalation rule and its safety on text, whisper's vocabulary prompt and the hybrid's accuracy
on real noisy clips (development data: the 44 cold clips of conftest.SPOKEN)."""

from __future__ import annotations

import pytest
from clara_stream.voice.audio import read_wav

PHANTOM = [(1, "body"), (2, "ribs"), (3, "lesion")]
#: Clips the vocabulary prompt must win by (of 22; whisper's int8 beam is not bit-repeatable here).
MARGIN = 3


class _Counted:
    def __init__(self, heard: list[str]) -> None:
        self.heard, self.calls = heard, 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return self.heard


def test_whisper_is_asked_only_when_the_decoders_disagree(dialog):
    """Both decoders meaning one intent: their words, whisper never asked (the fast path). They
    disagree, one heard nothing, or one is not understood: whisper's first understood transcript.
    Fails if the agreement check is dropped (whisper always asked) or ignored (never asked)."""
    from clara_stream.voice.pipeline import choose

    for pair in [("zoom in", "zoom in please"), ("pan left", "pan left")]:
        w = _Counted(["rotate to the right"])
        assert choose(dialog, [pair[0], pair[1]], PHANTOM, escalate=w, pair=pair) == pair[0]
        assert w.calls == 0, pair
    for pair in [("tilt it left", "pan left"), ("", "pan left"), ("move we off", "zoom out")]:
        w = _Counted(["the weather in paris", "push the image left"])
        assert choose(dialog, [p for p in pair if p], PHANTOM, escalate=w, pair=pair) == "push the image left"
        assert w.calls == 1, pair
    # whisper understood nothing: the pocketsphinx choice stands
    assert choose(dialog, ["pan left", "tilt it left"], PHANTOM, escalate=_Counted(["the weather in paris"]),
                  pair=("pan left", "tilt it left")) == "pan left"  # fmt: skip


def test_whisper_yes_never_confirms_alone(dialog):
    """A pending reset; pocketsphinx heard "no" (or "zoom in", or nothing understood) and whisper
    "yes": the reset is not done ("no" cancels it, "zoom in" is acted on instead, nothing at all
    otherwise). Whisper's "yes" confirms only beside a pocketsphinx candidate that confirms. Fails
    without ``_never_confirms_alone``."""
    from clara_stream.voice.pipeline import resolve

    for heard, want in [(["no", "zoom in"], "cancel"), (["zoom in", "pan left"], "zoom_in")]:
        conv = f"hy-{heard[0]}"
        assert dialog.process("reset the view", PHANTOM, conv).pending_confirmation
        text, res = resolve(dialog, heard, PHANTOM, conv, escalate=_Counted(["yes"]), pair=tuple(heard))
        assert res.intent == want and "reset" not in str(res.command), (heard, text, res)
    conv = "hy-alone"
    dialog.process("reset the view", PHANTOM, conv)
    text, res = resolve(dialog, ["the weather in paris"], PHANTOM, conv, escalate=_Counted(["yes"]),
                        pair=("the weather in paris", ""))
    assert not res.understood and not res.command, (text, res)
    text, res = resolve(dialog, ["the weather in paris", "yes"], PHANTOM, conv, escalate=_Counted(["yes please"]),
                        pair=("the weather in paris", "yes"))  # fmt: skip
    assert (text, res.intent) == ("yes please", "confirm") and res.command


def test_vocabulary_prompt_brings_the_command_words(whisper_extra, utterances, dialog):
    """Whisper with the catalogue and label names as its previous text understands more of the noisy
    command clips than without (measured on development clips: blind1 11/37 → 26/37; on these 22
    clips plain 13, primed 21 at 22:46 UTC 2026-12-01, names-first prompt). Asserted by ``MARGIN``
    clips: the beam is not bit-repeatable. Fails if the prompt is not passed to the decoder or is
    built empty."""
    from clara_stream.voice.whisper import WhisperASR, vocabulary_prompt

    prompt = vocabulary_prompt(labels=PHANTOM)
    assert "lung window" in prompt and "lesion" in prompt and "<label>" not in prompt
    clips = utterances[::2]  # one voice per command: 22 noisy clips
    plain, primed = WhisperASR(), WhisperASR(prompt=prompt)
    assert plain.start != primed.start
    score = {}
    for name, asr in (("plain", plain), ("primed", primed)):
        hits = [dialog.process(asr.transcribe(read_wav(u.noisy))[:300] or "-", PHANTOM).intent == u.intent
                for u in clips]  # fmt: skip
        score[name] = sum(hits)
    print(f"vocabulary prompt on {len(clips)} noisy clips: {score}")
    assert score["primed"] >= score["plain"] + MARGIN, score


@pytest.fixture(scope="module")
def hybrid_cold(whisper_extra, utterances, dialog) -> tuple[list, list]:
    """The hybrid from a cold start through the 44 noisy clips: (said, heard, intent) of each miss,
    and the clips whisper was asked on."""
    from clara_stream.voice.pipeline import understand
    from clara_stream.voice.whisper import HybridASR

    asr, misses, asked = HybridASR(labels=PHANTOM), [], []
    ask = asr.escalate
    for i, u in enumerate(utterances):
        asr.escalate = lambda samples, said=u.text: asked.append(said) or ask(samples)
        text, r = understand(asr, dialog, read_wav(u.noisy), PHANTOM, conversation=f"hyb{i}")
        if not (r is not None and r.understood and r.intent == u.intent):
            misses.append((u.text, text, r.intent if r else None))
    return misses, asked


def test_hybrid_cold_noisy_commands(hybrid_cold, utterances):
    """The 44 noisy command clips (development data) through the hybrid: measured 40/44 = 90.9 % in
    two runs, as pocketsphinx alone (these grammar phrasings are its strength; whisper gains on free
    phrasings, see test_blind2). Asserted ≥ 85 %: whisper's int8 beam is not bit-repeatable here,
    and one clip is the margin of the 90 % bar. Fails if the escalation breaks the commands
    pocketsphinx's decoders agree on, or if whisper is never asked (no clip escalated)."""
    misses, asked = hybrid_cold
    assert len(misses) <= 0.15 * len(utterances), misses
    assert asked, "whisper was asked on no clip: the hybrid path is not exercised"


def test_auto_is_pocketsphinx_without_the_whisper_extra(monkeypatch, whisper_extra):
    """``auto`` (gateway, REST, CLI) is the hybrid with the extra and plain pocketsphinx without it
    (the extra's absence simulated: it is installed here). Fails if ``auto`` ignores the extra."""
    from clara_stream.voice import whisper
    from clara_stream.voice.asr import PocketSphinxASR, make

    assert isinstance(make("auto", PHANTOM), whisper.HybridASR)
    monkeypatch.setattr(whisper, "available", lambda: False)
    asr = make("auto", PHANTOM)
    assert type(asr) is PocketSphinxASR and not hasattr(asr, "escalate")


def test_auto_falls_back_when_the_whisper_model_fails_to_load(monkeypatch, tmp_path, caplog, whisper_extra):
    """The extra installed but its model corrupt (a real failing CTranslate2 load of a garbage
    model.bin): ``auto`` logs one line naming the rule and the cause and serves pocketsphinx, where
    it raised before (taking down gateway, REST and CLI); ``hybrid`` asked by name still raises."""
    from clara_stream.voice.asr import PocketSphinxASR, make

    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("CLARA_STREAM_WHISPER_MODEL", str(tmp_path))
    with caplog.at_level("WARNING", logger="clara_stream.voice.asr"):
        asr = make("auto", PHANTOM)
    assert type(asr) is PocketSphinxASR and asr.transcribe(b"\0\0" * 1600) is not None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "expected auto's whisper extra to load" in lines[0] and "RuntimeError" in lines[0]
    with pytest.raises(RuntimeError):
        make("hybrid", PHANTOM)
