"""Series selection against MONAI Deploy App SDK's documented rule examples (DICOMSeriesSelectorOperator
docstring, checked against its source): expected selections derived by hand from its stated semantics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from clara_stream.operators.dicom.selector import load_rules, select_series
from clara_stream.operators.dicom.study import scan_study

from clara_stream.samples.ct import write_dicom_series

AXIAL = (1, 0, 0, 0, 1, 0, 0, 0, 1)
CORONAL = (1, 0, 0, 0, 0, 1, 0, -1, 0)  # rows along L, columns along -S (IOP 1\0\0\0\0\-1)
#: folder: (Modality, SeriesDescription, ImageType, slice step mm, direction) — scan order is folder order
SERIES = {
    "a": ("CT", "CT abdomen", ["ORIGINAL", "PRIMARY", "AXIAL"], 2.5, AXIAL),
    "b": ("CT", "CT thick", ["ORIGINAL", "PRIMARY", "AXIAL"], 4.0, AXIAL),
    "c": ("CT", "CT coronal MPR", ["DERIVED", "SECONDARY", "REFORMATTED"], 2.5, CORONAL),
    "d": ("MR", "T1 axial", ["ORIGINAL", "PRIMARY"], 3.0, AXIAL),
    "e": ("PT", "PET AC", ["ORIGINAL", "PRIMARY"], 3.27, AXIAL),
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("monai_rules")
    study_uid = pydicom.uid.generate_uid()
    for n, (folder, (modality, desc, image_type, step, direction)) in enumerate(SERIES.items()):
        geometry = {"origin": (0.0, 0.0, 0.0), "spacing": (0.8, 0.8, step), "direction": direction}
        paths = write_dicom_series(np.zeros((3, 6, 6), np.int16), geometry, root / folder, seed=n)
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.StudyInstanceUID, ds.StudyDescription = study_uid, "Spleen follow-up"
            ds.Modality, ds.SeriesDescription, ds.ImageType = modality, desc, image_type
            ds.SliceThickness = f"{step:.6f}"
            ds.save_as(p)
    return scan_study(root)


def _selected(index, rules, **kw) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, series in select_series(index, rules, reject_localizers=False, **kw).selected:
        out.setdefault(name, []).append(series.description)
    return out


def test_monai_documented_examples(study) -> None:
    """The five selections of MONAI's docstring, every match kept (all_matched)."""
    rules = {"selections": [
        {"name": "CT Series 1", "conditions": {"StudyDescription": "(?i)^Spleen", "Modality": "(?i)CT",
                                               "SeriesDescription": "(?i)^No series description|(.*?)"}},
        {"name": "CT Series 2", "conditions": {"Modality": "CT", "BodyPartExamined": "Abdomen",
                                               "SeriesDescription": "Not to be matched. For illustration only."}},
        {"name": "CT Series 3", "conditions": {"StudyDescription": "(.*?)", "Modality": "(?i)CT",
                                               "ImageType": ["PRIMARY", "ORIGINAL", "AXIAL"],
                                               "SliceThickness": [3, 5]}},
        {"name": "CT Series 4", "conditions": {"StudyDescription": "(.*?)", "Modality": "(?i)CT",
                                               "ImageOrientationPatient": "Axial", "SliceThickness": [2, ">"]}},
        {"name": "CT Series 5", "conditions": {"StudyDescription": "(.*?)", "Modality": "(?i)CT",
                                               "ImageType": ["PRIMARY", "!SECONDARY"]}},
    ]}  # fmt: skip
    assert _selected(study, rules, all_matched=True) == {
        "CT Series 1": ["CT abdomen", "CT thick", "CT coronal MPR"],
        "CT Series 3": ["CT thick"],
        "CT Series 4": ["CT abdomen", "CT thick"],
        "CT Series 5": ["CT abdomen", "CT thick"],
    }
    # first match only (MONAI's default): the first in study order, the others get a reason too
    result = select_series(study, rules, reject_localizers=False)
    assert [(n, s.description) for n, s in result.selected] == [
        ("CT Series 1", "CT abdomen"), ("CT Series 3", "CT thick"), ("CT Series 4", "CT abdomen"),
        ("CT Series 5", "CT abdomen")]  # fmt: skip
    reasons = {d["SeriesDescription"]: d["reasons"] for d in result.decisions}
    assert reasons["CT thick"]["CT Series 4"].startswith("not evaluated: 'CT Series 4' takes the first match only")
    assert reasons["CT coronal MPR"]["CT Series 4"].startswith("not evaluated")
    assert reasons["T1 axial"]["CT Series 2"] == "Modality 'MR' does not match 'CT'"
    assert reasons["CT abdomen"]["CT Series 3"] == "SliceThickness 2.500000 not in [3, 5]"
    assert reasons["CT abdomen"]["CT Series 2"].startswith("SeriesDescription 'CT abdomen' does not match 'Not to")
    for d in result.decisions:  # every series has a decision under every selection
        assert d["selected_by"] or set(d["reasons"]) == {f"CT Series {i}" for i in range(1, 6)}, d


