"""Series selection rules: MONAI Deploy's rules JSON as is, plus AND/OR/NOT, instance-level tags, and a
built-in rule that rejects 2D scouts/localizers. Every series gets a reason for its fate.

MONAI Deploy form (accepted unchanged)::

    {"selections": [{"name": "CT Series", "conditions": {"Modality": "(?i)CT", "ImageType": ["PRIMARY"]}}]}

Matching of one condition ``Keyword: expected`` is MONAI Deploy App SDK's (DICOMSeriesSelectorOperator,
checked against its source), on the study/series attributes, else the first instance's:

* single-valued string attributes (Modality, SeriesDescription, ...): case-insensitive equality, else
  ``re.search(expected, value, re.IGNORECASE)``;
* numbers (SliceThickness, SeriesNumber, ...): equality; ``[lo, hi]`` an inclusive range; ``[v, op]``
  with op one of ``>``, ``>=``, ``<``, ``<=``, ``!=``; a string is ``re.fullmatch`` on the value's text;
* multi-valued attributes (ImageType): each listed term must occur in the lower-cased text of the
  value list (MONAI's substring test) and each ``"!term"`` must not; a single term works alike;
* ``ImageOrientationPatient``: ``"Axial"``, ``"Coronal"`` or ``"Sagittal"``, the dominant axis of the
  slice normal (the series needs a standard PatientPosition, else it does not match, with the reason);
* an empty expected value (None, "", []) is ignored; a missing attribute never matches.

Refused when the rules are loaded (at start-up, not at run time): a keyword not in the DICOM
dictionary (with a suggestion), a list for a single-valued string attribute (MONAI would crash; our
old code made it a regex character class), an invalid regular expression, a comparator or range
MONAI does not define, an orientation other than the three names, unknown keys in a selection.

Extensions (a ``conditions`` value may be any of these, nested):

* a dict of conditions (implicit AND, MONAI form); ``{"all": [c, ...]}``; ``{"any": [c, ...]}``;
  ``{"not": c}``;
* ``{"instances": {"match": "all" | "any", "conditions": c}}``: the condition evaluated on each
  instance header (e.g. ``ImageType`` that differs per instance, ``ContrastBolusAgent``);
* ``{"min_instances": n}``.

Per selection, ``all_matched`` (every matching series, default: the first) and
``sort_by_sop_instance_count`` (largest series first) are accepted like MONAI Deploy's options; unlike
MONAI, the sort also applies before the first match is taken when ``all_matched`` is false. A selection
without conditions is skipped, as MONAI does (no rules at all: every volume series is selected).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from .conditions import check_condition, match_condition
from .study import DicomSeries, StudyIndex

__all__ = ["SelectionResult", "select_series", "load_rules", "localizer_reason"]

_OP = "SeriesSelector"
_LOCALIZER_WORDS = re.compile(r"scout|locali[sz]er|topogram|surview|scanogram|survey|pilot", re.IGNORECASE)
_SELECTION_KEYS = ("name", "conditions", "all_matched", "sort_by_sop_instance_count")


@dataclass
class SelectionResult:
    """Selected series (selection name, series) and a decision record for every series seen."""

    selected: list[tuple[str, DicomSeries]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected": [{"selection": n, "SeriesInstanceUID": s.series_uid} for n, s in self.selected],
            "decisions": self.decisions,
        }


def load_rules(rules: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Parse and validate a rules JSON string or dict (None: select every volume series)."""
    if rules is None or (isinstance(rules, str) and not rules.strip()):
        return None
    if isinstance(rules, str):
        try:
            rules = json.loads(rules)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{_OP}: expected rules as JSON; got a parse error: {exc}") from exc
    if not isinstance(rules, dict) or not isinstance(rules.get("selections"), list) or not rules["selections"]:
        raise ValueError(f'{_OP}: expected {{"selections": [...]}} with at least one selection; got {rules!r}')
    for i, sel in enumerate(rules["selections"]):
        if not isinstance(sel, dict) or "conditions" not in sel:
            raise ValueError(f"{_OP}: expected selection {i} to be an object with 'conditions'; got {sel!r}")
        unknown = [k for k in sel if k not in _SELECTION_KEYS]
        if unknown:
            raise ValueError(f"{_OP}: expected selection {i} keys among {list(_SELECTION_KEYS)}; got {unknown}")
        if sel["conditions"] is not None:
            _validate(sel["conditions"], f"selections[{i}].conditions")
    return rules


