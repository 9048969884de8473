"""The first blind held-out set (``heldout_blind.yaml``), now DEVELOPMENT data: 109 typed phrasings
and a 37-line spoken subset, written before anything ran against them. Its first run (2026-12-01,
commit fc81327) missed both gates: typed 92/109 = 84.4 %, spoken 18/37 = 48.6 % (15/15
out-of-domain refused). Its failures were then seen and the dialog manager and recogniser improved
with them in view (catalogue cues, fillers, refuse examples, the free trigram decoder), so it no
longer measures generalisation: these are regression tests on development data, bars unchanged.
The gate is now ``heldout_blind3.yaml`` (``test_blind3.py``; blind2 became development data too).

On development data after those changes: typed 107/109, then 109/109 after the clinician rewrites
(bar met, plain test); spoken 20/37 = 54 % on the default pocketsphinx path (bar 90 %: still
missed, strict xfail: it fails loudly the day it passes); the hybrid path (not a test here, to keep
the suite short) understood 31/37 of the same clips.
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


def test_blind_typed_accuracy(dialog, blind, intent_matches):
    """≥ 95 % typed: right intent and every expected slot (dev data: 92/109 before the cues and
    carrier handling, 107/109 after; fails if the cue bonus or the filler stripping is dropped)."""
    misses = [c[:3] for i, c in enumerate(blind["cases"])
              if not intent_matches(dialog.process(c[0], blind["labels"], f"blind{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(blind["cases"]), misses


def test_blind_out_of_domain_is_refused(dialog, blind):
    for query in blind["unknown"]:
        r = dialog.process(query, blind["labels"])
        assert not r.understood and r.command == [], (query, r.intent)


@pytest.mark.xfail(strict=True, reason="issue 14 bar missed on this (now development) set: spoken 20/37 = 54 % "
                   "(first blind run 18/37); bar 90 %")  # fmt: skip
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
