"""The four volume apps run from the CLI on the phantom and on real series; bad input fails clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from clara_stream.operators.dicom.rtstruct import read_rtstruct
from clara_stream.operators.dicom.seg import read_dicom_seg
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study
from clara_stream.operators.volume.mhd import read_mhd

from clara_stream.geometry import ImageGeometry

CLI = [sys.executable, "-m", "clara_stream.cli"]
APP_YAML = Path(__file__).resolve().parents[2] / "apps" / "multi_ai" / "app.yaml"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def organ_run(tmp_path_factory: pytest.TempPathFactory, ct_sample: dict[str, Path]) -> Path:
    out = tmp_path_factory.mktemp("organ")
    res = run_cli("run", "organ_segmentation", "--input", str(ct_sample["dicom"]), "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def test_organ_segmentation_phantom_outputs(organ_run: Path, ct_sample: dict[str, Path], dciodvfy) -> None:
    out = organ_run
    for name in ("seg.dcm", "rtstruct.dcm", "mask.mhd", "mask.raw", "selection.json", "render/config.meta",
                 "render/config_render.json", "render/original.mhd", "render/mask.mhd"):  # fmt: skip
        assert (out / name).is_file(), name
    assert dciodvfy(out / "seg.dcm") == [] and dciodvfy(out / "rtstruct.dcm") == []
    truth, truth_geom = read_mhd(ct_sample["labels"])
    mask, geom = read_mhd(out / "mask.mhd")
    assert geom.allclose(truth_geom, atol=1e-4) and mask.shape == truth.shape
    vol = series_to_volume(scan_study(ct_sample["dicom"]).all_series()[0])
    seg = read_dicom_seg(out / "seg.dcm", vol.source.headers)
    names = json.loads(ct_sample["label_names"].read_text())["labels"]
    dice = {}
    rt = read_rtstruct(out / "rtstruct.dcm", vol.source.headers)
    for value, spec in names.items():
        np.testing.assert_array_equal(seg[spec["name"]], mask == int(value))  # SEG == MHD mask
        np.testing.assert_array_equal(rt[spec["name"]], mask == int(value))  # RTSTRUCT == MHD mask, exactly
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


def test_a_failed_run_leaves_no_render_dataset(tmp_path: Path, ct_sample: dict[str, Path]) -> None:
    """A source with a blank SOPClassUID: the SEG writer refuses it by name (was KeyError: '') and the render
    dataset the run may already have published is removed, partial folder included."""
    src = tmp_path / "in"
    shutil.copytree(ct_sample["dicom"], src)
    victim = sorted(src.iterdir())[3]
    ds = pydicom.dcmread(victim)
    ds.SOPClassUID = ""
    ds.save_as(victim)
    out = tmp_path / "out"
    res = run_cli("run", "organ_segmentation", "--input", str(src), "--output", str(out))
    assert res.returncode != 0
    assert "expected source instances with SOPClassUID; got it empty" in res.stdout + res.stderr
    assert (out / "mask.mhd").exists() or (out / "selection.json").exists()  # the run got as far as the writers
    assert not (out / "render").exists() and not (out / "render.partial").exists()


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
    lo, hi = np.array([-120.0, -200.0, -800.0]), np.array([120.0, 0.0, -780.0])  # this CT lies at S -804..-766
    res = run_cli("run", "volume_crop", "--input", str(src), "--output", str(tmp_path / "b"),
                  "--set", f"crop.box_mm=[{lo.tolist()}, {hi.tolist()}]")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    img = sitk.ReadImage(str(tmp_path / "b" / "cropped.mhd"))
    assert img.GetSpacing()[0] == pytest.approx(0.9765625)
    first = np.array(img.TransformIndexToPhysicalPoint((0, 0, 0)))
    last = np.array(img.TransformIndexToPhysicalPoint([n - 1 for n in img.GetSize()]))
    half = np.array(img.GetSpacing()) / 2 + 1e-6  # voxel centres inside the box, within half a voxel
    assert np.all(np.minimum(first, last) >= lo - half) and np.all(np.maximum(first, last) <= hi + half)
    assert abs(img.GetSize()[0] - 240 / 0.9765625) <= 2 and abs(img.GetSize()[1] - 200 / 0.9765625) <= 2
    res = run_cli("run", "volume_crop", "--input", str(ct_sample["labels"]), "--output", str(tmp_path / "c"),
                  "--set", "crop.box_mm=null", "--set", "crop.box=[[0, 0, 0], [99, 10, 10]]")  # fmt: skip
    assert res.returncode != 0 and "expected 0 <= start < stop <= 48 on axis z" in res.stdout + res.stderr
    res = run_cli("run", "volume_crop", "--input", str(ct_sample["labels"]), "--output", str(tmp_path / "d"),
                  "--set", "crop.box_mm=[[900, 900, 900], [950, 950, 950]]")  # fmt: skip
    assert res.returncode != 0 and "expected box_mm to overlap the volume" in res.stdout + res.stderr
    assert not (tmp_path / "d" / "cropped.mhd").exists()


def test_multi_ai_on_phantom(tmp_path: Path, ct_sample: dict[str, Path], dciodvfy) -> None:
    res = run_cli("run", "multi_ai", "--input", str(ct_sample["dicom"]), "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    merged, geom = read_mhd(tmp_path / "labels.mhd")
    truth, tgeom = read_mhd(ct_sample["labels"])
    assert geom.allclose(tgeom, atol=1e-4)
    assert set(np.unique(merged)) <= {0, 1, 2, 3, 4, 5}
    # the kidney labels come only from the kidney region (its box starts at y = 25 % of the extent)
    kid = np.isin(merged, (3, 4))
    assert not kid[:, : int(0.25 * merged.shape[1])].any() and not kid[int(np.ceil(0.75 * merged.shape[0])) :].any()
    # the SEG, read frame by frame with pydicom alone (no highdicom), equals the merged label map
    assert dciodvfy(tmp_path / "seg.dcm") == []
    sources = series_to_volume(scan_study(ct_sample["dicom"]).all_series()[0]).source.headers
    values = {v["label"]: int(k) for k, v in yaml.safe_load(APP_YAML.read_text())["app"]["segments"].items()}
    frames = _seg_frames(tmp_path / "seg.dcm", sources)
    assert set(frames) == {k for k, v in values.items() if (merged == v).any()}
    for label, mask in frames.items():
        np.testing.assert_array_equal(mask, merged == values[label], err_msg=label)


def _seg_frames(path: Path, sources: list) -> dict[str, np.ndarray]:
    """{segment label: bool (z, y, x)} from a BINARY SEG: bits unpacked LSB first across frames, each frame
    placed by its referenced source instance and checked against its ImagePositionPatient."""
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "BINARY" and ds.BitsAllocated == 1
    rows, cols, n = int(ds.Rows), int(ds.Columns), int(ds.NumberOfFrames)
    bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")[: n * rows * cols]
    bits = bits.reshape(n, rows, cols).astype(bool)
    label_of = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    slice_of = {str(h.SOPInstanceUID): k for k, h in enumerate(sources)}
    out: dict[str, np.ndarray] = {}
    for f, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        label = label_of[int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        k = slice_of[uid]
        ipp = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(ipp, [float(v) for v in sources[k].ImagePositionPatient], atol=1e-3)
        out.setdefault(label, np.zeros((len(sources), rows, cols), bool))[k] |= bits[f]
    return out