def _validate(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        raise ValueError(f"{_OP}: expected an object at {where}; got {cond!r}")
    for key, val in cond.items():
        if key in ("all", "any"):
            if not isinstance(val, list):
                raise ValueError(f"{_OP}: expected a list under {where}.{key}; got {val!r}")
            for j, c in enumerate(val):
                _validate(c, f"{where}.{key}[{j}]")
        elif key == "not":
            _validate(val, f"{where}.not")
        elif key == "instances":
            if not isinstance(val, dict) or val.get("match", "all") not in ("all", "any") or "conditions" not in val:
                raise ValueError(f"{_OP}: expected {where}.instances as {{match: all|any, conditions: {{...}}}}")
            _validate(val["conditions"], f"{where}.instances.conditions")
        elif key == "min_instances":
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{_OP}: expected {where}.min_instances as an integer >= 1; got {val!r}")
        else:
            check_condition(key, val, f"{where}.{key}")


def _eval(cond: dict[str, Any], series: DicomSeries, ds: Dataset | None = None) -> str | None:
    """Evaluate a condition object; None when it holds, else the first reason it fails."""
    header = series.first if ds is None else ds
    for key, expected in cond.items():
        if key == "all":
            for c in expected:
                r = _eval(c, series, ds)
                if r:
                    return r
        elif key == "any":
            reasons = [_eval(c, series, ds) for c in expected]
            if expected and all(reasons):
                return "none of: " + "; ".join(str(r) for r in reasons)
        elif key == "not":
            if _eval(expected, series, ds) is None:
                return f"NOT condition holds ({json.dumps(expected)})"
        elif key == "min_instances":
            if len(series) < expected:
                return f"{len(series)} instances < {expected}"
        elif key == "instances":
            results = [_eval(expected["conditions"], series, i.header) for i in series.instances]
            if expected.get("match", "all") == "all":
                bad = [r for r in results if r]
                if bad:
                    return f"{len(bad)}/{len(results)} instances fail: {bad[0]}"
            elif all(results):
                return f"no instance matches: {results[0]}"
        else:
            r = match_condition(key, expected, header)
            if r:
                return r
    return None


def _iop(ds: Dataset) -> tuple[float, ...]:
    elem = ds.get_item(0x00200037)  # ImageOrientationPatient, from the raw bytes when not yet converted
    value = None if elem is None else elem.value
    if isinstance(value, bytes):
        text = value.strip(b" \x00")
        return tuple(round(float(v), 3) for v in text.split(b"\\")) if text else ()
    return tuple(round(float(v), 3) for v in (ds.get("ImageOrientationPatient") or []))


def localizer_reason(series: DicomSeries, *, min_slices: int = 3) -> str | None:
    """Why a series looks like a 2D scout/localizer (None if it does not)."""
    image_type = [str(v).upper() for v in (series.get("ImageType") or [])]
    if "LOCALIZER" in image_type:
        return "ImageType contains LOCALIZER"
    desc = series.description
    if desc and _LOCALIZER_WORDS.search(desc):
        return f"SeriesDescription {desc!r} names a scout/localizer"
    if len(series) < min_slices:
        return f"{len(series)} instance(s): fewer than {min_slices}, not a volume"
    iops = {_iop(i.header) for i in series.instances}
    if len(iops) > 1:
        return f"{len(iops)} different orientations (a multi-plane localizer?)"
    return None


def select_series(
    index: StudyIndex,
    rules: str | dict[str, Any] | None = None,
    *,
    all_matched: bool = False,
    sort_by_sop_instance_count: bool = False,
    reject_localizers: bool = True,
    min_slices: int = 3,
) -> SelectionResult:
    """Apply selection rules to every study in ``index``.

    Returns the selected (selection name, series) pairs, study by study, and one decision per series
    (``{"SeriesInstanceUID", "SeriesDescription", "Modality", "instances", "selected_by": [...],
    "reasons": {selection name or "localizer": reason}}``).
    """
    parsed = load_rules(rules)
    selections = parsed["selections"] if parsed else [{"name": "all", "conditions": {}, "all_matched": True}]
    result = SelectionResult()
    for study in index.studies.values():
        series_list = list(study.series.values())
        decisions = {
            s.series_uid: {
                "SeriesInstanceUID": s.series_uid,
                "StudyInstanceUID": study.study_uid,
                "SeriesDescription": s.description,
                "Modality": s.modality,
                "instances": len(s),
                "selected_by": [],
                "reasons": {},
            }  # fmt: skip
            for s in series_list
        }
        candidates = []
        for s in series_list:
            why = localizer_reason(s, min_slices=min_slices) if reject_localizers else None
            if why:
                decisions[s.series_uid]["reasons"]["localizer"] = f"rejected as scout/localizer: {why}"
            else:
                candidates.append(s)
        for i, sel in enumerate(selections):
            name = str(sel.get("name", "") or f"selection {i}").strip()
            if not sel["conditions"] and parsed:
                for s in candidates:  # MONAI Deploy skips a selection without conditions
                    decisions[s.series_uid]["reasons"][name] = "not evaluated: the selection has no conditions"
                continue
            take_all = bool(sel.get("all_matched", all_matched))
            ordered = candidates
            if sel.get("sort_by_sop_instance_count", sort_by_sop_instance_count):
                ordered = sorted(candidates, key=len, reverse=True)
            chosen = None
            for s in ordered:
                if chosen is not None:
                    decisions[s.series_uid]["reasons"][name] = (
                        f"not evaluated: {name!r} takes the first match only (all_matched false) and already "
                        f"selected {chosen.description or chosen.series_uid}"
                    )  # fmt: skip
                    continue
                why = _eval(sel["conditions"], s)
                if why:
                    decisions[s.series_uid]["reasons"][name] = why
                    continue
                decisions[s.series_uid]["selected_by"].append(name)
                result.selected.append((name, s))
                if not take_all:
                    chosen = s
        result.decisions.extend(decisions.values())
    return result
