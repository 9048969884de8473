"""Study scan skips and lists junk; selection follows MONAI Deploy's rules and our extensions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clara_stream.operators.dicom.selector import load_rules, localizer_reason, select_series
from clara_stream.operators.dicom.study import scan_study


@pytest.fixture
def junk_study(tmp_path: Path, ct_sample: dict[str, Path], pydicom_dicomdirtests: Path, shared_data: Path) -> Path:
    """The phantom series plus junk: text, a truncated DICOM, a DICOMDIR, an RTSTRUCT, a duplicate, a folder."""
    study = tmp_path / "study"
    shutil.copytree(ct_sample["dicom"], study / "ct")
    (study / "notes.txt").write_text("not dicom\n")
    first = sorted((study / "ct").iterdir())[0]
    (study / "truncated.dcm").write_bytes(first.read_bytes()[:300])
    (study / "empty.dcm").write_bytes(b"")
    shutil.copy(pydicom_dicomdirtests / "DICOMDIR", study / "DICOMDIR")
    shutil.copy(shared_data / "rtutils_rtstruct_ct/tests/mock_data/rt.dcm", study / "rt.dcm")
    shutil.copy(first, study / "zz_copy_of_first.dcm")
    (study / "sub" / "deeper").mkdir(parents=True)
    return study


def test_junk_is_skipped_and_listed(junk_study: Path) -> None:
    index = scan_study(junk_study)
    (series,) = index.all_series()
    assert len(series) == 48
    reasons = {s.path.name: s.reason for s in index.skipped}
    assert set(reasons) == {"notes.txt", "truncated.dcm", "empty.dcm", "DICOMDIR", "rt.dcm", "zz_copy_of_first.dcm"}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "not an image instance" in reasons["rt.dcm"] and "RTSTRUCT" in reasons["rt.dcm"]
    assert "duplicate SOPInstanceUID" in reasons["zz_copy_of_first.dcm"]
    assert reasons["truncated.dcm"] and reasons["empty.dcm"]
    doc = index.to_dict()
    assert json.loads(json.dumps(doc))["skipped"][0]["reason"]
    assert doc["studies"][0]["series"][0]["instances"] == 48


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"expected a file or folder; got .*nowhere"):
        scan_study(tmp_path / "nowhere")


def test_monai_deploy_rules_and_localizer_rejection(pydicom_dicomdirtests: Path) -> None:
    index = scan_study(pydicom_dicomdirtests)
    rules = {"selections": [{"name": "CT Series", "conditions": {"Modality": "(?i)CT", "ImageType": ["PRIMARY"]}}]}
    result = select_series(index, rules)
    # first match per study (MONAI Deploy semantics): one CT series from each of the two CT studies
    assert sorted(s.description for _, s in result.selected) == ["Routine Brain", "SmartScore - Gated 0.5 sec"]
    decisions = {d["SeriesDescription"]: d for d in result.decisions}
    assert "LOCALIZER" in decisions["Scout"]["reasons"]["localizer"]
    assert "names a scout/localizer" in decisions["FAST LOCALIZER"]["reasons"]["localizer"]
    assert "orientations" in decisions["ANGIO Projected from   C"]["reasons"]["localizer"]
    assert "not a volume" in decisions["Cervical LAT"]["reasons"]["localizer"]
    # within one study: the first match in scan order, or the largest with sort_by_sop_instance_count
    study = scan_study(pydicom_dicomdirtests / "98892001")
    any_ct = {"selections": [{"name": "CT", "conditions": {"Modality": "CT"}}]}
    assert [len(s) for _, s in select_series(study, any_ct, reject_localizers=False).selected] == [2]
    result = select_series(study, any_ct, reject_localizers=False, sort_by_sop_instance_count=True)
    assert [len(s) for _, s in result.selected] == [5]
    result = select_series(study, any_ct, reject_localizers=False, all_matched=True)
    assert sorted(len(s) for _, s in result.selected) == [2, 5]
    # with the built-in rule off, the 2-slice scout matches too (its ImageType holds PRIMARY)
    result = select_series(index, rules, all_matched=True, reject_localizers=False)
    assert "Scout" in [s.description for _, s in result.selected]


def test_numbers_ranges_exclusions_and_composition(pydicom_dicomdirtests: Path) -> None:
    index = scan_study(pydicom_dicomdirtests)

    def names(conditions: dict, **kw) -> list[str]:
        rules = {"selections": [{"name": "s", "conditions": conditions, "all_matched": True}]}
        return sorted(s.description for _, s in select_series(index, rules, **kw).selected)

    assert names({"Modality": "CT", "SliceThickness": [1.0, 2.0]}) == ["Routine Brain"]
    assert names({"Modality": "CT", "SliceThickness": [2.0, ">"]}) == ["SmartScore - Gated 0.5 sec"]
    assert names({"Modality": "CT", "ImageType": ["!LOCALIZER", "AXIAL"]}, reject_localizers=False) == [
        "Routine Brain", "SmartScore - Gated 0.5 sec"]  # fmt: skip
    assert names({"any": [{"SeriesDescription": "^routine"}, {"SeriesDescription": "smartscore"}]}) == [
        "Routine Brain", "SmartScore - Gated 0.5 sec"]  # fmt: skip
    assert names({"Modality": "CT", "not": {"SeriesDescription": "brain"}}) == ["SmartScore - Gated 0.5 sec"]
    assert names({"instances": {"match": "all", "conditions": {"InstanceNumber": [1, 3]}}, "Modality": "CT"}) == []
    assert names({"instances": {"match": "any", "conditions": {"InstanceNumber": 180}}, "Modality": "CT"}) == [
        "Routine Brain"]  # fmt: skip
    assert names({"instances": {"match": "all", "conditions": {"InstanceNumber": [6, 10]}}}) == [
        "SmartScore - Gated 0.5 sec"]  # fmt: skip
    assert names({"min_instances": 5}) == ["SmartScore - Gated 0.5 sec"]
    assert names({"Manufacturer": "no such vendor"}) == []


def test_no_rules_selects_every_volume_series(ct_sample: dict[str, Path]) -> None:
    index = scan_study(ct_sample["dicom"])
    result = select_series(index, None)
    assert len(result.selected) == 1 and localizer_reason(result.selected[0][1]) is None


@pytest.mark.parametrize(
    "rules, message",
    [
        ("{not json", "expected rules as JSON"),
        ({"selections": []}, "at least one selection"),
        ({"selections": [{"name": "x"}]}, "with 'conditions'"),
        ({"selections": [{"conditions": {"any": {"Modality": "CT"}}}]}, r"expected a list under .*any"),
        ({"selections": [{"conditions": {"bad key": 1}}]}, "expected a DICOM keyword"),
        ({"selections": [{"conditions": {"instances": {"match": "most", "conditions": {}}}}]}, "instances as"),
    ],
)
def test_bad_rules_are_refused(rules: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_rules(rules)
