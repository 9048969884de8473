"""A trigram language model sampled from the command grammar, for a second, freer decoder.

The JSGF grammar forces every utterance onto one of its sentences, so a phrasing it lacks
("move forward by three slices") comes out as a wrong command ("move upward by three"). A
trigram model of the same sentences backs off to shorter contexts, so it can also put the
grammar's words in orders the grammar never lists; the dialog manager then reads the words.
Sentences are sampled from the grammar's rules with a fixed seed (repeatable), counted, and
written as ARPA with absolute discounting and back-off weights (Katz-style, three orders).
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable

from clara_stream.voice.grammar import SYNTAX

SENTENCES = 20_000
DISCOUNT = 0.7
#: Chance of saying an optional part (``[<amount>]``): most commands are said bare; the carriers
#: around a command rarer still, and hesitations never (short words the decoder would otherwise put
#: into any pause: clean speech came out as "we uh can we").
OPTIONAL = 0.3
CARRIERS = {"filler": 0.0, "lead": 0.1, "tail": 0.1}
Node = tuple


def _parse(body: str) -> Node:
    """JSGF right-hand side → ("alt", [seq…]) / ("seq", [node…]) / ("opt", node) / ("ref", name) / ("w", word)."""
    toks, pos = SYNTAX.findall(body), 0

    def alternatives() -> Node:
        nonlocal pos
        out = [sequence()]
        while pos < len(toks) and toks[pos] == "|":
            pos += 1
            out.append(sequence())
        return ("alt", out)

    def sequence() -> Node:
        nonlocal pos
        items: list[Node] = []
        while pos < len(toks) and toks[pos] not in ("|", "]", ")"):
            t = toks[pos]
            pos += 1
            if t in "[(":
                inner = alternatives()
                pos += 1  # the closing bracket
                items.append(("opt", inner) if t == "[" else inner)
            else:
                items.append(("ref", t[1:-1]) if t.startswith("<") else ("w", t))
        return ("seq", items)

    return alternatives()


def sampler(rules: dict[str, str], seed: int = 0, optional: float = OPTIONAL,
            carriers: dict[str, float] = CARRIERS) -> Callable[[], list[str]]:  # fmt: skip
    """A function returning one random sentence (words) of ``rules["command"]``; an optional
    ``[<name>]`` is said with chance ``carriers[name]`` where given, else ``optional``."""
    trees, rng = {k: _parse(v) for k, v in rules.items()}, random.Random(seed)

    def walk(node: Node, out: list[str]) -> None:
        kind, arg = node
        if kind == "w":
            out.append(arg)
        elif kind == "ref":
            walk(trees[arg], out)
        elif kind == "seq":
            for n in arg:
                walk(n, out)
        elif kind == "alt":
            walk(rng.choice(arg), out)
        elif rng.random() < _chance(arg, optional, carriers):
            walk(arg, out)

    def one() -> list[str]:
        out: list[str] = []
        walk(trees["command"], out)
        return out

    return one


def _chance(node: Node, optional: float, carriers: dict[str, float]) -> float:
    """``carriers[name]`` for an optional that is just ``<name>``, else ``optional``."""
    inner = node[1][0][1] if node[0] == "alt" and len(node[1]) == 1 else []
    return carriers.get(inner[0][1], optional) if len(inner) == 1 and inner[0][0] == "ref" else optional


def arpa(sentences: list[list[str]], discount: float = DISCOUNT) -> str:
    """ARPA text of a trigram model of ``sentences`` (add-one unigrams, discounted higher orders).

    Raises
    ------
    ValueError
        If there are no sentences or ``discount`` is not in (0, 1).
    """
    if not sentences or not 0.0 < discount < 1.0:
        raise ValueError(f"lm: expected sentences and 0 < discount < 1; got {len(sentences)}, {discount}")
    counts: list[Counter] = [Counter(), Counter(), Counter()]
    for s in sentences:
        w = ["<s>", *s, "</s>"]
        for n in (1, 2, 3):
            counts[n - 1].update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    del counts[0][("<s>",)]
    total, vocab = sum(counts[0].values()), [g[0] for g in counts[0]]
    unigrams = {(w,): (counts[0][(w,)] + 1) / (total + len(vocab)) for w in vocab}
    probs: list[dict[tuple, float]] = [{**unigrams, ("<s>",): 0.0}, {}, {}]  # <s> is a context, never predicted
    backoff: list[dict[tuple, float]] = [{}, {}]
    for n in (2, 3):
        by_context: dict[tuple, list[tuple]] = defaultdict(list)
        for g in counts[n - 1]:
            by_context[g[:-1]].append(g)
        for h, grams in by_context.items():
            seen = sum(counts[n - 1][g] for g in grams)
            for g in grams:
                probs[n - 1][g] = (counts[n - 1][g] - discount) / seen
            left = 1.0 - sum(probs[n - 1][g] for g in grams)
            lower = 1.0 - sum(_prob(g[1:], probs, backoff) for g in grams)
            backoff[n - 2][h] = max(left, 1e-9) / max(lower, 1e-9)
    lines = ["\\data\\", *(f"ngram {n}={len(probs[n - 1])}" for n in (1, 2, 3)), ""]
    for n in (1, 2, 3):
        lines.append(f"\\{n}-grams:")
        for g, p in probs[n - 1].items():
            lp = math.log10(p) if p > 0 else -99.0
            bo = backoff[n - 1].get(g) if n < 3 else None
            lines.append(f"{lp:.4f} {' '.join(g)}" + (f" {math.log10(bo):.4f}" if bo else ""))
        lines.append("")
    return "\n".join([*lines, "\\end\\"]) + "\n"


def _prob(g: tuple, probs: list[dict[tuple, float]], backoff: list[dict[tuple, float]]) -> float:
    """P(last word | the rest) with back-off, for orders already estimated."""
    if g in probs[len(g) - 1]:
        return probs[len(g) - 1][g]
    if len(g) == 1:
        return 0.0
    return backoff[len(g) - 2].get(g[:-1], 1.0) * _prob(g[1:], probs, backoff)


def build(rules: dict[str, str], known: Callable[[str], bool] = lambda w: True, n: int = SENTENCES,
          seed: int = 0) -> str:  # fmt: skip
    """ARPA text of ``n`` sentences sampled from the grammar ``rules``, words ``known`` only."""
    one = sampler(rules, seed)
    return arpa([[w for w in one() if known(w)] for _ in range(n)])
