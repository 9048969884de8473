"""Zero-shot dialog manager: text → intent (sentence embeddings + margin) → slots → command + reply.

Matching is nearest-example cosine similarity over the catalogue's phrasings (MiniLM, numpy): an
intent whose best example scores under ``threshold``, or within ``margin`` of a different intent,
is refused ("I did not understand") rather than guessed. Intents whose required slots are filled
are preferred over close ones that lack them ("show the coronal view" is not ``show_label``).
Destructive intents (``confirm: true``) wait for "yes" in the same conversation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from clara_stream.voice import slots as S
from clara_stream.voice.catalogue import Catalogue, Intent, load
from clara_stream.voice.commands import build

MAX_QUERY_CHARS = 300
MAX_CONVERSATIONS = 256
#: Embeddings of recent (masked) queries kept: the pipeline asks about the same text up to three
#: times per utterance (n-best check, the answer, "cancel"), and each encode is the costly step.
MAX_CACHED_QUERIES = 256
NOT_UNDERSTOOD = "Sorry, I did not understand. Try a command such as zoom in, axial view or hide the ribs."
LABEL, MASK = "<label>", "organ"  # the catalogue's placeholder and what it (and a said label) is embedded as
#: Weight of word overlap with an example (hybrid dense + sparse: "zoom in a lot" shares "in", not "out")
#: and bonus per specific slot the words fill ("an oblique slice" names a view: set_view, not next_slice).
#: Bonus per cue (at most two) of an intent that the words hold (embeddings barely tell "forward" from "back",
#: "bigger" from "smaller", "only" from "again": opposite intents score alike on them).
LEXICAL, SLOT_BONUS, CUE_BONUS = 0.15, 0.1, 0.1
NEGATION, ASK_GAP = 0.1, 0.1
SPECIFIC = ("direction", "view", "preset", "label")  # slots whose words point at an intent
SLOT_NAMES = {"direction": "a direction", "view": "a view", "preset": "a window preset", "label": "a label"}


@dataclass
class Result:
    """What one query became; ``to_json()`` is the REST shape."""

    query: str
    intent: str | None
    confidence: float
    slots: dict[str, Any] = field(default_factory=dict)
    command: list[dict[str, Any]] = field(default_factory=list)
    reply: str = NOT_UNDERSTOOD
    understood: bool = False
    pending_confirmation: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DialogManager:
    """Map queries to intents of ``catalogue`` (thread-safe; one pending confirmation per conversation).

    Parameters
    ----------
    catalogue : Catalogue, optional
        Default: the packaged ``intents.yaml``.
    encoder : object with ``encode(list[str]) -> (n, d) unit vectors``, optional
        Default: the packaged MiniLM (:func:`clara_stream.voice.embed.default_encoder`).
    threshold : float
        Lowest cosine similarity accepted (0..1).
    margin : float
        Least lead of the best intent over the best different one.
    """

    def __init__(self, catalogue: Catalogue | None = None, encoder=None, threshold: float = 0.5,
                 margin: float = 0.02) -> None:  # fmt: skip
        if not 0.0 < threshold < 1.0 or not 0.0 <= margin < 0.5:
            raise ValueError(
                f"DialogManager: expected 0 < threshold < 1 and 0 <= margin < 0.5; got {threshold}, {margin}"
            )
        if encoder is None:
            from clara_stream.voice.embed import default_encoder

            encoder = default_encoder()
        self.catalogue = catalogue or load()
        self.encoder = encoder
        self.threshold, self.margin = float(threshold), float(margin)
        self._owner = np.array([i for i, it in enumerate(self.catalogue.intents) for _ in it.examples])
        self._examples = encoder.encode([e.replace(LABEL, MASK) for it in self.catalogue.intents for e in it.examples])
        self._example_words = [
            set(S.words(e.replace(LABEL, MASK))) for it in self.catalogue.intents for e in it.examples
        ]
        refuse = self.catalogue.refuse
        self._refuse = encoder.encode(list(refuse)) if refuse else np.zeros((0, self._examples.shape[1]), np.float32)
        self._pending: OrderedDict[str, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def scores(self, query: str, labels: Sequence[tuple[int, str]] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Per intent: (best cosine similarity of ``query`` to its examples, ranking score = that
        cosine + word overlap with the example). Fillers and carrier phrases ("uh", "could you",
        "please") are dropped and label names masked first."""
        masked = _masked(query, labels)
        said = set(S.words(masked))
        sims = self._examples @ self._embed(masked)
        overlap = np.array([len(said & ex) / len(ex) if ex else 0.0 for ex in self._example_words], np.float32)
        cos = np.full(len(self.catalogue.intents), -1.0, np.float32)
        rank = cos.copy()
        np.maximum.at(cos, self._owner, sims)
        np.maximum.at(rank, self._owner, sims + LEXICAL * overlap)
        return cos, rank

    def clear_cache(self) -> None:
        """Forget cached query embeddings (benchmarks: every utterance pays for its encode)."""
        with self._cache_lock:
            self._cache.clear()

    def _embed(self, masked: str) -> np.ndarray:
        with self._cache_lock:
            if (v := self._cache.get(masked)) is not None:
                self._cache.move_to_end(masked)
                return v
        v = self.encoder.encode([masked])[0]
        with self._cache_lock:
            self._cache[masked] = v
            while len(self._cache) > MAX_CACHED_QUERIES:
                self._cache.popitem(last=False)
        return v

    def process(self, query: str, labels: Sequence[tuple[int, str]] = (), conversation: str = "") -> Result:
        """Understand ``query`` against the dataset's ``labels`` ((value, name) pairs).

        Raises
        ------
        ValueError
            If the query is empty or longer than ``MAX_QUERY_CHARS``.
        """
        if not isinstance(query, str):
            raise TypeError(f"dialog: expected the query as str; got {type(query).__name__}")
        text = " ".join(query.split())
        if not 0 < len(text) <= MAX_QUERY_CHARS:
            raise ValueError(f"dialog: expected a query of 1..{MAX_QUERY_CHARS} characters; got {len(text)}")
        intents = self.catalogue.intents
        said_ws = S.words(text)
        if S.only_fillers(said_ws):  # "um" alone embeds near "yes": it must never confirm anything
            return Result(text, None, 0.0)
        ws = S.rewrite(said_ws)
        if S.VIEW_VERB in ws:  # "reformat the image" names no view (else it was rewritten): ask for one
            view = next(it for it in intents if it.command == "set_view")
            return self._ask(Result(text, None, 0.0), view, ["view"], labels)
        cos, rank = self.scores(" ".join(ws), labels)
        filled = [self._slots(it, ws, labels) for it in intents]
        rank = rank + SLOT_BONUS * np.array([sum(1 for r in it.slots if r in SPECIFIC and f.get(r))
                                             for it, f in zip(intents, filled)], np.float32)  # fmt: skip
        said = set(ws) | {S.singular(w) for w in ws}
        rank = rank + CUE_BONUS * np.array([min(len(it.cues & said), 2) for it in intents], np.float32)
        # Embeddings barely feel the "not": a negated show verb ("I don't want to see the ribs") points
        # at hide; a negated hide verb ("don't hide the liver") rules hide out (its words and cue
        # would win it) and points at show.
        turned = S.negated_verb(ws)
        for i, it in enumerate(intents):
            if turned is True:
                rank[i] += {"show_label": -NEGATION, "hide_label": NEGATION}.get(it.command, 0.0)
            elif turned is False:
                rank[i] += {"show_label": NEGATION, "hide_label": -np.inf}.get(it.command, 0.0)
        order = [int(i) for i in np.argsort(-rank)]
        complete = [i for i in order if all(filled[i].get(r) for r in intents[i].required)]
        res = Result(text, None, round(float(cos[order[0]]), 4))
        cued = bool(intents[order[0]].cues & said)  # "tilt the volume up" is a rotation, not the speaker
        if cos[order[0]] < self.threshold or (not cued and self._refused(" ".join(ws), labels, float(cos.max()))):
            return res
        if not complete or rank[order[0]] - rank[complete[0]] > ASK_GAP:  # the best match lacks a slot
            top = intents[order[0]]
            return self._ask(res, top, [r for r in top.required if not filled[order[0]].get(r)], labels)
        best = complete[0]
        if intents[best].command == "confirm" and not S.confirms(said_ws):  # "hm", "so", "no yes"
            return res
        if intents[best].command == "scale_bar" and not S.SCALE_BAR & set(ws):  # "gray scale", "to scale"
            return res
        rivals = [float(rank[i]) for i in complete if intents[i].command != intents[best].command]
        res.confidence = round(float(cos[best]), 4)
        if cos[best] < self.threshold or rank[best] - max(rivals, default=-1.0) < self.margin:
            return res
        return self._answer(res, intents[best], filled[best], labels, conversation)

    def _refused(self, text: str, labels, best: float) -> bool:
        """Whether the query is nearer a catalogue ``refuse`` example (out of domain) than any command."""
        if not len(self._refuse):
            return False
        return float(np.max(self._refuse @ self._embed(_masked(text, labels)))) >= best

    def _ask(self, res: Result, it: Intent, missing: list[str], labels) -> Result:
        res.intent = it.name
        need = SLOT_NAMES.get(missing[0], missing[0]) if missing else "more detail"
        res.reply = f"I understood {it.name.replace('_', ' ')}, but I need {need}."
        if missing and missing[0] == "label":
            names = ", ".join(n for _, n in list(labels)[:8])
            res.reply += f" Labels here: {names}." if names else " This dataset has no labels."
        return res

    def _slots(self, it: Intent, ws: list[str], labels) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in it.slots:
            if s == "direction":
                v = S.direction(ws)
            elif s == "amount":
                v = S.number(ws)
                if (d := S.degree(ws)) is not None:
                    out["degree"] = d
                if "opaque" in ws and "more" in ws:
                    out["more_opaque"] = True
            elif s == "view":
                v = S.view(ws)
            elif s == "preset":
                v = S.preset(ws)
            elif s == "label":
                v = S.labels(ws, labels) or None
            else:
                v = S.state(ws)
            if v is not None:
                out[s] = v
        return out

    def _answer(self, res: Result, it: Intent, slots: dict[str, Any], labels, conversation: str) -> Result:
        res.intent, res.understood, res.slots = it.name, True, _public(slots)
        with self._lock:
            if it.command == "confirm":
                pending = self._pending.pop(conversation, None)
                if pending is None:
                    res.reply = "There is nothing to confirm."
                    return res
                res.command, res.reply, res.slots = pending.command, pending.reply, pending.slots
                return res
            if it.command == "cancel":
                res.reply = it.reply if self._pending.pop(conversation, None) else "There is nothing to cancel."
                return res
        res.command = build(it.command, slots, labels)
        res.reply = it.reply.format(**_spoken(slots))
        if it.confirm:
            with self._lock:
                self._pending[conversation] = Result(**{**res.to_json()})
                self._pending.move_to_end(conversation)
                while len(self._pending) > MAX_CONVERSATIONS:
                    self._pending.popitem(last=False)
            res.command, res.pending_confirmation = [], True
            res.reply = f"{res.reply.rstrip('.')}? Say yes to confirm or no to cancel."
        return res


