"""Dialog manager: held-out paraphrase accuracy, refusal of unknown requests, slots, confirmation,
bad queries; the numpy MiniLM encoder against sentence-transformers (torch) as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from clara_stream.voice.catalogue import load, parse


def _labels(p: dict) -> list[tuple[int, str]]:
    return [(int(k), v) for k, v in p["labels"].items()]


def test_encoder_matches_sentence_transformers():
    """Independent oracle: the reference torch implementation of the same weights. Fails if the mask,
    the pooling, GELU, the LayerNorm epsilon or a head split is wrong (cosine would drop below 0.999)."""
    st = pytest.importorskip("sentence_transformers", reason="oracle: sentence-transformers (torch)")
    from clara_stream.voice.embed import MiniLMEncoder, model_dir

    texts = ["zoom in", "could you please hide the left kidney and the spleen", "what is the weather", "MIP"]
    ours = MiniLMEncoder().encode(texts)  # padded batch of unequal lengths: the mask matters
    ref = st.SentenceTransformer(str(model_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_held_out_set_is_separate(paraphrases):
    examples = {e.lower() for it in load().intents for e in it.examples}
    cases = [c[0].lower() for c in paraphrases["cases"]]
    assert len(cases) >= 100 and len(set(cases)) == len(cases)
    assert not examples & set(cases)
    assert {c[1] for c in paraphrases["cases"]} == set(load().names)  # every intent is tested


def test_typed_accuracy_and_slots(dialog, paraphrases, intent_matches):
    """≥ 95 % of held-out typed paraphrases become the right intent, with the expected slots."""
    labels = _labels(paraphrases)
    right, misses = 0, []
    for i, (query, intent, slots) in enumerate(paraphrases["cases"]):
        r = dialog.process(query, labels, conversation=f"typed{i}")
        got = intent_matches(r, intent, slots)
        right += got
        if not got:
            misses.append((query, r.intent, r.slots))
    assert right / len(paraphrases["cases"]) >= 0.95, misses


def test_unknown_requests_are_refused(dialog, paraphrases):
    for query in paraphrases["unknown"]:
        r = dialog.process(query, _labels(paraphrases))
        assert not r.understood and r.command == [] and "did not understand" in r.reply, (query, r)


def test_label_words_and_groups(dialog):
    """ "remove ribs" hides every rib label; "left kidney" only kidney_left; an absent organ is asked about."""
    labels = [(1, "liver"), (10, "rib_left_1"), (11, "rib_right_1"), (20, "kidney_left"), (21, "kidney_right")]
    r = dialog.process("remove ribs", labels)
    assert r.command == [{"type": "label", "value": 10, "hidden": True}, {"type": "label", "value": 11, "hidden": True}]
    r = dialog.process("hide the left kidney", labels)
    assert [m["value"] for m in r.command] == [20]
    r = dialog.process("show only the liver", labels)
    assert {m["value"]: m["hidden"] for m in r.command} == {1: False, 10: True, 11: True, 20: True, 21: True}
    r = dialog.process("hide the spleen", labels)
    assert not r.understood and r.command == [] and r.intent == "hide_label" and "liver" in r.reply


def test_amounts_and_directions(dialog):
    assert dialog.process("zoom in a lot").command == [{"type": "zoom", "factor": 2.0}]
    assert dialog.process("zoom out").command == [{"type": "zoom", "factor": pytest.approx(1 / 1.5)}]
    assert dialog.process("pan up").command == [{"type": "pan", "dx": 0.0, "dy": -80.0}]
    assert dialog.process("go back five slices").command == [{"type": "scroll", "delta": -5}]
    assert dialog.process("skip ahead twenty two slices").command == [{"type": "scroll", "delta": 22}]
    assert dialog.process("lung window").command == [{"type": "set", "window_center": -600.0, "window_width": 1500.0}]
    r = dialog.process("set the liver opacity to 30 percent", [(4, "liver")])
    assert r.command == [{"type": "label", "value": 4, "opacity": 0.3}]


def test_destructive_action_waits_for_confirmation(dialog):
    r = dialog.process("reset the view", conversation="a")
    assert r.intent == "reset" and r.pending_confirmation and r.command == []
    assert dialog.process("yes", conversation="b").command == []  # another conversation confirms nothing
    assert dialog.process("yes", conversation="a").command == [{"type": "reset"}]
    assert dialog.process("yes", conversation="a").command == []  # confirmed once
    dialog.process("start over", conversation="c")
    assert dialog.process("never mind", conversation="c").reply == "Cancelled."
    assert dialog.process("yes", conversation="c").command == []


@pytest.mark.parametrize("query", ["", "   ", "zoom " * 2000])
def test_bad_queries_are_named(dialog, query):
    with pytest.raises(ValueError, match="expected a query of 1..300 characters"):
        dialog.process(query)


def test_catalogue_rules():
    good = {"intents": {"a": {"examples": ["x y", "y z"], "command": "reset", "reply": "ok"}}}
    assert parse(good).names == ["a"]
    bad = [
        ({"examples": ["one"], "command": "reset", "reply": "r"}, "at least 2"),
        ({"examples": ["p", "q"], "command": "explode", "reply": "r"}, "a command from"),
        ({"examples": ["p", "q"], "command": "pan", "slots": ["colour"], "reply": "r"}, "slots from"),
        ({"examples": ["p", "q"], "command": "pan", "slots": [], "required": ["direction"], "reply": "r"}, "required"),
        ({"examples": ["p", "q"], "command": "pan", "slots": ["direction"], "reply": "to {view}"}, "placeholders"),
    ]
    for spec, rule in bad:
        with pytest.raises(ValueError, match=rule):
            parse({"intents": {"b": spec}})


def test_query_embeddings_are_reused_and_bounded(monkeypatch):
    """One utterance through ``resolve`` (n-best check, answer, scratch cancel) encodes its text once,
    the same answers come back from the cache, and the cache stays bounded. Fails if each of the
    three dialog calls pays for its own encode (what made the dialog stage the slowest one)."""
    from clara_stream.voice import dialog as D
    from clara_stream.voice.embed import default_encoder
    from clara_stream.voice.pipeline import resolve

    class Counting:  # the real encoder, counting the queries it is asked to embed
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def encode(self, texts):
            self.seen += list(texts)
            return self.inner.encode(texts)

    enc = Counting(default_encoder())
    dm = D.DialogManager(encoder=enc)
    enc.seen.clear()
    labels = [(3, "lesion")]
    first = resolve(dm, ["hide the lesion"], labels, "c1")
    assert sorted(enc.seen) == sorted([D.mask_labels("hide the lesion", labels), "cancel"])
    again = resolve(dm, ["hide the lesion"], labels, "c2")
    assert enc.seen.count(D.mask_labels("hide the lesion", labels)) == 1 and first[1].command == again[1].command
    monkeypatch.setattr(D, "MAX_CACHED_QUERIES", 2)
    for q in ("zoom in", "pan left", "next slice"):
        dm.process(q)
    assert len(dm._cache) == 2
