"""Slot filling from text: direction, amount, view, window preset, on/off state and label names.

Plain rules over lower-cased words (the intent is chosen by embeddings; slots are words the user
said). Label names come from the dataset: ``kidney_left`` matches "left kidney"; a word of a name
("rib") matches every label containing it ("remove ribs" hides ``rib_left_1`` … ``rib_right_12``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
DIRECTIONS = {
    "left": "left", "right": "right", "up": "up", "upward": "up", "upwards": "up", "down": "down",
    "downward": "down", "downwards": "down", "leftward": "left", "rightward": "right",
}  # fmt: skip
#: view word → render mode name (``clara_stream.render`` ViewMode names).
VIEWS = {
    "axial": "axial", "transverse": "axial", "coronal": "coronal", "frontal": "coronal", "sagittal": "sagittal",
    "sagittally": "sagittal", "axially": "axial", "coronally": "coronal", "front": "coronal",
    "oblique": "oblique", "mip": "mip", "maximum": "mip", "projection": "mip", "volume": "composite",
    "3d": "composite", "three": "composite", "cinematic": "composite", "rendering": "composite",
}  # fmt: skip
#: preset words → (name, window centre HU, window width HU): the usual CT windows.
PRESETS = {
    "soft": ("soft tissue", 40.0, 400.0), "tissue": ("soft tissue", 40.0, 400.0),
    "abdomen": ("soft tissue", 40.0, 400.0), "lung": ("lung", -600.0, 1500.0), "lungs": ("lung", -600.0, 1500.0),
    "bone": ("bone", 400.0, 1800.0), "bones": ("bone", 400.0, 1800.0), "skeleton": ("bone", 400.0, 1800.0),
    "mediastinal": ("soft tissue", 40.0, 400.0), "mediastinum": ("soft tissue", 40.0, 400.0),
}  # fmt: skip
ON = {"on", "show", "start", "enable", "display", "activate", "begin", "want", "turn", "add", "put", "need", "give"}
OFF = {"off", "hide", "stop", "disable", "remove", "deactivate", "end", "exit", "leave", "rid", "no"}
#: "without X" is off for X, but only when no on/off verb is said ("measure without delay" is on), and
#: it negates no verb: kept out of OFF and NEGATIONS, so it is never counted twice (off, then flipped).
WITHOUT = "without"
#: Verbs (and what follows them) whose negation means hide ("don't want to see the ribs") or show
#: ("don't take away the liver"); the verb phrase after a negation ends at its object.
SHOW_VERBS = ON | {"see", "view", "visible", "look", "keep", "appear", "reappear", "unhide", "restore", "bring"}
HIDE_VERBS = OFF | {"away", "disappear", "invisible", "drop", "lose"}
OBJECT = {"the", "a", "an", "my", "this", "that", "these", "those", "it", "them", "any", "and", "but"}
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "twice": 2, "double": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "few": 3, "several": 3, "couple": 2,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
BIG = {"lot", "much", "far", "lots", "way", "greatly", "plenty"}
SMALL = {"little", "bit", "slightly", "tad", "touch", "slight", "fraction"}
#: Words of label names too generic to pick labels alone ("left" must not select every left organ).
GENERIC = {"left", "right", "upper", "lower", "middle", "inferior", "superior", "anterior", "posterior",
           "the", "of", "and", "a", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}  # fmt: skip


def words(text: str) -> list[str]:
    """Lower-case word tokens (``3d`` and ``2.5`` stay whole)."""
    return WORD.findall(text.lower().replace("-", " ").replace("_", " "))


def singular(w: str) -> str:
    """Crude English singular, enough for organ names (ribs→rib, kidneys→kidney, vertebrae→vertebra)."""
    if w.endswith("ae") and len(w) > 4:
        return w[:-1]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith("s") and not w.endswith("ss") and not w.endswith("us") and len(w) > 3:
        return w[:-1]
    return w


NEGATIONS = {"not", "don", "dont", "never", "doesn", "didn", "isn"}
#: Words said around a command that carry no command: hesitations and politeness (anywhere), and
#: carrier phrases at the start ("could you …", "I'd like to …", "let's …") or the end ("… for me").
FILLERS = {"uh", "um", "umm", "er", "erm", "hmm", "ah", "please", "thanks", "kindly"}
LEADS = (("can", "you"), ("could", "you"), ("would", "you"), ("will", "you"), ("can", "we"), ("could", "we"),
         ("i", "want", "to"), ("i", "d", "like", "to"), ("i", "would", "like", "to"), ("i", "need", "to"),
         ("let", "s"), ("let", "us"), ("go", "ahead", "and"), ("now",), ("ok", "so"), ("so",), ("and",))  # fmt: skip
TAILS = (("for", "me"), ("would", "you"), ("thank", "you"), ("if", "you", "can"), ("now",))


#: Words clinicians use that the catalogue's examples do not (development misses, by class): verbs
#: ("scoot", "blow it up", "rewind", "scale it up"), views and windows ("side view", "reformat"),
#: idioms ("scratch that", "pull back", "starting position"). ``"*"`` stands for at most two object
#: words (OBJECT, or "image"). Rewritten before embedding and slot filling; the query is kept as said.
REWRITES = (
    (("blow",), ("enlarge",)), (("scoot",), ("move",)), (("rewind",), ("go", "back")),
    (("scale", "*", "up"), ("zoom", "in")), (("scale", "*", "down"), ("zoom", "out")),
    (("pull", "back"), ("zoom", "out")), (("side", "view"), ("sagittal", "view")), (("reformat",), ("view",)),
    (("scratch", "that"), ("cancel",)), (("starting", "position"), ("original", "view")),
)  # fmt: skip
#: Rewrites that need a view word within ``NEAR`` words ("an oblique reformat", "reformat it sagittally";
#: "reformat the image" is no view and must not become "view the image" = zoom in).
NEEDS_VIEW, NEAR = {("reformat",)}, 3
#: Left by ``rewrite`` when no view word is near: the dialog asks which view.
VIEW_VERB = "reformat"
#: Words the scale bar must be named with (a lone "scale" after an on/off verb is rewritten to "scale bar").
SCALE_BAR = {"bar", "ruler"}
#: Verbs after which a lone "scale" is the scale bar ("put a scale on", "hide the scale"); without one
#: it is not ("gray scale", "the scale of this image", "to scale", "scale the window").
SCALE_VERBS = {"put", "show", "hide", "remove", "turn", "add", "display", "enable", "disable", "toggle",
               "switch", "drop", "lose", "rid"}  # fmt: skip


def rewrite(ws: Sequence[str]) -> list[str]:
    """``ws`` with every ``REWRITES`` phrase replaced by its canonical words, and a lone "scale" after
    an on/off verb read as "scale bar" ("put a scale on the image")."""
    out, i = [], 0
    while i < len(ws):
        for phrase, canon in REWRITES:
            n = _match(ws, i, phrase)
            if n and (phrase not in NEEDS_VIEW or any(w in VIEWS for w in ws[max(0, i - NEAR) : i + n + NEAR])):
                out += canon
                i += n
                break
        else:
            out.append(ws[i])
            i += 1
    return [x for j, w in enumerate(out) for x in ((w, "bar") if _lone_scale(out, j) else (w,))]


def _match(ws: Sequence[str], i: int, phrase: tuple[str, ...]) -> int:
    """Words of ``ws`` from ``i`` that ``phrase`` matches (0: no match)."""
    j = i
    for p in phrase:
        if p == "*":
            k = j
            while k < len(ws) and k - j < 2 and ws[k] in OBJECT | {"image"}:
                k += 1
            j = k
        else:
            if j >= len(ws) or ws[j] != p:
                return 0
            j += 1
    return j - i


def _lone_scale(ws: Sequence[str], j: int) -> bool:
    """A "scale" not followed by "bar", after an on/off verb and at most three object or on/off words."""
    if ws[j] != "scale" or (j + 1 < len(ws) and ws[j + 1] == "bar"):
        return False
    k = j - 1
    while k >= 0 and j - k <= 3 and ws[k] in OBJECT | {"on", "off", "of"}:
        k -= 1
    return k >= 0 and ws[k] in SCALE_VERBS


#: A hesitation of any length ("uhh", "hmmm", "mm", "errr", "ahh", "ohh"): never a command.
HESITATION = re.compile(r"^(u+h+|h+m+|m+|e+r+|a+h+|o+h+)$")
#: What a confirmation must hold (one word or phrase) and must not (a cancel word: "no yes" confirms
#: nothing). Embeddings put fillers ("hm", "so", "well", "right") next to "yes"; a reset must not run on them.
CONFIRM_WORDS = {"yes", "yeah", "yep", "yup", "confirm", "confirmed", "correct", "ok", "okay", "sure",
                 "proceed", "affirmative", "absolutely", "definitely"}  # fmt: skip
CONFIRM_PHRASES = (("do", "it"), ("go", "ahead"), ("please", "do"), ("that", "is", "right"), ("that", "s", "right"),
                   ("go", "for", "it"), ("sounds", "good"))  # fmt: skip
CANCEL_WORDS = {"no", "nope", "nah", "cancel", "stop", "abort", "never", "not", "don", "dont", "forget",
                "negative", "wait"}  # fmt: skip


def only_fillers(ws: Sequence[str]) -> bool:
    """Whether nothing but hesitations and politeness was said ("um", "uhh please"): no command."""
    return bool(ws) and all(w in FILLERS or HESITATION.match(w) for w in ws)


def confirms(ws: Sequence[str]) -> bool:
    """Whether the words say yes: a confirm word or phrase in what is left after fillers and carrier
    phrases ("ok so" is a carrier, not an ok), and no cancel word ("no yes")."""
    ws = [w for w in ws if w not in FILLERS and not HESITATION.match(w)]
    rest = content(ws) if len(ws) > 2 or tuple(ws) not in LEADS else []
    if any(w in CANCEL_WORDS for w in ws):
        return False
    joined = f" {' '.join(rest)} "
    return any(w in CONFIRM_WORDS for w in rest) or any(f" {' '.join(p)} " in joined for p in CONFIRM_PHRASES)


def negated(ws: Sequence[str]) -> bool:
    """Whether the words negate ("don't", "do not", "never")."""
    return any(w in NEGATIONS for w in ws)


def content(ws: Sequence[str]) -> list[str]:
    """``ws`` without fillers and carrier phrases (``ws`` itself if nothing else is left)."""
    out = [w for w in ws if w not in FILLERS]
    changed = True
    while changed:
        changed = False
        for lead in LEADS:
            if len(out) > len(lead) and tuple(out[: len(lead)]) == lead:
                out, changed = out[len(lead):], True
        for tail in TAILS:
            if len(out) > len(tail) and tuple(out[-len(tail):]) == tail:
                out, changed = out[: -len(tail)], True
    return out or list(ws)


def direction(ws: Sequence[str]) -> str | None:
    return next((DIRECTIONS[w] for w in ws if w in DIRECTIONS), None)


def view(ws: Sequence[str]) -> str | None:
    return next((VIEWS[w] for w in ws if w in VIEWS), None)


def preset(ws: Sequence[str]) -> tuple[str, float, float] | None:
    return next((PRESETS[w] for w in ws if w in PRESETS), None)


def negated_verb(ws: Sequence[str]) -> bool | None:
    """What the first negation negates: True for a show verb ("don't show", "don't want to see"),
    False for a hide verb ("don't hide", "never turn off": a hide word anywhere in the verb phrase
    wins), None without a negation or with neither (the phrase ends at its object: "the", "it" …)."""
    i = next((i for i, w in enumerate(ws) if w in NEGATIONS), None)
    if i is None:
        return None
    phrase: list[str] = []
    for w in ws[i + 1 : i + 6]:
        if w in OBJECT:
            break
        phrase.append(w)
    if any(w in HIDE_VERBS for w in phrase):
        return False
    return True if any(w in SHOW_VERBS for w in phrase) else None


def state(ws: Sequence[str]) -> bool | None:
    """On/off: an explicit ``off``/``hide``… wins over ``on``/``show``…, a negation turns it round
    ("I don't need the scale bar" is off); "without" alone is off ("work without the scale bar");
    None when neither is said."""
    said = next((v for words, v in ((OFF, False), (ON, True)) if any(w in words for w in ws)), None)
    if said is None and WITHOUT in ws:
        said = False
    return None if said is None else said != negated(ws)


def number(ws: Sequence[str]) -> float | None:
    """The first number said, as digits or words ("twenty five" → 25); None when none."""
    for i, w in enumerate(ws):
        try:
            return float(w)
        except ValueError:
            pass
        if w in NUMBERS and w not in ("a", "an"):
            v = NUMBERS[w]
            if v >= 20 and i + 1 < len(ws) and ws[i + 1] in NUMBERS and NUMBERS[ws[i + 1]] < 10:
                v += NUMBERS[ws[i + 1]]
            return float(v)
    return None


def degree(ws: Sequence[str]) -> str | None:
    """``big`` ("a lot"), ``small`` ("a little") or None."""
    if any(w in BIG for w in ws):
        return "big"
    if any(w in SMALL for w in ws):
        return "small"
    return None


def _name_words(name: str) -> set[str]:
    return {singular(w) for w in words(name)}


def labels(ws: Sequence[str], dataset_labels: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """Labels of the dataset the words name: whole names first ("left kidney" → ``kidney_left``),
    else every label sharing a specific word ("ribs" → all ``rib_*``). Sorted by value."""
    said = {singular(w) for w in ws}
    table = [(int(v), str(n), _name_words(n)) for v, n in dataset_labels]
    whole = [(v, n) for v, n, nw in table if nw and nw <= said and not nw <= GENERIC]
    if whole:  # the most specific names said win: "left kidney" does not also pick "kidney_right"
        best = max(len(_name_words(n)) for _, n in whole)
        return sorted((v, n) for v, n in whole if len(_name_words(n)) == best)
    specific = said - GENERIC
    return sorted((v, n) for v, n, nw in table if nw & specific)
