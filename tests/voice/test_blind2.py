"""The second blind held-out set (``heldout_blind2.yaml``): DEVELOPMENT DATA since its first run.

It was the gate of issue 14 once the first blind set had become development data: written
(commit 4c41215) before any run and before any change made for it. Its first and only blind run,
2026-12-01 18:57 UTC on commit 1800b3a (16 typed and 4 out-of-domain lines left out as repeats of
catalogue or development lines: 141 typed, 50 spoken, 14 out-of-domain scored): typed 127/141 =
90.1 % (bar 95 %: missed), out-of-domain 13/14, spoken 23/50 = 46 % (bar 90 %: missed), and too
few out-of-domain lines once repeats were left out (14 < 15, a flaw of the set).

Its failures have been seen and worked on since (clinician rewrites, the filler rule, audio refuse
examples, the hybrid spoken path), so these tests are regression tests on development data, not
gates; the gate is ``test_blind3.py``. Figures after that work (2026-12-01, this sitting): typed
141/141, out-of-domain 14/14, spoken through the default pocketsphinx path 24/50 (strict xfail),
through the hybrid path (pocketsphinx + whisper tiny.en) 44/50 and 45/50 in two runs (at the bar;
a plain test that it gains on pocketsphinx).
"""

from __future__ import annotations

import pytest

DEV = ("paraphrases.yaml", "heldout_blind.yaml", "dev_phrasings.yaml")  # the dev sets when blind2 was written


@pytest.fixture(scope="module")
def blind2(heldout) -> dict:
    return heldout.load("heldout_blind2.yaml", DEV)


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


def test_blind2_typed_accuracy(dialog, blind2, intent_matches):
    """≥ 95 % typed, right intent and every expected slot (dev regression: 141/141 after this
    sitting's rewrites; 127/141 at the blind run)."""
    misses = [c[:3] for i, c in enumerate(blind2["cases"])
              if not intent_matches(dialog.process(c[0], blind2["labels"], f"b2t{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(blind2["cases"]), (len(blind2["cases"]) - len(misses), misses)


def test_blind2_out_of_domain_is_refused(dialog, blind2):
    """Every out-of-domain line refused (dev regression; "increase the volume of the speaker" was
    rotate at the blind run)."""
    accepted = [(q, r.intent) for q in blind2["unknown"] if (r := dialog.process(q, blind2["labels"])).understood]
    assert not accepted, accepted


@pytest.fixture(scope="module")
def clips(blind2, speech, heldout, tmp_path_factory):
    return heldout.clips(blind2, tmp_path_factory.mktemp("blind2"))


@pytest.fixture(scope="module")
def spoken(blind2, dialog, clips, heldout) -> dict:
    """Misses of both spoken paths on the same clips, cold (the hybrid only with the whisper extra)."""
    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.whisper import HybridASR, available

    labels = blind2["labels"]
    out = {"pocketsphinx": heldout.misses(PocketSphinxASR(labels=labels), dialog, clips, labels, "b2s")}
    if available():
        out["hybrid"] = heldout.misses(HybridASR(labels=labels), dialog, clips, labels, "b2h")
    return out


@pytest.mark.xfail(strict=True, reason="grammar recogniser on free phrasings: 23/50 at the blind run, 24/50 now "
                   "(bar 90 %)")  # fmt: skip
def test_blind2_spoken_accuracy(spoken, clips):
    """≥ 90 % of the spoken subset through the default recogniser (pocketsphinx) from a cold start."""
    misses = spoken["pocketsphinx"]
    assert len(misses) <= 0.1 * len(clips), (len(clips) - len(misses), len(clips), misses)


def test_blind2_hybrid_understands_free_phrasings_pocketsphinx_cannot(spoken, clips, whisper_extra):
    """The hybrid path (pocketsphinx, whisper where its decoders disagree) on the same clips: at
    least 10 more understood than pocketsphinx alone and at least 80 %. Measured 44/50 and 45/50
    in two runs (the 90 % bar sits between them: whisper's int8 beam is not bit-repeatable here),
    pocketsphinx 24/50. Fails if whisper is never asked, asked without its prompt, or overruled."""
    gained = len(spoken["pocketsphinx"]) - len(spoken["hybrid"])
    assert gained >= 10 and len(spoken["hybrid"]) <= 0.2 * len(clips), (gained, spoken["hybrid"])
