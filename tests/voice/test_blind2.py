"""The second blind held-out set (``heldout_blind2.yaml``): the gate of issue 14 once the first blind
set had been run and became development data. Written (commit 4c41215) before any run and before
any change made for it, from the issue's commands and from how clinicians talk at a viewer.
Lines equal to a catalogue example or a line of a development set measure nothing new: they are
left out of the score (the rule was set before the run). Bars: ≥ 95 % typed, ≥ 90 % spoken (four
espeak-ng voices neither the calibration nor any other test uses, pink noise at 10 dB SNR, the
default recogniser, cold); out-of-domain refused.

First and only run, 2026-12-01 18:57 UTC, on commit 1800b3a (the dialog manager and recogniser
as improved on development data; nothing changed since with this set's results in view): 16 typed
lines and 4 out-of-domain lines repeat a catalogue or development line and are left out, leaving
141 typed (50 spoken) and 14 out-of-domain.
- typed 127/141 = 90.1 % (bar 95 %: missed). Misses: synonyms no rule knows ("front view",
  "side view", "reformat", "mediastinal window", "rewind", "scratch that", "a couple"),
  indirect requests ("pull back so I can see everything" → reset, "put a scale on the image" →
  zoom_in), unknown verbs ("scoot", "blow it up a little"), refusals near the threshold.
- out-of-domain 13/14 refused ("increase the volume of the speaker" → rotate: missed).
- spoken 23/50 = 46 % (bar 90 %: missed): phrasings the grammar and its trigram model cannot
  put together come out as other commands ("reset everything please" → "advance a slice eight
  please"), and short lines are misheard in noise.
- too few out-of-domain lines once repeats are left out (14 < 15), a flaw of the set itself.
The missed bars are strict xfails: each run reports them, and a run fails the day one passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent


def _load(name: str) -> dict:
    return yaml.safe_load((HERE / name).read_text())


@pytest.fixture(scope="module")
def blind2() -> dict:
    from clara_stream.voice.catalogue import load

    data = _load("heldout_blind2.yaml")
    data["labels"] = [(int(k), v) for k, v in data["labels"].items()]
    cat = load()
    seen = {e.lower() for it in cat.intents for e in it.examples} | {e.lower() for e in cat.refuse}
    for name in ("paraphrases.yaml", "heldout_blind.yaml", "dev_phrasings.yaml"):
        dev = _load(name)
        seen |= {c[0].lower() for c in dev["cases"]} | {q.lower() for q in dev.get("unknown", [])}
    data["repeats"] = [c[0] for c in data["cases"] if c[0].lower() in seen]
    data["repeats"] += [q for q in data["unknown"] if q.lower() in seen]
    data["cases"] = [c for c in data["cases"] if c[0].lower() not in seen]
    data["unknown"] = [q for q in data["unknown"] if q.lower() not in seen]
    return data


def test_blind2_is_large_enough_and_covers_every_intent(blind2, speech):
    from clara_stream.voice.calibrate import CALIBRATION_VOICES
    from clara_stream.voice.catalogue import load

    cases = [c[0].lower() for c in blind2["cases"]]
    assert len(cases) >= 120 and len(set(cases)) == len(cases), (len(cases), blind2["repeats"])
    assert sum(c[3:] == ["spoken"] for c in blind2["cases"]) >= 40
    assert {c[1] for c in blind2["cases"]} == set(load().names)
    in_use = {v[0] for v in (*CALIBRATION_VOICES, *speech.voices)}
    assert not {v[0] for v in blind2["voices"]} & in_use  # not even the same voice at another speed


@pytest.mark.xfail(strict=True, reason="blind2 written with 18 out-of-domain lines, 4 of them repeats of dev lines: "
                   "14 left (< 15)")  # fmt: skip
def test_blind2_has_enough_out_of_domain_lines(blind2):
    assert len(blind2["unknown"]) >= 15, (blind2["unknown"], blind2["repeats"])


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed, first blind2 run: typed 127/141 = 90.1 % (bar 95 %)")
def test_blind2_typed_accuracy(dialog, blind2, intent_matches):
    """≥ 95 % typed: right intent and every expected slot."""
    misses = [c[:3] for i, c in enumerate(blind2["cases"])
              if not intent_matches(dialog.process(c[0], blind2["labels"], f"b2t{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(blind2["cases"]), (len(blind2["cases"]) - len(misses), misses)


@pytest.mark.xfail(strict=True, reason="first blind2 run: 13/14 refused ('increase the volume of the speaker' "
                   "became rotate)")  # fmt: skip
def test_blind2_out_of_domain_is_refused(dialog, blind2):
    accepted = [(q, r.intent) for q in blind2["unknown"] if (r := dialog.process(q, blind2["labels"])).understood]
    assert not accepted, accepted


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed on the first blind2 run: spoken 23/50 = 46 % (bar 90 %)")
def test_blind2_spoken_accuracy(blind2, dialog, speech, tmp_path, intent_matches):
    """≥ 90 % of the spoken subset, line i in voices[i % 4] with pink noise at 10 dB SNR, through the
    default recogniser from a cold start: right intent and slots."""
    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.audio import read_wav
    from clara_stream.voice.pipeline import understand

    asr, voices = PocketSphinxASR(labels=blind2["labels"]), [tuple(v) for v in blind2["voices"]]
    spoken = [c for c in blind2["cases"] if c[3:] == ["spoken"]]
    misses = []
    for i, (query, intent, slots, _) in enumerate(spoken):
        clean = speech.synthesize(query, tmp_path / f"b{i}.wav", voices[i % len(voices)])
        noisy = speech.mix_noise(clean, tmp_path / f"b{i}.noisy.wav", 10.0)
        text, r = understand(asr, dialog, read_wav(noisy), blind2["labels"], conversation=f"b2s{i}")
        if not intent_matches(r, intent, slots):
            misses.append((query, text, r.intent if r else None))
    assert len(misses) <= 0.1 * len(spoken), (len(spoken) - len(misses), len(spoken), misses)
