"""Audio → transcript → intent: the one path the CLI, the REST service and the gateway share.

When the recogniser's best sentence is not understood, its n-best alternatives are tried in order
(a grammar decoder's runner-up is often the command said); when the best two are both understood
but as different intents, the one the dialog manager is strictly surer of wins (pocketsphinx: the
free decoder's words against the grammar's best sentence), except that a destructive runner-up is
never promoted and a disagreement that involves confirm or cancel never confirms (cancel wins it,
else the other intent). The choice is made on a scratch conversation first, so a rejected
alternative never leaves a pending confirmation behind. When none is understood and the recogniser
offers a second opinion on the complete utterance (``redecode``: pocketsphinx with batch CMN), its
candidates are tried next.

With a free-form recogniser beside it (``escalate``: the hybrid's whisper), the pocketsphinx
candidates are trusted only when its two decoders (the trigram decoder's words, first, and the
grammar's best sentence) mean the same intent; otherwise whisper's first understood transcript is
acted on, except that whisper alone never confirms: its "yes" counts only as its first hypothesis,
where one pocketsphinx decoder confirms and the other understood nothing, and nothing heard means
cancel; else a cancel heard anywhere wins, then the candidate heard as something else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from clara_stream.voice.audio import check_speech
from clara_stream.voice.dialog import DialogManager, Result

SCRATCH = "\x00n-best"


def understand(asr, dialog: DialogManager, samples: np.ndarray, labels: Sequence[tuple[int, str]] = (),
               conversation: str = "") -> tuple[str, Result | None]:  # fmt: skip
    """``(transcript, result)``; result is None when nothing was heard.

    Raises
    ------
    AudioInputError
        If ``samples`` are silence.
    """
    text = hear(asr, dialog, samples, labels)
    return (text, dialog.process(text, labels, conversation)) if text else ("", None)


def hear(asr, dialog: DialogManager, samples: np.ndarray, labels: Sequence[tuple[int, str]] = ()) -> str:
    """The transcript to act on: the best, its n-best and the second opinion, chosen as ``choose`` does.

    Raises
    ------
    AudioInputError
        If ``samples`` are silence.
    """
    check_speech(samples)
    best = asr.transcribe(samples)
    second, free = getattr(asr, "redecode", None), getattr(asr, "escalate", None)
    return choose(dialog, [best, *getattr(asr, "alternatives", [])], labels,
                  second=(lambda: second(samples)) if second else None,
                  escalate=(lambda: free(samples)) if free else None, pair=getattr(asr, "decoded", None))  # fmt: skip


def resolve(dialog: DialogManager, candidates: Sequence[str], labels: Sequence[tuple[int, str]] = (),
            conversation: str = "", second: Callable[[], Sequence[str]] | None = None,
            escalate: Callable[[], Sequence[str]] | None = None, pair: Sequence[str] | None = None,
            ) -> tuple[str, Result | None]:  # fmt: skip
    """``choose``'s transcript, processed on ``conversation``."""
    chosen = choose(dialog, candidates, labels, second, escalate, pair)
    return (chosen, dialog.process(chosen, labels, conversation)) if chosen else ("", None)


def choose(dialog: DialogManager, candidates: Sequence[str], labels: Sequence[tuple[int, str]] = (),
           second: Callable[[], Sequence[str]] | None = None,
           escalate: Callable[[], Sequence[str]] | None = None, pair: Sequence[str] | None = None) -> str:  # fmt: skip
    """The first of ``candidates`` (best first) the dialog manager understands — the runner-up
    instead where both are understood as different intents and it is surer (never a destructive one),
    or is cancel, or the best is confirm: a disagreement never confirms —, else the first of
    ``second()`` (called only then), else the best; tried on a scratch conversation only.
    With ``escalate``, unless the two decoders' transcripts ``pair`` agree (``agree``), the first of
    ``escalate()`` understood comes before all of that (``_never_confirms_alone`` applied)."""
    if escalate is not None and not agree(dialog, pair or (), labels):
        heard = [t for t in dict.fromkeys(escalate()) if t]
        free = _first_understood(dialog, heard, labels)
        if free is not None:
            return _never_confirms_alone(dialog, free, heard, [t for t in candidates if t], pair or (), labels)
    candidates = _rival_first(dialog, [t for t in candidates if t], labels)
    best = candidates[0] if candidates else ""
    chosen = _first_understood(dialog, candidates, labels)
    if chosen is None and second is not None:
        chosen = _first_understood(dialog, [t for t in dict.fromkeys(second()) if t not in candidates], labels)
    return best if chosen is None else chosen


