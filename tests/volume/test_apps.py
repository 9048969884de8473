"""The four volume apps run from the CLI on the phantom and on real series; bad input fails clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.operators.dicom.seg import read_dicom_seg
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study
from clara_stream.operators.volume.mhd import read_mhd

from clara_stream.geometry import ImageGeometry

CLI = [sys.executable, "-m", "clara_stream.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def organ_run(tmp_path_factory: pytest.TempPathFactory, ct_sample: dict[str, Path]) -> Path:
    out = tmp_path_factory.mktemp("organ")
    res = run_cli("run", "organ_segmentation", "--input", str(ct_sample["dicom"]), "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def test_organ_segmentation_phantom_outputs(organ_run: Path, ct_sample: dict[str, Path]) -> None:
    out = organ_run
    for name in ("seg.dcm", "rtstruct.dcm", "mask.mhd", "mask.raw", "selection.json", "render/config.meta",
                 "render/config_render.json", "render/original.mhd", "render/mask.mhd"):  # fmt: skip
        assert (out / name).is_file(), name
    if shutil.which("dciodvfy"):
        check = subprocess.run(["dciodvfy", str(out / "seg.dcm")], capture_output=True, text=True, timeout=120)
        assert not [ln for ln in (check.stdout + check.stderr).splitlines() if ln.startswith("Error")]
    truth, truth_geom = read_mhd(ct_sample["labels"])
    mask, geom = read_mhd(out / "mask.mhd")
    assert geom.allclose(truth_geom, atol=1e-4) and mask.shape == truth.shape
    vol = series_to_volume(scan_study(ct_sample["dicom"]).all_series()[0])
    seg = read_dicom_seg(out / "seg.dcm", vol.source.headers)
    names = json.loads(ct_sample["label_names"].read_text())["labels"]
    dice = {}
    for value, spec in names.items():
        np.testing.assert_array_equal(seg[spec["name"]], mask == int(value))  # SEG == MHD mask
        a, b = mask == int(value), truth == int(value)
        dice[spec["name"]] = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert min(dice.values()) > 0.85, dice  # held-out phantom (seed 0 is not a training seed)
    assert np.mean(list(dice.values())) > 0.9, dice


def test_organ_segmentation_real_j2k_ct_without_uids(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "totalsegmentator_ct_dicom/tests/reference_files/example_ct_dicom"
    skip = ["--set", "seg_writer.on_missing_uids=skip", "--set", "rtstruct_writer.on_missing_uids=skip"]
    res = run_cli("run", "organ_segmentation", "--input", str(src), "--output", str(tmp_path), *skip)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "empty StudyInstanceUID" in (tmp_path / "seg.skipped.txt").read_text()
    assert (tmp_path / "rtstruct.skipped.txt").is_file() and not (tmp_path / "seg.dcm").exists()
    mask, geom = read_mhd(tmp_path / "mask.mhd")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(src)))
    ref = reader.Execute()
    assert geom.allclose(ImageGeometry.from_sitk(ref), atol=1e-4)
    assert mask.shape == sitk.GetArrayFromImage(ref).shape and mask.dtype == np.uint8


def test_organ_segmentation_refuses_mr_and_missing_input(tmp_path: Path, shared_data: Path) -> None:
    res = run_cli("run", "organ_segmentation", "--input", str(shared_data / "pacsman_mr_dicomseries"),
                  "--output", str(tmp_path))  # fmt: skip
    assert res.returncode != 0
    assert "expected at least one series to match the rules" in res.stdout + res.stderr
    sel = json.loads((tmp_path / "selection.json").read_text())
    assert "Modality 'MR' does not match" in json.dumps(sel["decisions"])
    res = run_cli("run", "organ_segmentation", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path))
    assert res.returncode != 0 and "nowhere" in res.stdout + res.stderr


def test_series_selection_on_real_data(tmp_path: Path, shared_data: Path) -> None:
    res = run_cli("run", "series_selection", "--input", str(shared_data), "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "selection.json").read_text())
    selected = {d["SeriesDescription"] for d in doc["decisions"] if d["selected_by"]}
    assert "CT Body 3.0" in selected  # the J2K CT
    by_uid = {d["SeriesInstanceUID"]: d for d in doc["decisions"]}
    exported = sorted(p for p in (tmp_path / "selected").iterdir())
    assert len(exported) == len(doc["selected"])
    assert sum(len(list(p.iterdir())) for p in exported) == sum(by_uid[s["SeriesInstanceUID"]]["instances"]
                                                              for s in doc["selected"])  # fmt: skip
    skipped = {Path(s["path"]).name for s in doc["skipped"]}
    assert {"SOURCES.md", "rt.dcm", "endo.mp4"} <= skipped
    assert any("rejected as scout/localizer" in json.dumps(d["reasons"]) for d in doc["decisions"])


def test_volume_crop_mhd_and_dicom(tmp_path: Path, ct_sample: dict[str, Path], shared_data: Path) -> None:
    labels, geom = read_mhd(ct_sample["labels"])
    res = run_cli("run", "volume_crop", "--input", str(ct_sample["labels"]), "--output", str(tmp_path / "a"),
                  "--set", "crop.box_mm=null", "--set", "crop.box=[[10, 20, 30], [40, 100, 90]]")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    crop, cgeom = read_mhd(tmp_path / "a" / "cropped.mhd")
    np.testing.assert_array_equal(crop, labels[10:40, 20:100, 30:90])
    np.testing.assert_allclose(cgeom.origin, geom.index_to_physical((10, 20, 30)), atol=1e-6)
    src = shared_data / "totalsegmentator_ct_dicom/tests/reference_files/example_ct_dicom"
    res = run_cli("run", "volume_crop", "--input", str(src), "--output", str(tmp_path / "b"))
    assert res.returncode == 0, res.stdout + res.stderr
    img = sitk.ReadImage(str(tmp_path / "b" / "cropped.mhd"))
    assert img.GetSize()[0] < 512 and img.GetSpacing()[0] == pytest.approx(0.9765625)
    res = run_cli("run", "volume_crop", "--input", str(ct_sample["labels"]), "--output", str(tmp_path / "c"),
                  "--set", "crop.box_mm=null", "--set", "crop.box=[[0, 0, 0], [99, 10, 10]]")  # fmt: skip
    assert res.returncode != 0 and "expected 0 <= start < stop <= 48 on axis z" in res.stdout + res.stderr


def test_multi_ai_on_phantom(tmp_path: Path, ct_sample: dict[str, Path]) -> None:
    res = run_cli("run", "multi_ai", "--input", str(ct_sample["dicom"]), "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    merged, geom = read_mhd(tmp_path / "labels.mhd")
    truth, tgeom = read_mhd(ct_sample["labels"])
    assert geom.allclose(tgeom, atol=1e-4)
    assert set(np.unique(merged)) <= {0, 1, 2, 3, 4, 5}
    # the kidney labels come only from the kidney region (its box starts at y = 25 % of the extent)
    kid = np.isin(merged, (3, 4))
    assert not kid[:, : int(0.25 * merged.shape[1])].any() and not kid[int(np.ceil(0.75 * merged.shape[0])) :].any()
    assert (tmp_path / "seg.dcm").is_file()
