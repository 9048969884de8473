"""The third blind held-out set (``heldout_blind3.yaml``): the gate of issue 14 since the second
blind set became development data. Written and committed alone (23637b8; one slot spelling fixed
in 364319c, no line changed) before any run and before any change of that sitting, from the
issue's commands and from how clinicians talk at a viewer. Lines equal to a catalogue example or
refuse line, or to a line of a development set, are left out (rule and counts fixed before the
run: 42 typed and 8 out-of-domain repeats). Bars: ≥ 95 % typed, ≥ 90 % spoken (four espeak-ng
voices no other test or the calibration uses, pink noise at 10 dB SNR, from a cold start),
out-of-domain refused. The spoken bar is scored on both paths: the default (pocketsphinx alone,
what runs without the whisper extra) and the hybrid (``auto`` with the extra installed).

First and only run: 2026-12-01 21:44 UTC on commit bbecd37 (everything of that sitting committed;
146 typed lines scored, 62 spoken, 22 out-of-domain, 50 repeats left out, as counted when written):

- typed 146: **125/146 = 85.6 %** (bar 95 %: missed). Misses by class: verbs and idioms no rule
  knows ("go in tighter", "solo the vena cava", "ghost the left adrenal", "put the calipers on",
  "reveal", "back to square one" → previous_slice; "blow up the picture": the rewrite to "enlarge"
  left "up" behind), adjective forms of view and window words ("lateral view", "pulmonary",
  "skeletal", "abdominal" windows), indirect requests ("I'm too close" → zoom_in, "I need it more
  to the left" → rotate), "go deeper by four slices" → previous_slice, "no more thyroid" → show,
  "zoom into the duodenum" → show_label, confirmations ("confirmed", "yes that's fine") refused.
- out-of-domain: **22/22 refused** (met).
- spoken, default path (pocketsphinx alone): **22/62 = 35.5 %** (bar 90 %: missed). The grammar
  and trigram decoders put the new phrasings and label names together wrongly ("turn off the
  trachea" → "tilt it left a").
- spoken, hybrid path (auto with the whisper extra): **32/62 = 51.6 %** (bar 90 %: missed). Whisper
  tiny.en mishears these voices in noise ("fade the trachea" → "Stay in the trachea.") and, where
  both pocketsphinx decoders agree, they agree on the wrong command too. One whisper-only confirm
  ("go in tighter" → "Let's go enjoy it.") led to a rule made after the run (whisper alone never
  confirms, 70b8ac3); it can only turn a confirm into something else, and the set
  was not run again.

Rules made after the run, from a review of that sitting (none tuned on this set's lines, the figures
above are the first run's and are not re-scored): a cancel heard anywhere beats whisper's yes and a
confirm needs a confirm word (141cecc) — these post-run safety rules can only turn a confirm into
something else; a lone "scale" needs an on/off verb, "reformat" a view word, refusal is scored on
the rewritten words, and whisper's prompt puts label names first (7608fda, bbadff3) — these are not
confirm-only and may move counts either way, which the strict xfails would show on a pass.

The missed bars are strict xfails: each run reports them, and a run fails the day one passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
DEV = ("paraphrases.yaml", "heldout_blind.yaml", "dev_phrasings.yaml", "heldout_blind2.yaml")


@pytest.fixture(scope="module")
def blind3(heldout) -> dict:
    return heldout.load("heldout_blind3.yaml", DEV)


def test_blind3_is_large_enough_new_and_covers_every_intent(blind3, speech):
    """≥ 130 typed (≥ 50 spoken) and ≥ 20 out-of-domain lines after the repeat rule, every intent, voices
    and labels nothing else uses. The repeat counts are those of the commit that wrote the set: a
    catalogue or development line copied from it later changes them and fails here."""
    import yaml
    from clara_stream.voice.calibrate import CALIBRATION_VOICES
    from clara_stream.voice.catalogue import load

    cases = [c[0].lower() for c in blind3["cases"]]
    assert len(cases) >= 130 and len(set(cases)) == len(cases)
    assert sum(c[3:] == ["spoken"] for c in blind3["cases"]) >= 50 and len(blind3["unknown"]) >= 20
    assert len(blind3["repeats"]) == 42 + 8, blind3["repeats"]
    assert {c[1] for c in blind3["cases"]} == set(load().names)
    earlier = [yaml.safe_load((HERE / n).read_text()) for n in DEV]
    in_use = {v[0] for v in (*CALIBRATION_VOICES, *speech.voices, *(v for d in earlier for v in d.get("voices", [])))}
    assert not {v[0] for v in blind3["voices"]} & in_use
    old_labels = {n for d in earlier for n in d["labels"].values()}
    assert not {n for _, n in blind3["labels"]} & old_labels


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed, first blind3 run: typed 125/146 = 85.6 % (bar 95 %)")
def test_blind3_typed_accuracy(dialog, blind3, intent_matches):
    """≥ 95 % typed: right intent and every expected slot."""
    misses = [c[:3] for i, c in enumerate(blind3["cases"])
              if not intent_matches(dialog.process(c[0], blind3["labels"], f"b3t{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(blind3["cases"]), (len(blind3["cases"]) - len(misses), misses)


def test_blind3_out_of_domain_is_refused(dialog, blind3):
    """Every out-of-domain line refused (first run: 22/22)."""
    accepted = [(q, r.intent) for q in blind3["unknown"] if (r := dialog.process(q, blind3["labels"])).understood]
    assert not accepted, accepted


@pytest.fixture(scope="module")
def clips(blind3, speech, heldout, tmp_path_factory):
    return heldout.clips(blind3, tmp_path_factory.mktemp("blind3"))


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed, first blind3 run: spoken 22/62 = 35.5 % on the "
                   "default pocketsphinx path (bar 90 %)")  # fmt: skip
def test_blind3_spoken_accuracy_default(blind3, dialog, clips, heldout):
    """≥ 90 % of the spoken subset through the default recogniser (pocketsphinx), cold."""
    from clara_stream.voice.asr import PocketSphinxASR

    misses = heldout.misses(PocketSphinxASR(labels=blind3["labels"]), dialog, clips, blind3["labels"], "b3s")
    assert len(misses) <= 0.1 * len(clips), (len(clips) - len(misses), len(clips), misses)


@pytest.mark.xfail(strict=True, reason="issue 14 gate missed, first blind3 run: spoken 32/62 = 51.6 % on the "
                   "hybrid path (bar 90 %)")  # fmt: skip
def test_blind3_spoken_accuracy_hybrid(blind3, dialog, clips, heldout, whisper_extra):
    """≥ 90 % of the spoken subset through the hybrid path (auto with the whisper extra), cold."""
    from clara_stream.voice.whisper import HybridASR

    misses = heldout.misses(HybridASR(labels=blind3["labels"]), dialog, clips, blind3["labels"], "b3h")
    assert len(misses) <= 0.1 * len(clips), (len(clips) - len(misses), len(clips), misses)
