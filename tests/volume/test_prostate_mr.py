"""prostate_mr from the CLI on the pelvis MR phantom (oblique, 0.9 x 1.1 mm pixels, 3 mm slices):
RTSTRUCT checked with an independent rasteriser (skimage), the mask series read back by pydicom and
SimpleITK on the source's geometry, the render dataset, and the model's quality on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from clara_stream.operators.dicom.mask_series import write_mask_series
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study
from clara_stream.operators.volume.mhd import read_mhd

from clara_stream.errors import DicomInputError
from clara_stream.samples import write_sample

from .test_apps import run_cli
from .test_rtstruct import _rasterise_independently

GEOMETRY_KEYS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                 "FrameOfReferenceUID", "StudyInstanceUID", "PatientID", "Rows", "Columns")  # fmt: skip


@pytest.fixture(scope="module")
def pelvis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sample("pelvis_mr", tmp_path_factory.mktemp("pelvis"), seed=5)


@pytest.fixture(scope="module")
def prostate_run(pelvis: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prostate")
    res = run_cli("run", "prostate_mr", "--input", str(pelvis["dicom"]), "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def _sources(pelvis: dict[str, Path]) -> list[pydicom.Dataset]:
    return series_to_volume(scan_study(pelvis["dicom"]).all_series()[0]).source.headers


def test_mask_series_lies_on_the_source_grid(prostate_run: Path, pelvis: dict[str, Path], dciodvfy) -> None:
    """Fails if a slice's position/orientation/spacing is recomputed wrongly (oblique, anisotropic),
    slices are reordered, the series leaves the study, or rows/columns are swapped."""
    sources = {h.SOPInstanceUID: h for h in _sources(pelvis)}
    files = sorted((prostate_run / "mask_series").glob("*.dcm"))
    assert len(files) == len(sources) == 24
    series_uids = set()
    for f in files:
        ds = pydicom.dcmread(f)
        src = sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        for key in GEOMETRY_KEYS:
            assert ds[key].value == src[key].value, (f.name, key)
        assert ds.SOPClassUID == src.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and list(ds.ImageType) == ["DERIVED", "SECONDARY", "M"]
        series_uids.add(ds.SeriesInstanceUID)
    assert len(series_uids) == 1
    assert dciodvfy(files[0]) == [] and dciodvfy(files[-1]) == []
    # SimpleITK (GDCM) reads both series onto one grid: same origin, spacing, direction
    reader = sitk.ImageSeriesReader()
    mask = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(prostate_run / "mask_series")))
    src = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(pelvis["dicom"])))
    assert mask.GetSize() == src.GetSize() == (176, 144, 24)
    np.testing.assert_allclose(mask.GetOrigin(), src.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(mask.GetSpacing(), (0.9, 1.1, 3.0), atol=1e-4)
    np.testing.assert_allclose(mask.GetDirection(), src.GetDirection(), atol=1e-5)


def test_rtstruct_and_mask_series_agree_exactly_and_segment_the_prostate(prostate_run: Path,
                                                                          pelvis: dict[str, Path],
                                                                          dciodvfy) -> None:  # fmt: skip
    """RTSTRUCT rasterised by skimage from each slice's own header == the mask series pixels; the
    mask series, the render dataset's mask and the ground truth agree (model Dice > 0.8)."""
    rt = prostate_run / "rtstruct.dcm"
    assert dciodvfy(rt) == []
    ds = pydicom.dcmread(rt)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["prostate"]
    sources = _sources(pelvis)
    assert ds.StudyInstanceUID == sources[0].StudyInstanceUID and ds.SeriesInstanceUID != sources[0].SeriesInstanceUID
    by_uid = {pydicom.dcmread(f).SourceImageSequence[0].ReferencedSOPInstanceUID: pydicom.dcmread(f).pixel_array
              for f in (prostate_run / "mask_series").glob("*.dcm")}  # fmt: skip
    series_mask = np.stack([by_uid[h.SOPInstanceUID] for h in sources]) > 0
    np.testing.assert_array_equal(_rasterise_independently(rt, sources, 1), series_mask)
    render_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(prostate_run / "render" / "mask.mhd"))) > 0
    np.testing.assert_array_equal(render_mask, series_mask)
    truth, _ = read_mhd(pelvis["labels"])
    dice = 2 * (series_mask & (truth > 0)).sum() / (series_mask.sum() + (truth > 0).sum())
    assert dice > 0.8, dice
    meta = json.loads((prostate_run / "render" / "config.meta").read_text())
    assert meta["labels"]["1"]["name"] == "prostate"


def test_mask_series_refuses_labels_off_the_source_grid(pelvis: dict[str, Path], tmp_path: Path) -> None:
    vol = series_to_volume(scan_study(pelvis["dicom"]).all_series()[0])
    labels = np.zeros(vol.array.shape, np.uint8)
    with pytest.raises(DicomInputError, match="one slice per source instance"):
        write_mask_series(tmp_path / "m", labels[1:], vol.geometry, vol.source.headers, uid_root="1.2.3.",
                          manufacturer="x")  # fmt: skip
    shifted = vol.geometry.__class__(tuple(np.add(vol.geometry.origin, (0, 0, 5.0))), vol.geometry.spacing,
                                     vol.geometry.direction)  # fmt: skip
    with pytest.raises(DicomInputError, match="on the source grid"):
        write_mask_series(tmp_path / "m", labels, shifted, vol.source.headers, uid_root="1.2.3.", manufacturer="x")
    assert not (tmp_path / "m").exists()

