"""Operator types by name: every installed ``…Op`` class under ``clara_stream.operators``.

The index is built from the source files (``class NameOp(``) without importing them, so a
pipeline imports only the operator modules it uses (the video stack does not load for a DICOM
pipeline). The type name is the class name, as apps spell it: ``VideoDecoderOp``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path

_CLASS = re.compile(r"^class\s+([A-Z]\w*Op)\s*\(", re.MULTILINE)
PACKAGE = "clara_stream.operators"


@cache
def operator_index() -> dict[str, str]:
    """``{type name: module}`` of every operator class in the installed operators package."""
    spec = importlib.util.find_spec(PACKAGE)
    index: dict[str, str] = {}
    for root in (spec.submodule_search_locations or []) if spec else []:
        base = Path(root)
        for file in sorted(base.rglob("*_op.py")):
            rel = file.relative_to(base).with_suffix("")
            if any(part.startswith(("test", "_")) for part in rel.parts):
                continue
            module = ".".join((PACKAGE, *rel.parts))
            for name in _CLASS.findall(file.read_text(errors="replace")):
                index.setdefault(name, module)
    return index


def known_types() -> list[str]:
    return sorted(operator_index())


def resolve_type(name: str) -> type:
    """The operator class registered as ``name``.

    Raises
    ------
    LookupError
        No such type; the message lists the closest registered names.
    """
    module = operator_index().get(name)
    if module is None:
        close = difflib.get_close_matches(name, known_types(), n=3)
        mean = f"; did you mean {', '.join(close)}?" if close else f"; registered: {', '.join(known_types())}"
        raise LookupError(f"expected a registered operator type; got {name!r}{mean}")
    return getattr(importlib.import_module(module), name)
