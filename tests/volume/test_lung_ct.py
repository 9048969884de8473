"""lung_ct from the CLI on chest phantoms (1.9 x 1.7 x 6 mm voxels): the lung mask (MetaImage and
DICOM SEG) against ground truth, read back by SimpleITK and highdicom-independent pydicom; the
classifier's CSV separates a chest with ground-glass-like lesions from a clear one."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from clara_stream.operators.volume.classify import ClassifierCard, prepare_region

from clara_stream.geometry import ImageGeometry
from clara_stream.samples import write_sample

from .test_apps import run_cli

APP = Path(__file__).resolve().parents[2] / "apps" / "lung_ct"


@pytest.fixture(scope="module")
def chests(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[dict[str, Path], Path]]:
    out = {}
    for lesions in (True, False):
        root = tmp_path_factory.mktemp(f"chest_{lesions}")
        sample = write_sample("chest", root / "in", seed=7 if lesions else 8, lesions=lesions)
        res = run_cli("run", "lung_ct", "--input", str(sample["dicom"]), "--output", str(root / "out"))
        assert res.returncode == 0, res.stdout + res.stderr
        out[lesions] = (sample, root / "out")
    return out


def _probabilities(out: Path) -> dict[str, float]:
    with open(out / "probabilities.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "probability"]
    return {name: float(p) for name, p in rows[1:]}


def test_lung_mask_is_on_the_series_grid_and_matches_ground_truth(chests, dciodvfy) -> None:
    """Fails if the mask is written on another grid (x/y spacing swapped: 1.9 vs 1.7 mm) or misses the lungs."""
    sample, out = chests[True]
    reader = sitk.ImageSeriesReader()
    ct = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(sample["dicom"])))
    mask = sitk.ReadImage(str(out / "lung_mask.mhd"))
    assert mask.GetSize() == ct.GetSize() == (192, 160, 40)
    np.testing.assert_allclose(mask.GetSpacing(), ct.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(mask.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    pred = sitk.GetArrayFromImage(mask) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(sample["labels"]))) > 0
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.9
    assert dciodvfy(out / "seg.dcm") == []
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.SegmentSequence[0].SegmentLabel == "lung"
    frames = seg.pixel_array.reshape(-1, 160, 192) > 0
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in sample["dicom"].glob("*.dcm")}
    for i, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):  # each frame on its source slice
        src = by_uid[fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        z = float(src.ImagePositionPatient[2])
        k = int(round((z - ct.GetOrigin()[2]) / ct.GetSpacing()[2]))
        np.testing.assert_array_equal(frames[i], pred[k])


def test_classifier_consumes_the_region_and_separates_the_classes(chests) -> None:
    with_lesions, clear = _probabilities(chests[True][1]), _probabilities(chests[False][1])
    assert set(with_lesions) == {"not covid-like", "covid-like"}
    assert sum(with_lesions.values()) == pytest.approx(1.0, abs=1e-5)
    assert with_lesions["covid-like"] > 0.5 > clear["covid-like"]


def test_region_input_ignores_everything_outside_the_mask() -> None:
    """Fails if voxels outside the mask leak into the classifier input or the box is taken on the wrong axes."""
    card = ClassifierCard.load(APP / "model" / "classifier")
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 200, (20, 30, 40)).astype(np.int16)
    mask = np.zeros(hu.shape, np.uint8)
    mask[5:9, 10:20, 3:30] = 1
    geom = ImageGeometry((0.0, 0.0, 0.0), (0.7, 0.9, 2.5))
    a = prepare_region(hu, mask, geom, card)
    hu2 = hu.copy()
    hu2[mask == 0] = rng.integers(-1000, 200, int((mask == 0).sum()))
    np.testing.assert_array_equal(prepare_region(hu2, mask, geom, card), a)
    assert a.shape == (1, 1, *card.input_size)
    with pytest.raises(ValueError, match="non-empty region mask"):
        prepare_region(hu, np.zeros_like(mask), geom, card)

