"""MONAI Bundles: organ_segmentation runs a bundle built from the repo's own model, and its mask
agrees with MONAI running that same bundle its own way (ConfigParser → LoadImaged … Spacingd →
SlidingWindowInferer → softmax/argmax) on the series as SimpleITK reads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.operators.volume.bundle import card_from_bundle, write_bundle
from clara_stream.operators.volume.mhd import read_mhd
from clara_stream.operators.volume.segment import ModelCard

from .test_apps import run_cli

MODEL = Path(__file__).resolve().parents[2] / "apps" / "organ_segmentation" / "model"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(MODEL, tmp_path_factory.mktemp("bundle") / "organ_bundle")


def _monai_labels(bundle: Path, nifti: Path, reference: sitk.Image) -> np.ndarray:
    """MONAI executes the bundle; its RAS prediction is put back on the series grid by SimpleITK."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    data = parser.get_parsed_content("preprocessing")({"image": str(nifti)})
    net, inferer = parser.get_parsed_content("network"), parser.get_parsed_content("inferer")
    with torch.inference_mode():
        data["pred"] = inferer(data["image"][None], net)[0]
    pred = parser.get_parsed_content("postprocessing")(data)["pred"]
    ras = np.asarray(pred.affine, dtype=float)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.asarray(pred[0]).astype(np.uint8).transpose(2, 1, 0))
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    back = sitk.Resample(img, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(back)


def test_organ_segmentation_with_a_bundle_matches_monai_running_it(bundle: Path, ct_sample: dict[str, Path],
                                                                   tmp_path: Path) -> None:  # fmt: skip
    """Fails if the operator ignores the bundle's spacing/window/ROI, flips an axis on the way to
    RAS, or reads label names from elsewhere."""
    out = tmp_path / "out"
    res = run_cli("run", "organ_segmentation", "--input", str(ct_sample["dicom"]), "--output", str(out),
                  "--set", f"inference.model={bundle}", "--set", "inference.backend=torch")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    ours, _ = read_mhd(out / "mask.mhd")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_sample["dicom"])))
    series = reader.Execute()
    nifti = tmp_path / "ct.nii.gz"
    sitk.WriteImage(series, str(nifti))
    theirs = _monai_labels(bundle, nifti, series)
    truth, _ = read_mhd(ct_sample["labels"])
    assert theirs.shape == ours.shape
    for value in range(1, 6):
        a, b, t = ours == value, theirs == value, truth == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9, f"label {value}: ours vs MONAI"
        assert 2 * (a & t).sum() / (a.sum() + t.sum()) > 0.85, f"label {value}: ours vs ground truth"


def _edited(bundle: Path, tmp_path: Path, inference: dict | None = None, meta: dict | None = None) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(bundle, copy)
    for name, edit in (("inference.json", inference), ("metadata.json", meta)):
        if edit:
            path = copy / "configs" / name
            doc = json.loads(path.read_text())
            edit(doc) if callable(edit) else doc.update(edit)
            path.write_text(json.dumps(doc))
    return copy


def _pre(doc: dict, target: str) -> dict:
    return next(t for t in doc["preprocessing"]["transforms"] if t["_target_"] == target)


def test_card_keys_come_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """Spacing through an @reference, window, scaled range, ROI and label names all follow edits."""

    def edit(doc: dict) -> None:
        doc["pixdim"] = [2.5, 0.9, 0.7]
        _pre(doc, "Spacingd")["pixdim"] = "@pixdim"
        _pre(doc, "ScaleIntensityRanged").update(a_min=-1000, a_max=400, b_min=-1.0, b_max=1.0)
        doc["roi_size"] = [96, 80, 32]

    def rename(doc: dict) -> None:
        doc["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] = "hepar"

    card = ModelCard.load(_edited(bundle, tmp_path, edit, rename))
    assert card.spacing_mm == (2.5, 0.9, 0.7) and card.hu_window == (-1000.0, 400.0)
    assert card.scaled_range == (-1.0, 1.0) and card.roi_size == (96, 80, 32)
    assert card.labels[1] == "hepar" and card.files == {"torchscript": "models/model.ts", "onnx": "models/model.onnx"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: _pre(d, "Orientationd").update(axcodes="LPS"), "expected Orientationd axcodes 'RAS'; got 'LPS'"),
    (lambda d: d["postprocessing"]["transforms"][0].update(softmax=False, sigmoid=True), "expected a softmax head"),
    (lambda d: d["preprocessing"]["transforms"].remove(_pre(d, "Spacingd")), "expected a Spacingd transform"),
    (lambda d: _pre(d, "ScaleIntensityRanged").update(clip=False), "expected ScaleIntensityRanged clip=true"),
])  # fmt: skip
def test_bundles_the_operator_cannot_honour_are_refused(bundle: Path, tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(ValueError, match=rf"MONAI bundle: {message}.*inference.json"):
        card_from_bundle(_edited(bundle, tmp_path, edit))


def test_bundle_without_weights_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = _edited(bundle, tmp_path)
    for f in (copy / "models").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="expected models/model.ts or models/model.onnx; got neither"):
        card_from_bundle(copy)
