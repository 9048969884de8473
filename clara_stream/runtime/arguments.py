"""Operator keyword arguments checked before Holoscan sees them (it drops unknown ones silently).

A misspelt YAML key (``scale: {factr: 3}``) would otherwise run with the default and exit 0. The
known keys are the keyword parameters of every ``__init__`` along the class's MRO that forwards
``**kwargs`` to its base, plus Holoscan's ``name``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from functools import cache
from typing import Any

from clara_stream.errors import ConfigError

_SKIP = {"self", "fragment"}


def _signature(fn: Any) -> inspect.Signature:
    return inspect.signature(inspect.unwrap(fn))


@cache
def accepted(cls: type, base: type) -> tuple[frozenset[str], frozenset[str]]:
    """(every keyword ``cls`` accepts, the required ones of its own ``__init__``)."""
    known: set[str] = {"name"}
    required: set[str] = set()
    first = True
    for klass in cls.__mro__:
        if klass is base:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = _signature(init).parameters.values()
        names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - _SKIP
        known |= names
        if first:
            required = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
            first = False
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return frozenset(known), frozenset(required)


def check_arguments(cls: type, base: type, kwargs: Mapping[str, Any]) -> None:
    """Refuse unknown or missing keyword arguments of ``cls(...)``, naming key and operator.

    Raises
    ------
    ConfigError
        For the first unknown key (with the known keys and a did-you-mean), or for a missing
        required key.
    """
    known, required = accepted(cls, base)
    name = kwargs.get("name") or cls.__name__
    unknown = sorted(k for k in kwargs if k not in known)
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=3)
        mean = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"{cls.__name__} '{name}': expected arguments from {sorted(known - {'name'})}; "
            f"got unknown {key!r}{mean}",
            hint=f"fix the key in the '{name}' section of the app's YAML (or the --set override)",
        )
    missing = sorted(required - set(kwargs))
    if missing:
        raise ConfigError(
            f"{cls.__name__} '{name}': expected required argument {missing[0]!r}; got none",
            hint=f"set it in the '{name}' section of the app's YAML (or with --set {name}.{missing[0]}=...)",
        )


def outermost(obj: Any, cls: type) -> bool:
    """True when ``cls`` owns the ``__init__`` that ``type(obj)(...)`` entered first."""
    for klass in type(obj).__mro__:
        if "__init__" in klass.__dict__:
            return klass is cls
    return False
