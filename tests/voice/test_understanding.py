"""Generalisation machinery of issue 14: carrier phrases, cues, refusal examples, negated on/off,
the complete-sentence check, the trigram model sampled from the grammar, the noise floor and the
runner-up rule. Each test names the wrong code it catches."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from clara_stream.voice import slots as S
from clara_stream.voice.catalogue import load, parse

HERE = Path(__file__).parent
PHANTOM = [(1, "body"), (2, "ribs"), (3, "lesion")]


@pytest.fixture(scope="module")
def dev() -> dict:
    data = yaml.safe_load((HERE / "dev_phrasings.yaml").read_text())
    data["labels"] = [(int(k), v) for k, v in data["labels"].items()]
    return data


def test_dev_phrasings_typed_and_refused(dialog, dev, intent_matches):
    """Development phrasings (fillers, politeness, plurals, multi-word labels): ≥ 95 % typed, every
    out-of-domain line refused (61/63 and 15/15 when written down; "turn the music down" was
    mapped to rotate before the refuse examples)."""
    misses = [c[:3] for i, c in enumerate(dev["cases"])
              if not intent_matches(dialog.process(c[0], dev["labels"], f"dev{i}"), c[1], c[2])]  # fmt: skip
    assert len(misses) <= 0.05 * len(dev["cases"]), misses
    accepted = [q for q in dev["unknown"] if dialog.process(q, dev["labels"]).understood]
    assert not accepted, accepted


def test_fillers_and_carriers_are_dropped_not_words_of_the_command():
    """Fails if a lead is stripped from the middle, or if nothing is left for a bare "please"."""
    assert S.content(S.words("um could you zoom in for me please")) == ["zoom", "in"]
    assert S.content(S.words("I'd like to hide the liver")) == ["hide", "the", "liver"]
    assert S.content(S.words("show me what you could do")) == S.words("show me what you could do")
    assert S.content(S.words("please")) == ["please"]


def test_negation_turns_on_off_round():
    """Fails if the negation is ignored ("I don't need the scale bar" would turn it on)."""
    assert S.state(S.words("I don't need the scale bar")) is False
    assert S.state(S.words("don't hide the scale bar")) is True
    assert S.state(S.words("get rid of the scale bar")) is False
    assert S.state(S.words("scale bar")) is None


def test_cues_and_refuse_examples_change_the_answer(dialog):
    """The same manager without cues maps "jump forward five slices" to previous_slice (the nearest
    example is "go back five slices"), and without refuse examples maps "turn the music down" to
    rotate; with them both are right. Fails if either mechanism is unplugged."""
    from clara_stream.voice.dialog import DialogManager

    bare = load()
    bare = replace(bare, intents=tuple(replace(it, cues=frozenset()) for it in bare.intents), refuse=())
    plain = DialogManager(bare, encoder=dialog.encoder)
    assert plain.process("jump forward five slices").intent == "previous_slice"
    assert plain.process("turn the music down").understood
    r = dialog.process("jump forward five slices")
    assert (r.intent, r.slots.get("amount")) == ("next_slice", 5.0)
    assert not dialog.process("turn the music down").understood


def test_bad_cues_and_refuse_examples_are_refused_by_name():
    spec = {"intents": {"zoom_in": {"examples": ["zoom in", "closer"], "command": "zoom_in", "reply": "Zoom.",
                                    "cues": ["zoom in"]}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"cues as single lower-case words.*zoom_in"):
        parse(spec)
    spec["intents"]["zoom_in"]["cues"] = ["zoom"]
    with pytest.raises(ValueError, match="refuse examples"):
        parse({**spec, "refuse": ["closer"]})
    assert parse({**spec, "refuse": ["play a song"]}).refuse == ("play a song",)


def test_grammar_accepts_whole_sentences_only():
    """Fails if partial paths pass ("show the body and"), if carriers are not part of the grammar,
    or if a slice count is allowed after zoom."""
    from clara_stream.voice import grammar as G

    g = G.build(load(), PHANTOM)
    for said in ("zoom in", "uh could you zoom in please", "let's hide the ribs for me", "go back five slices",
                 "set the body opacity to fifty percent", "rotate the three d view"):  # fmt: skip
        assert g.accepts(said), said
    for said in ("show the body and", "zoom out five slices", "hide the", "please", "rotate the three view"):
        assert not g.accepts(said), said


def test_language_model_is_a_normalised_trigram_of_the_sentences():
    """Independent arithmetic: for "a b" / "a c" the bigram P(b | a) is (1 - D) / 2, and for every
    context the back-off distribution over the vocabulary sums to 1. Fails if the discount, the
    back-off weights or the log base is wrong."""
    from clara_stream.voice import lm

    text = lm.arpa([["a", "b"], ["a", "c"], ["b"]], discount=0.5)
    grams: dict[tuple, tuple[float, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and _number(parts[0]):
            n = 3 if "3-grams" in _section(text, line) else 2 if "2-grams" in _section(text, line) else 1
            words = tuple(parts[1 : 1 + n])
            grams[words] = (10 ** float(parts[0]), 10 ** float(parts[1 + n]) if len(parts) > 1 + n else 1.0)
    assert math.isclose(grams[("a", "b")][0], 0.25, rel_tol=1e-3)
    vocab = [g[0] for g in grams if len(g) == 1 and g[0] != "<s>"]

    def p(h: tuple, w: str) -> float:
        if (*h, w) in grams:
            return grams[(*h, w)][0]
        return grams.get(h, (0.0, 1.0))[1] * p(h[1:], w) if h else grams[(w,)][0]

    for h in [("<s>",), ("a",), ("<s>", "a"), ("b",)]:
        assert math.isclose(sum(p(h, w) for w in vocab), 1.0, rel_tol=2e-3), h
    with pytest.raises(ValueError, match="sentences"):
        lm.arpa([])


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _section(text: str, line: str) -> str:
    head = text[: text.index(line)]
    return head[head.rindex("\\") - 8 :]


def test_sampled_sentences_are_sentences_of_the_grammar():
    """The sampler (a tree walk) and ``accepts`` (a regular expression) are two readings of the same
    rules: every sampled sentence must be accepted. Fails if either mis-reads optionals or refs."""
    from clara_stream.voice import grammar as G
    from clara_stream.voice import lm

    g = G.build(load(), PHANTOM)
    one = lm.sampler(g.rules, seed=3, optional=0.5, carriers={"filler": 0.5, "lead": 0.5, "tail": 0.5})
    for _ in range(300):
        s = " ".join(one())
        assert g.accepts(s), s


def test_noise_floor_is_repeatable_and_at_its_level(voice_peers):
    """numpy oracle: zeros come back with RMS ≈ FLOOR_RMS; the same again after a restart. Fails if
    the generator is not restarted per utterance (transcripts would depend on order)."""
    from clara_stream.voice.asr import FLOOR_RMS, PocketSphinxASR

    asr = PocketSphinxASR(labels=PHANTOM, language_model=False)
    asr.reset_floor()
    a = np.frombuffer(asr.floored(bytes(32000)), "<i2")
    asr.reset_floor()
    b = np.frombuffer(asr.floored(bytes(32000)), "<i2")
    assert np.array_equal(a, b) and abs(np.sqrt(np.mean(a.astype(float) ** 2)) - FLOOR_RMS) < 0.5


def test_runner_up_wins_a_disagreement_only_when_surer(dialog):
    """Two different understood intents: the more confident wins even as runner-up; the same sentence
    twice (one recogniser's best and n-best) never swaps. Fails if the rule is dropped or inverted."""
    from clara_stream.voice.pipeline import choose

    weak, strong = "uh turn the body", "hide the ribs"
    assert dialog.process(weak, PHANTOM).understood
    assert dialog.process(strong, PHANTOM).confidence > dialog.process(weak, PHANTOM).confidence
    assert choose(dialog, [weak, strong], PHANTOM) == strong
    assert choose(dialog, [strong, weak], PHANTOM) == strong
    assert choose(dialog, [weak, weak, strong], PHANTOM) == weak


def test_a_disagreement_about_yes_or_no_never_confirms(dialog):
    """"yes" and "no" are both exact examples (confidence 1.0 each): the old tie rule promoted the
    runner-up, so "no" heard by one decoder and "yes" by the other confirmed the pending reset. Fails
    if a tie swaps, if a confirm beats a cancel in either order, or if a destructive runner-up is
    promoted."""
    from clara_stream.voice.pipeline import choose, resolve

    for heard in (["no", "yes"], ["yes", "no"]):
        conv = f"reset-{heard[0]}"
        assert dialog.process("reset the view", PHANTOM, conv).pending_confirmation
        text, res = resolve(dialog, heard, PHANTOM, conv)
        assert (text, res.intent, res.command) == ("no", "cancel", []), heard
        assert dialog.process("yes", PHANTOM, conv).reply == "There is nothing to confirm."
    assert dialog.process("zoom in").confidence == dialog.process("zoom out").confidence
    assert choose(dialog, ["zoom in", "zoom out"]) == "zoom in"
    assert choose(dialog, ["zoom in", "reset"]) == "zoom in"
    assert choose(dialog, ["yes", "zoom in"]) == "zoom in"


def test_without_is_off_once_not_flipped_back_on():
    """"without" was both an off word and a negation, so "work without the scale bar" came out on.
    Fails if it is counted twice, or if it outvotes an explicit on ("turn on … without delay")."""
    assert S.state(S.words("work without the scale bar")) is False
    assert S.state(S.words("turn on measuring without delay")) is True
    assert S.state(S.words("don't work without the scale bar")) is True


def test_a_negated_hide_verb_does_not_hide(dialog):
    """Any negation used to favour hide_label, and the hide cue too, so "don't hide the liver" hid it.
    A negated show verb still means hide. Fails if the negated verb is not told apart."""
    labels = [(1, "liver"), (2, "ribs"), (3, "spleen")]
    for q in ("don't hide the liver", "do not remove the liver", "please don't get rid of the liver",
              "never turn off the liver"):  # fmt: skip
        r = dialog.process(q, labels)
        assert r.intent != "hide_label" and not any(m.get("hidden") for m in r.command), (q, r.intent)
    for q in ("I don't want to see the liver", "don't show the liver"):
        r = dialog.process(q, labels)
        assert (r.intent, r.command) == ("hide_label", [{"type": "label", "value": 1, "hidden": True}]), q
    assert S.negated_verb(S.words("don't hide the liver")) is False
    assert S.negated_verb(S.words("I don't want to see the ribs")) is True
    assert S.negated_verb(S.words("hide the liver")) is None


def test_clinician_words_are_rewritten_to_the_catalogues(dialog, monkeypatch):
    """Development misses by class (blind2, paraphrases): unknown verbs, idioms, view and window
    synonyms, "a couple". Each line is right with ``S.rewrite`` and the new slot words, and each
    changes without them (fails if a rewrite or a slot word is taken out)."""
    labels = [(1, "liver"), (2, "ribs")]
    lines = {  # query: (intent, slot, value) with the mechanism; intent and slot value without it
        "scoot it over to the right": ("pan", "direction", "right"),
        "scratch that": ("cancel", None, None),
        "pull back": ("zoom_out", None, None),
        "rewind three slices": ("previous_slice", "amount", 3.0),
        "could you blow it up a little": ("zoom_in", "degree", "small"),
        "scale it down": ("zoom_out", None, None),
        "can you put a scale on the image": ("scale_bar", None, None),
        "side view please": ("set_view", "view", "sagittal"),
        "show me the front view": ("set_view", "view", "coronal"),
        "go to a mediastinal window": ("window_preset", "preset", "soft tissue"),
        "go back a couple of slices": ("previous_slice", "amount", 2.0),
    }

    def heard():
        dialog.clear_cache()
        return {q: (r.understood and r.intent, r.slots.get(s) if s else None)
                for q, (_, s, _) in lines.items() for r in [dialog.process(q, labels)]}  # fmt: skip

    assert heard() == {q: (i, v) for q, (i, _, v) in lines.items()}
    monkeypatch.setattr(S, "rewrite", list)
    for word, table in (("front", S.VIEWS), ("mediastinal", S.PRESETS), ("couple", S.NUMBERS)):
        monkeypatch.delitem(table, word)
    without = heard()
    changed = [q for q, (i, _, v) in lines.items() if without[q] != (i, v)]
    assert changed == list(lines), [q for q in lines if q not in changed]
    dialog.clear_cache()


def test_fillers_alone_never_confirm(dialog, monkeypatch):
    """"um", "uh", "hmm" alone embedded near "yes" and confirmed a pending reset (found this sitting).
    Fails if neither only_fillers nor confirms is checked (each alone holds the line): the reset
    stays pending through a hesitation."""
    conv = "filler-reset"
    assert dialog.process("reset the view", PHANTOM, conv).pending_confirmation
    for q in ("um", "uh", "hmm", "uh please"):
        r = dialog.process(q, PHANTOM, conv)
        assert not r.understood and not r.command, (q, r)
    assert dialog.process("yes", PHANTOM, conv).command  # still pending: the yes runs it
    monkeypatch.setattr(S, "only_fillers", lambda ws: False)
    monkeypatch.setattr(S, "confirms", lambda ws: True)
    dialog.clear_cache()
    dialog.process("reset the view", PHANTOM, conv)
    assert dialog.process("um", PHANTOM, conv).intent == "confirm"
    dialog.clear_cache()


def test_speaker_volume_is_refused_not_a_rotation():
    """"increase the volume of the speaker" (blind2, development now) became rotate ("volume" is a
    render word); the audio refuse examples make it refused. Fails without them."""
    from clara_stream.voice.dialog import DialogManager

    q = "increase the volume of the speaker"
    cat = load()
    audio = ("make the sound louder", "turn the speaker down", "mute the audio", "turn up the volume",
             "turn down the volume", "raise the volume", "lower the volume")
    assert set(audio) <= set(cat.refuse)
    assert not DialogManager(cat).process(q).understood
    assert DialogManager(replace(cat, refuse=tuple(e for e in cat.refuse if e not in audio))).process(q).understood