def mask_labels(text: str, labels: Sequence[tuple[int, str]]) -> str:
    """``text`` with the words that name dataset labels replaced by one placeholder word, so "hide the
    liver" and the catalogue's "hide the <label>" embed alike whatever the organ (view and preset
    words are kept: "bone window" stays a window even when a label is called bone)."""
    ws = S.words(text)
    named = {w for _, n in S.labels(ws, labels) for w in S.words(n)}
    keep = set(S.VIEWS) | set(S.PRESETS)
    out: list[str] = []
    for w in ws:
        hit = (w in named or S.singular(w) in {S.singular(x) for x in named}) and w not in keep
        if not hit:
            out.append(w)
        elif not out or out[-1] != MASK:
            out.append(MASK)
    return " ".join(out)


def _masked(query: str, labels: Sequence[tuple[int, str]]) -> str:
    """What is embedded: the query's words without fillers and carrier phrases, label names masked."""
    return mask_labels(" ".join(S.content(S.words(query))), labels)


def _public(slots: dict[str, Any]) -> dict[str, Any]:
    out = dict(slots)
    if "label" in out:
        out["label"] = [{"value": v, "name": n} for v, n in out["label"]]
    if "preset" in out:
        out["preset"] = out["preset"][0]
    return out


def _spoken(slots: dict[str, Any]) -> dict[str, str]:
    p = _public(slots)
    names = [x["name"].replace("_", " ") for x in p.get("label", [])]
    label = names[0] if len(names) == 1 else (f"{len(names)} labels" if len(names) > 3 else " and ".join(names))
    view = {"composite": "volume", "mip": "maximum intensity projection"}.get(p.get("view", ""), p.get("view", ""))
    st = {True: "on", False: "off", None: "on"}[p.get("state")]
    return {"direction": p.get("direction", ""), "view": view, "preset": p.get("preset", ""), "label": label,
            "state": st, "amount": str(p.get("amount", ""))}  # fmt: skip
