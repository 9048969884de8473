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
#: How much, as each kind of command says it (a slice count is not a percentage).
AMOUNTS = {
    "slices": "<number> slices | <number> | by <number> | a few slices | a few",
    "percent": "[to] <number> percent | a lot | a little | a bit",
    "motion": "a lot | a little | a bit | slightly | by <number>",
}
#: Words said around any command (general carriers, not sentences): hesitations, politeness and
#: indirect requests before it, politeness after it. Matches :data:`clara_stream.voice.slots.FILLERS`
#: and its leads, which the dialog manager drops again.
FILLER = "uh | um | er"
LEAD = "please | can you | could you | would you | can we | could we | let's | i want to | i'd like to | i need to"
TAIL = "please | for me | thanks | thank you"
#: Pronunciations (CMU phones) of command words the packaged en-us dictionary lacks.
EXTRA_WORDS = {"mip": "M IH P", "unhide": "AH N HH AY D"}
TOKEN = re.compile(r"<[a-z_]+>|[a-z']+")
SYNTAX = re.compile(r"<[a-z_]+>|[\[\]()|]|[a-z']+")
THREE_D = "threed"  # "3d" kept whole until numbers are replaced: "three" in "three d" is no amount


@dataclass
class Grammar:
    """The JSGF text, the words it uses, and what was left out (phrase, missing word).
    ``accepts(text)`` says whether ``text`` is a whole sentence of the grammar."""

    jsgf: str
    words: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is a complete sentence of ``<command>`` (pocketsphinx returns the best
        partial path when no path reached the end: "show the body and" is not a command)."""
        if "_pattern" not in self.__dict__:
            self._pattern = re.compile(_regex("<command>", self.rules, {}))
        return self._pattern.fullmatch(" ".join(text.lower().split()) + " ") is not None


def _regex(body: str, rules: dict[str, str], memo: dict[str, str]) -> str:
    """A regular expression (each word followed by one space) for the JSGF right-hand side ``body``."""
    toks, out = SYNTAX.findall(body), []
    for t in toks:
        if t.startswith("<"):
            name = t[1:-1]
            if name not in memo:
                memo[name] = _regex(rules[name], rules, memo)
            out.append(f"(?:{memo[name]})")
        elif t in "[(":
            out.append("(?:")
        elif t == "]":
            out.append(")?")
        elif t == ")":
            out.append(")")
        elif t == "|":
            out.append("|")
        else:
            out.append(re.escape(t) + " ")
    return "".join(out)


def _tokens(text: str) -> list[str]:
    t = text.lower().replace("-", " ").replace("3d", THREE_D).replace(",", " ")
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
            phrase = " ".join(tk).replace(THREE_D, "three d")
            if ok(phrase):
                alts.append(f"{phrase} [<{_amount(it.command)}>]" if "amount" in it.slots else phrase)
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
        **{f"amount_{k}": v for k, v in AMOUNTS.items()},
        **{k: " | ".join(p for p in v.split(" | ") if ok(p)) for k, v in (("filler", FILLER), ("lead", LEAD),
                                                                           ("tail", TAIL))},
    }  # fmt: skip
    if lab:
        slot_rules["label"] = " | ".join(lab)
    g.words.update(w for r in ("direction", "number") for w in slot_rules[r].split(" | "))
    g.words.update(w for r in AMOUNTS.values() for w in SYNTAX.findall(r) if w[0].isalpha())
    carriers = [f"[<{c}>]" for c in ("filler", "lead") if slot_rules[c]]
    slot_rules = {k: v for k, v in slot_rules.items() if v}
    command = " ".join([*carriers, "<intent>", *(["[<tail>]"] if "tail" in slot_rules else [])])
    g.rules = {"command": command, "intent": " | ".join(f"<{n}>" for n in rules),
               **{n: " | ".join(alts) for n, alts in rules.items()}, **slot_rules}  # fmt: skip
    lines = ["#JSGF V1.0;", "grammar commands;", f"public <command> = {g.rules['command']};"]
    lines += [f"<{n}> = {body};" for n, body in list(g.rules.items())[1:]]
    g.jsgf = "\n".join(lines) + "\n"
    return g


def _amount(command: str) -> str:
    kind = {"next_slice": "slices", "previous_slice": "slices", "label_opacity": "percent"}.get(command, "motion")
    return f"amount_{kind}"
