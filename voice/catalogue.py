"""The intent catalogue: what the dialog manager can do, loaded from YAML and validated at start.

Each intent has a name, several example phrasings (embedded for zero-shot matching), the slots it
reads, the slots it requires, the render command it maps to, whether it asks for confirmation first
(destructive actions) and the spoken reply (``{slot}`` placeholders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT = Path(__file__).resolve().parent / "intents.yaml"
SLOTS = ("direction", "amount", "view", "preset", "label", "state")
COMMANDS = (
    "zoom_in", "zoom_out", "pan", "rotate", "next_slice", "previous_slice", "set_view", "window_preset",
    "hide_label", "show_label", "show_only", "label_opacity", "measure", "scale_bar", "reset", "confirm", "cancel",
)  # fmt: skip


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    command: str
    reply: str
    slots: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    confirm: bool = False
    cues: frozenset[str] = frozenset()  # single words that point at this intent (see dialog.CUE_BONUS)


@dataclass(frozen=True)
class Catalogue:
    intents: tuple[Intent, ...]
    source: str = field(default="", compare=False)
    refuse: tuple[str, ...] = ()  # out-of-domain examples: a query nearer one of them is refused

    def __getitem__(self, name: str) -> Intent:
        for it in self.intents:
            if it.name == name:
                return it
        raise KeyError(f"catalogue: expected an intent name in {[i.name for i in self.intents]}; got {name!r}")

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.intents]


def _fail(source: str, name: str, rule: str, got: object) -> ValueError:
    return ValueError(f"catalogue: expected {rule}; got {got!r} [intent {name}, {source}]")


def parse(data: dict, source: str = "<dict>") -> Catalogue:
    """Validate a catalogue mapping (``{"intents": {name: {...}}}``).

    Raises
    ------
    ValueError
        Naming the intent and the rule: fewer than 2 examples, an unknown slot or command, a
        required slot not among the slots, a reply placeholder that is not a slot, a duplicate example,
        or a cue that is not one lower-case word.
    """
    if not isinstance(data, dict) or not isinstance(data.get("intents"), dict) or not data["intents"]:
        raise ValueError(
            f"catalogue: expected a mapping with a non-empty 'intents' mapping; got {type(data)} [{source}]"
        )
    out, seen = [], {}
    for name, spec in data["intents"].items():
        if not isinstance(spec, dict):
            raise _fail(source, name, "a mapping", spec)
        examples = tuple(str(e).strip() for e in spec.get("examples") or ())
        if len(examples) < 2 or not all(examples):
            raise _fail(source, name, "at least 2 non-empty examples", spec.get("examples"))
        for e in examples:
            if e.lower() in seen:
                raise _fail(source, name, f"examples unique across intents (also in {seen[e.lower()]})", e)
            seen[e.lower()] = name
        slots = tuple(spec.get("slots") or ())
        required = tuple(spec.get("required") or ())
        if bad := [s for s in slots if s not in SLOTS]:
            raise _fail(source, name, f"slots from {SLOTS}", bad)
        if bad := [s for s in required if s not in slots]:
            raise _fail(source, name, "required slots listed in slots", bad)
        command = spec.get("command")
        if command not in COMMANDS:
            raise _fail(source, name, f"a command from {COMMANDS}", command)
        reply = str(spec.get("reply") or "")
        placeholders = {p.split("}")[0] for p in reply.split("{")[1:]}
        if not reply or placeholders - set(slots):
            raise _fail(source, name, "a reply whose {placeholders} are slots of the intent", reply)
        cues = [str(c) for c in spec.get("cues") or ()]
        if bad := [c for c in cues if not c.isalpha() or c != c.lower()]:
            raise _fail(source, name, "cues as single lower-case words", bad)
        out.append(Intent(str(name), examples, command, reply, slots, required, bool(spec.get("confirm", False)),
                          frozenset(cues)))
    refuse = tuple(str(e).strip() for e in data.get("refuse") or ())
    if bad := [e for e in refuse if not e or e.lower() in seen]:
        raise ValueError(f"catalogue: expected refuse examples non-empty and not intent examples; got {bad} [{source}]")
    return Catalogue(tuple(out), source, refuse)


def load(path: Path | str | None = None) -> Catalogue:
    """The catalogue at ``path`` (default: the packaged ``intents.yaml``)."""
    p = Path(path) if path is not None else DEFAULT
    return parse(yaml.safe_load(p.read_text()), str(p))
