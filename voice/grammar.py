"""JSGF command grammar generated from the intent catalogue and the dataset's label names.

pocketsphinx decoding against this grammar can only output sentences the catalogue allows, so
what it hears is always a command the dialog manager understands (FACTS: 6/6 espeak-ng commands
with a grammar, 0/6 with the general language model). Words missing from the pronouncing
dictionary are dropped with their phrase and listed in ``Grammar.skipped``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from clara_stream.voice import slots as S
from clara_stream.voice.catalogue import Catalogue

#: Spoken forms of slot values (multi-word first); the dialog manager's slot rules read them back.
VIEW_PHRASES = ("maximum intensity projection", "three d", "axial", "coronal", "sagittal", "oblique", "mip",
                "volume", "transverse")  # fmt: skip
PRESET_PHRASES = ("soft tissue", "lung", "bone")
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenty", "thirty",
                "forty", "fifty", "sixty", "seventy", "eighty", "ninety")  # fmt: skip
AMOUNT = "a lot | a little | a bit | slightly | <number> slices | by <number> | <number> percent"
#: Pronunciations (CMU phones) of command words the packaged en-us dictionary lacks.
EXTRA_WORDS = {"mip": "M IH P", "unhide": "AH N HH AY D"}
TOKEN = re.compile(r"<[a-z_]+>|[a-z']+")


@dataclass
class Grammar:
    """The JSGF text, the words it uses, and what was left out (phrase, missing word)."""

    jsgf: str
    words: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _tokens(text: str) -> list[str]:
    t = text.lower().replace("-", " ").replace("3d", "three d").replace(",", " ")
    return TOKEN.findall(t)


def _sub(tokens: list[str], phrases: Sequence[str], ref: str) -> list[str]:
    out, i = [], 0
    while i < len(tokens):
        for p in phrases:
            pw = p.split()
            if tokens[i : i + len(pw)] == pw:
                if not out or out[-1] != ref:
                    out.append(ref)
                i += len(pw)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def label_phrases(labels: Iterable[tuple[int, str]]) -> list[str]:
    """Spoken forms of label names: ``kidney_left`` → "kidney left", "left kidney"; plurals of
    one-word names and the shared head word of numbered groups ("rib_left_1" → "ribs")."""
    out: list[str] = []
    for _, name in labels:
        ws = [w for w in S.words(name) if not w.isdigit()]
        if not ws:
            continue
        out.append(" ".join(ws))
        if len(ws) == 2:
            out.append(f"{ws[1]} {ws[0]}")
        head = ws[0]
        out += [head, head + "s" if not head.endswith("s") else S.singular(head)]
    return list(dict.fromkeys(out))


def build(catalogue: Catalogue, labels: Iterable[tuple[int, str]] = (),
          known: Callable[[str], bool] = lambda w: True) -> Grammar:  # fmt: skip
    """The command grammar; ``known(word)`` says whether the decoder can pronounce a word."""
    g = Grammar("")

    def ok(phrase: str) -> bool:
        missing = [w for w in phrase.split() if not w.startswith("<") and not known(w)]
        if missing:
            g.skipped.append((phrase, missing[0]))
            return False
        g.words.update(w for w in phrase.split() if not w.startswith("<"))
        return True

    rules: dict[str, list[str]] = {}
    for it in catalogue.intents:
        alts = []
        for ex in it.examples:
            tk = _tokens(ex)
            if "direction" in it.slots:
                tk = _sub(tk, tuple(S.DIRECTIONS), "<direction>")
            if "view" in it.slots:
                tk = _sub(tk, VIEW_PHRASES, "<view>")
            if "preset" in it.slots:
                tk = _sub(tk, PRESET_PHRASES, "<preset>")
            if "amount" in it.slots:
                tk = _sub(tk, NUMBER_WORDS, "<number>")
            phrase = " ".join(tk)
            if ok(phrase):
                alts.append(f"{phrase} [<amount>]" if "amount" in it.slots else phrase)
        if alts:
            rules[it.name] = list(dict.fromkeys(alts))
    lab = [p for p in label_phrases(labels) if ok(p)]
    if not lab:  # no labels: label commands cannot be said (a <VOID> branch derails pocketsphinx's FSG)
        rules = {n: kept for n, alts in rules.items() if (kept := [a for a in alts if "<label>" not in a])}
    slot_rules = {
        "direction": " | ".join(sorted(set(S.DIRECTIONS))),
        "view": " | ".join(p for p in VIEW_PHRASES if ok(p)),
        "preset": " | ".join(p for p in PRESET_PHRASES if ok(p)),
        "number": " | ".join(NUMBER_WORDS),
        "amount": AMOUNT,
    }
    if lab:
        slot_rules["label"] = " | ".join(lab)
    g.words.update(w for r in ("direction", "number") for w in slot_rules[r].split(" | "))
    g.words.update("a lot little bit slightly slices by percent please can you could".split())
    lines = ["#JSGF V1.0;", "grammar commands;",
             "public <command> = [please] <intent> [please];",
             "<intent> = " + " | ".join(f"<{n}>" for n in rules) + ";"]  # fmt: skip
    lines += [f"<{n}> = {' | '.join(alts)};" for n, alts in rules.items()]
    lines += [f"<{n}> = {body};" for n, body in slot_rules.items()]
    g.jsgf = "\n".join(lines) + "\n"
    return g