def test_the_forms_that_failed_before(study) -> None:
    """A regex on a number, orientation names, string equality before regex, and substring terms."""

    def names(conditions: dict) -> list[str]:
        rules = {"selections": [{"name": "s", "conditions": conditions}]}
        return _selected(study, rules, all_matched=True).get("s", [])

    assert names({"SliceThickness": "(.*?)"}) == ["CT abdomen", "CT thick", "CT coronal MPR", "T1 axial", "PET AC"]
    assert names({"SliceThickness": r"2\.5.*"}) == ["CT abdomen", "CT coronal MPR"]  # fullmatch on the text
    assert names({"SliceThickness": "2.5"}) == []  # "2.500000" is not a full match of 2.5
    assert names({"SliceThickness": 3.27}) == ["PET AC"]
    assert names({"SliceThickness": [3.0, "!="], "Modality": "CT"}) == ["CT abdomen", "CT thick", "CT coronal MPR"]
    assert names({"ImageOrientationPatient": "coronal"}) == ["CT coronal MPR"]
    assert names({"Modality": "T"}) == ["CT abdomen", "CT thick", "CT coronal MPR", "PET AC"]  # re.search, as MONAI
    assert names({"Modality": "^(CT|MR)$"}) == ["CT abdomen", "CT thick", "CT coronal MPR", "T1 axial"]
    assert names({"ImageType": "prim"}) == ["CT abdomen", "CT thick", "T1 axial", "PET AC"]  # MONAI's substring test
    assert names({"ImageType": "!DERIVED", "Modality": "CT"}) == ["CT abdomen", "CT thick"]


@pytest.mark.parametrize(("conditions", "message"), [
    ({"Modality": ["SR"]}, r"expected Modality \(single-valued\) .* as a string or regular expression; got \['SR'\] "
                           r"\(for one of several values use a regex like '\^\(CT\|MR\)\$'\)"),
    ({"Modality": ["CT", "MR"]}, r"Modality \(single-valued\)"),
    ({"Modalty": "CT"}, r"expected a DICOM keyword at selections\[0\]\.conditions\.Modalty; got 'Modalty' "
                        r"\(did you mean 'Modality'\?\)"),
    ({"SeriesDescription": "(unclosed"}, r"expected a valid regular expression for SeriesDescription"),
    ({"SliceThickness": "[0-9"}, r"expected a valid regular expression for SliceThickness"),
    ({"SliceThickness": [2, "=>"]}, r"expected a comparator among \['>', '>=', '<', '<=', '!='\] for SliceThickness"),
    ({"SliceThickness": [1, 2, 3]}, r"as a number, a regex, \[lo, hi\] or \[value, comparator\]"),
    ({"SliceThickness": True}, r"expected SliceThickness .* as a number"),
    ({"ImageOrientationPatient": "Oblique"}, r"as one of \['Sagittal', 'Coronal', 'Axial'\]; got 'Oblique'"),
    ({"any": [{"Modality": "CT"}, {"SeriesDescripton": "x"}]}, r"did you mean 'SeriesDescription'"),
])  # fmt: skip
def test_bad_conditions_are_refused_when_loaded(conditions: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_rules({"selections": [{"name": "x", "conditions": conditions}]})


def test_unknown_selection_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected selection 0 keys among .*; got \['all_match'\]"):
        load_rules({"selections": [{"name": "x", "conditions": {"Modality": "CT"}, "all_match": True}]})


def test_a_bad_rule_stops_the_operator_at_construction(tmp_path: Path) -> None:
    from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp

    from clara_stream.runtime import Application

    class App(Application):
        def compose(self) -> None:
            SeriesSelectorOp(self, name="selector", rules={"selections": [{"conditions": {"Modality": ["CT"]}}]})

    with pytest.raises(ValueError, match=r"Modality \(single-valued\)"):
        App({}).compose_graph()


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp

    from clara_stream.runtime import Application

    class App(Application):
        def compose(self) -> None:
            SeriesSelectorOp(self, name="selector", rules=str(tmp_path / "rules.json"))

    with pytest.raises(ValueError, match=r"expected rules JSON or an existing .json file; got '.*rules.json'"):
        App({}).compose_graph()
