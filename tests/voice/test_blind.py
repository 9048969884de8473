"""The blind held-out set (``heldout_blind.yaml``): 109 typed phrasings and a 37-line spoken subset,
written before anything ran against them, in wording apart from the catalogue and from
``paraphrases.yaml``. The gate: ≥ 95 % typed, ≥ 90 % spoken (espeak-ng voices, pink noise at
10 dB SNR, the default grammar recogniser, cold and order-independent); out-of-domain refused.

First run (2026-12-01, commit fc81327, nothing changed since with this set in view): typed
92/109 = 84.4 % (bar 95 %: missed; 15/15 out-of-domain refused), spoken 18/37 = 48.6 % (bar 90 %:
missed). Typed misses are paraphrases far from every example ("scale it up", "display it
sagittally", "hide all but the lesion" → hide_label, "jump forward five slices" → previous_slice);
spoken misses are mostly phrasings outside the grammar, which the recogniser forces onto the
nearest catalogue sentence ("zoom in on this" → "move it up eight"). Both gates are kept, marked
strict xfail: they report the miss every run and fail loudly the day they pass. The catalogue must
not be tuned against these lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def blind() -> dict:
    data = yaml.safe_load((Path(__file__).parent / "heldout_blind.yaml").read_text())
    data["labels"] = [(int(k), v) for k, v in data["labels"].items()]
    return data


def test_blind_set_is_new_and_covers_every_intent(blind, paraphrases):
    from clara_stream.voice.catalogue import load

    examples = {e.lower() for it in load().intents for e in it.examples}
    seen = {c[0].lower() for c in paraphrases["cases"]} | {q.lower() for q in paraphrases["unknown"]}
    cases = [c[0].lower() for c in blind["cases"]]
    assert len(cases) >= 100 and len(set(cases)) == len(cases)
    assert not (examples | seen) & (set(cases) | {q.lower() for q in blind["unknown"]})
    assert {c[1] for c in blind["cases"]} == set(load().names)


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed on the first blind run: typed 92/109 = 84.4 % (bar 95 %)")
def test_blind_typed_accuracy(dialog, blind, intent_matches):
    """≥ 95 % typed: right intent and every expected slot."""
    misses = [c[:3] for i, c in enumerate(blind["cases"])
              if not intent_matches(dialog.process(c[0], blind["labels"], f"blind{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(blind["cases"]), misses


def test_blind_out_of_domain_is_refused(dialog, blind):
    for query in blind["unknown"]:
        r = dialog.process(query, blind["labels"])
        assert not r.understood and r.command == [], (query, r.intent)


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed on the first blind run: spoken 18/37 = 48.6 % (bar 90 %)")
def test_blind_spoken_accuracy(blind, dialog, speech, tmp_path, intent_matches):
    """≥ 90 % of the spoken subset, each line in the next of the four test voices with pink noise at
    10 dB SNR, through the default grammar recogniser: right intent and slots."""
    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.audio import read_wav
    from clara_stream.voice.pipeline import understand

    asr = PocketSphinxASR(labels=blind["labels"])
    spoken = [c for c in blind["cases"] if c[3:] == ["spoken"]]
    misses = []
    for i, (query, intent, slots, _) in enumerate(spoken):
        clean = speech.synthesize(query, tmp_path / f"b{i}.wav", speech.voices[i % len(speech.voices)])
        noisy = speech.mix_noise(clean, tmp_path / f"b{i}.noisy.wav", 10.0)
        text, r = understand(asr, dialog, read_wav(noisy), blind["labels"], conversation=f"spoken{i}")
        if not intent_matches(r, intent, slots):
            misses.append((query, text, r.intent if r else None))
    assert len(misses) <= 0.1 * len(spoken), (len(spoken) - len(misses), len(spoken), misses)
