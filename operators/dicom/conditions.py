"""One selection condition ``Keyword: expected``, with MONAI Deploy App SDK's matching semantics.

The rule forms and their meaning follow ``DICOMSeriesSelectorOperator`` (monai-deploy-app-sdk,
``_select_series``, ``_match_numeric_condition``, ``_match_image_orientation``); what MONAI only finds
out at run time (a crash on a list for a string attribute, ``NotImplementedError`` for an unknown
comparator, ``re.error``) is refused here when the rules are loaded. See :mod:`.selector`.
"""

from __future__ import annotations

import difflib
import numbers
import re
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_dict
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = ["check_condition", "match_condition", "ORIENTATIONS"]

_OP = "SeriesSelector"
_NUMERIC_VRS = {"DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"}
_COMPARATORS = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "!=": lambda a, b: a != b,
}  # fmt: skip
ORIENTATIONS = ("Sagittal", "Coronal", "Axial")  # index of the normal's dominant LPS axis
_POSITIONS = {"HFP", "HFS", "HFDL", "HFDR", "FFP", "FFS", "FFDL", "FFDR"}


def _kind(keyword: str) -> str:
    """orientation, multi, number or string: how MONAI compares this attribute's values."""
    if keyword == "ImageOrientationPatient":
        return "orientation"
    if dictionary_VM(keyword) != "1":
        return "multi"
    return "number" if dictionary_VR(keyword) in _NUMERIC_VRS else "string"


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _regex(pattern: str, keyword: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{_OP}: expected a valid regular expression for {keyword} at {where}; "
                         f"got {pattern!r}: {exc}") from exc  # fmt: skip


def check_condition(keyword: str, expected: Any, where: str) -> None:
    """Refuse a condition MONAI Deploy's rules do not define (start-up validation).

    Raises
    ------
    ValueError
        Naming the keyword, where it is in the rules, and what was expected.
    """
    if keyword not in keyword_dict:
        near = difflib.get_close_matches(keyword, keyword_dict.keys(), n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"{_OP}: expected a DICOM keyword at {where}; got {keyword!r}{hint}")
    if expected is None or expected == "" or expected == []:
        return  # ignored, as MONAI does
    kind = _kind(keyword)
    if kind == "orientation":
        if not isinstance(expected, str) or expected.strip().capitalize() not in ORIENTATIONS:
            raise ValueError(f"{_OP}: expected ImageOrientationPatient at {where} as one of {list(ORIENTATIONS)}; "
                             f"got {expected!r}")  # fmt: skip
    elif kind == "multi":
        terms = expected if isinstance(expected, list) else [expected]
        if not all(isinstance(t, str) or _is_number(t) for t in terms):
            raise ValueError(f"{_OP}: expected {keyword} at {where} as a term or a list of terms ('!' excludes); "
                             f"got {expected!r}")  # fmt: skip
    elif kind == "number":
        if isinstance(expected, str):
            _regex(expected, keyword, where)
        elif isinstance(expected, list):
            if len(expected) == 2 and _is_number(expected[0]) and isinstance(expected[1], str):
                if expected[1] not in _COMPARATORS:
                    raise ValueError(f"{_OP}: expected a comparator among {list(_COMPARATORS)} for {keyword} at "
                                     f"{where}; got {expected[1]!r}")  # fmt: skip
            elif not (len(expected) == 2 and all(_is_number(v) for v in expected)):
                raise ValueError(f"{_OP}: expected {keyword} at {where} as a number, a regex, [lo, hi] or "
                                 f"[value, comparator]; got {expected!r}")  # fmt: skip
        elif not _is_number(expected):
            raise ValueError(f"{_OP}: expected {keyword} at {where} as a number; got {expected!r}")
    else:
        if not isinstance(expected, str):
            raise ValueError(
                f"{_OP}: expected {keyword} (single-valued) at {where} as a string or regular expression; got "
                f"{expected!r}" + (" (for one of several values use a regex like '^(CT|MR)$')"
                                   if isinstance(expected, list) else "")
            )  # fmt: skip
        _regex(expected, keyword, where)


def _normal_axis(iop: list[float]) -> str:
    row, col = np.asarray(iop[:3], dtype=np.float64), np.asarray(iop[3:6], dtype=np.float64)
    normal = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    return ORIENTATIONS[int(np.argmax(np.abs(normal)))]


def match_condition(keyword: str, expected: Any, ds: Dataset) -> str | None:
    """None when ``ds`` (a series' first instance, or one instance) meets the condition, else why not."""
    if expected is None or expected == "" or expected == []:
        return None
    value = ds.get(keyword)
    if value is None or value == "" or (isinstance(value, MultiValue) and len(value) == 0):
        return f"{keyword} missing"
    kind = _kind(keyword)
    if kind == "orientation":
        position = str(ds.get("PatientPosition", "") or "")
        if position not in _POSITIONS:
            return f"PatientPosition {position or 'missing'}: orientation needs one of {sorted(_POSITIONS)}"
        got = _normal_axis([float(v) for v in value])
        return None if got == expected.strip().capitalize() else f"orientation {got}, not {expected}"
    if kind == "multi":
        values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        text = str([str(v) for v in values]).lower()
        for term in expected if isinstance(expected, list) else [expected]:
            t = str(term).lower()
            if t.startswith("!") and t[1:] in text:
                return f"{keyword} {values} contains excluded {t[1:].upper()}"
            if not t.startswith("!") and t not in text:
                return f"{keyword} {values} lacks {t.upper()}"
        return None
    if kind == "number":
        try:
            a = float(value)
        except (TypeError, ValueError):
            return f"{keyword} {value!r} is not a number"
        if isinstance(expected, str):
            return None if re.fullmatch(expected, str(value)) else f"{keyword} {value} does not match {expected!r}"
        if isinstance(expected, list) and isinstance(expected[1], str):
            ok = _COMPARATORS[expected[1]](a, float(expected[0]))
            return None if ok else f"{keyword} {value} not {expected[1]} {expected[0]}"
        if isinstance(expected, list):
            return None if expected[0] <= a <= expected[1] else f"{keyword} {value} not in {expected}"
        return None if a == expected else f"{keyword} {value} != {expected}"
    text = str(value)
    if text.casefold() == expected.casefold() or re.search(expected, text, re.IGNORECASE):
        return None
    return f"{keyword} {text!r} does not match {expected!r}"