def agree(dialog: DialogManager, pair: Sequence[str], labels) -> bool:
    """Whether two decoders' transcripts of one utterance (pocketsphinx: the trigram decoder's words,
    the grammar's best whole sentence) are both understood, as the same intent."""
    if len(pair) != 2 or not all(pair):
        return False
    a, b = (dialog.process(t, labels, SCRATCH) for t in pair)
    dialog.process("cancel", labels, SCRATCH)
    return a.understood and b.understood and a.intent == b.intent


def _never_confirms_alone(dialog: DialogManager, free: str, heard: Sequence[str], candidates: Sequence[str],
                          pair: Sequence[str], labels) -> str:  # fmt: skip
    """``free`` unless it confirms. Whisper's confirm stands only when it is whisper's first
    hypothesis (``heard[0]``), one of the two decoders' answers (``pair``) confirms and the other is
    not understood, and nothing heard means cancel; else a cancel heard anywhere wins, then a
    candidate understood as something else, else the best candidate (which confirms nothing).
    Whisper alone never runs a destructive action: "go in tighter" came out as "Let's go enjoy it."."""
    texts = list(dict.fromkeys([free, *heard, *candidates, *(t for t in pair if t)]))
    intents = {t: dialog.process(t, labels, SCRATCH) for t in texts}
    dialog.process("cancel", labels, SCRATCH)
    command = lambda t: dialog.catalogue[intents[t].intent].command if intents[t].understood else None  # noqa: E731
    if command(free) != "confirm":
        return free
    cancels = [t for t in texts if command(t) == "cancel"]
    decoders = sorted(str(command(t) if t else None) for t in pair) if len(pair) == 2 else []
    if not cancels and free == heard[0] and decoders == ["None", "confirm"]:
        return free
    others = [t for t in candidates if command(t) not in (None, "confirm")]
    return (cancels or others or [*(t for t in candidates if command(t) != "confirm"), ""])[0]


def _rival_first(dialog: DialogManager, candidates: list[str], labels) -> list[str]:
    """``candidates`` without repeats, the runner-up first where it wins (see ``choose``). A best
    sentence repeated as the first alternative (one recogniser, its n-best) has no rival."""
    if len(candidates) < 2 or candidates[0] == candidates[1]:
        return list(dict.fromkeys(candidates))
    a, b = (dialog.process(t, labels, SCRATCH) for t in candidates[:2])
    dialog.process("cancel", labels, SCRATCH)
    if a.understood and b.understood and a.intent != b.intent:
        first, second = (dialog.catalogue[r.intent] for r in (a, b))
        # "yes" and "no" are both exact examples (a tie): a disagreement about an answer to "are you
        # sure?" must never confirm, so cancel wins it, and else the other intent goes first.
        if "cancel" in (first.command, second.command):
            swap = second.command == "cancel"
        elif "confirm" in (first.command, second.command):
            swap = first.command == "confirm"
        else:  # a destructive rival is never promoted; otherwise only a surer one
            swap = not second.confirm and b.confidence > a.confidence
        if swap:
            candidates = [candidates[1], candidates[0], *candidates[2:]]
    return list(dict.fromkeys(candidates))


def _first_understood(dialog: DialogManager, candidates: Sequence[str], labels) -> str | None:
    chosen = next((t for t in candidates if t and dialog.process(t, labels, SCRATCH).understood), None)
    dialog.process("cancel", labels, SCRATCH)  # drop whatever the scratch run left pending
    return chosen
