"""Every real series gives SimpleITK's geometry (1e-4) and voxels; bad series get the right clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

REAL_SERIES = [
    "totalsegmentator_ct_dicom",  # JPEG 2000 lossless, blank UIDs
    "pacsman_mr_dicomseries",
    "dicom2nifti_cases/tests/data/siemens/anatomical/001",
    "dicom2nifti_cases/tests/data/ge/anatomical/001",
    "rtutils_rtstruct_ct",
]


def _sitk(series) -> sitk.Image:
    folder = str(series.instances[0].path.parent)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, series.series_uid))
    return reader.Execute()


def _assert_same_as_sitk(series, **options) -> None:
    vol = series_to_volume(series, **options)
    ref = _sitk(series)
    ref_geom = ImageGeometry.from_sitk(ref)
    assert vol.geometry.allclose(ref_geom, atol=1e-4), (vol.geometry, ref_geom)
    ref_arr = sitk.GetArrayFromImage(ref)
    assert vol.array.shape == ref_arr.shape
    np.testing.assert_array_equal(vol.array, ref_arr)


@pytest.mark.parametrize("folder", REAL_SERIES)
def test_real_series_match_simpleitk(shared_data: Path, folder: str) -> None:
    index = scan_study(shared_data / folder)
    series = index.all_series()
    assert len(series) == 1
    _assert_same_as_sitk(series[0], min_slices=2)


def test_pydicom_series_match_simpleitk(pydicom_dicomdirtests: Path) -> None:
    # CT5N (5 slices) reads as is; CT2 (steps 202.5, 1.25, 1.25 mm) is refused by default and matches
    # SimpleITK's mean-step reading when irregular="accept".
    ct5n = scan_study(pydicom_dicomdirtests / "98892001" / "CT5N").all_series()[0]
    _assert_same_as_sitk(ct5n)
    ct2 = scan_study(pydicom_dicomdirtests / "77654033" / "CT2").all_series()[0]
    with pytest.raises(DicomInputError, match=r"expected a constant slice step") as err:
        series_to_volume(ct2)
    assert err.value.problem == "missing-slices"
    _assert_same_as_sitk(ct2, irregular="accept")


def test_highdicom_ct2_copy_matches_simpleitk(shared_data: Path) -> None:
    ct2 = scan_study(shared_data / "highdicom_seg_ct" / "pydicom_ref_ct").all_series()[0]
    _assert_same_as_sitk(ct2, irregular="accept")


def test_phantom_matches_simpleitk_and_labels(ct_sample: dict[str, Path]) -> None:
    from clara_stream.operators.volume.mhd import read_mhd

    series = scan_study(ct_sample["dicom"]).all_series()[0]
    _assert_same_as_sitk(series)
    vol = series_to_volume(series)
    labels, geom = read_mhd(ct_sample["labels"])
    assert labels.shape == vol.array.shape and geom.allclose(vol.geometry, atol=1e-4)
    assert vol.array.dtype == np.int16  # unsigned 12-bit + intercept -1024 fits int16: read in place


def test_oblique_multi_orientation_series_refused(pydicom_dicomdirtests: Path) -> None:
    mr700 = scan_study(pydicom_dicomdirtests / "98892003" / "MR700").all_series()[0]
    with pytest.raises(DicomInputError, match=r"expected one ImageOrientationPatient \(0020,0037\)"):
        series_to_volume(mr700)


FAILING = {
    "gantrytilting/001": ("gantry-tilt", r"tilt of 1\d\.\d\d degrees"),
    "notavolume/001": ("not-a-volume", r"all 4 at .* \(not a volume\)"),
    "slicecount/001": ("slice-count", r"at least 3 slices for a volume; got 2"),
    "sliceincrement/001": ("missing-slices", r"steps of \[5\.0, 10\.0\] mm \(1 slice\(s\) missing"),
    "sliceincrement/002": ("missing-slices", r"slice\(s\) missing"),
    "sliceorientation/001": ("mixed-orientation", r"got 2 orientations"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_dicom2nifti_failing_cases_get_clear_errors(shared_data: Path, case: str) -> None:
    problem, pattern = FAILING[case]
    index = scan_study(shared_data / "dicom2nifti_cases/tests/data/failing" / case)
    assert not index.skipped  # the file names with spaces are read too
    (series,) = index.all_series()
    with pytest.raises(DicomInputError, match=pattern) as err:
        series_to_volume(series)
    assert err.value.problem == problem
    assert str(err.value).startswith("SeriesToVolume: expected ")
    assert series.series_uid in str(err.value)


def test_resample_policies_fix_tilt_and_missing_slice(shared_data: Path) -> None:
    base = shared_data / "dicom2nifti_cases/tests/data/failing"
    tilted = scan_study(base / "gantrytilting/001").all_series()[0]
    vol = series_to_volume(tilted, tilt="resample")
    assert vol.array.shape == (4, 512, 512) and any("tilt" in n for n in vol.notes)
    # the de-tilted grid is orthogonal: slice axis = row x column cosines
    d = vol.geometry.direction_matrix
    np.testing.assert_allclose(d[:, 2], np.cross(d[:, 0], d[:, 1]), atol=1e-6)
    gap = scan_study(base / "sliceincrement/001").all_series()[0]
    vol = series_to_volume(gap, irregular="resample")
    assert vol.array.shape[0] == 5 and vol.geometry.spacing[2] == pytest.approx(5.0, abs=1e-3)
    # the interpolated slice lies between its neighbours
    raw = series_to_volume(gap, irregular="accept").array.astype(np.float32)
    lo, hi = np.minimum(raw[-2], raw[-1]), np.maximum(raw[-2], raw[-1])
    missing = [k for k in range(5) if not any(np.array_equal(vol.array[k], r) for r in raw.astype(vol.array.dtype))]
    assert len(missing) == 1
    assert np.all(vol.array[missing[0]] >= lo - 1) and np.all(vol.array[missing[0]] <= hi + 1)


@pytest.mark.parametrize("syntax", ["rle", "j2k", "implicit", "jpeg-lossless", "jpeg-ls"])
def test_compressed_phantom_equals_uncompressed(tmp_path: Path, syntax: str) -> None:
    from clara_stream.samples.ct import write_sample

    ref = write_sample(tmp_path / "ref", shape=(4, 32, 32))
    enc = write_sample(tmp_path / syntax, shape=(4, 32, 32), transfer_syntax=syntax)
    a = series_to_volume(scan_study(ref["dicom"]).all_series()[0])
    b = series_to_volume(scan_study(enc["dicom"]).all_series()[0])
    assert b.instances[0].transfer_syntax != a.instances[0].transfer_syntax or syntax == "explicit"
    np.testing.assert_array_equal(a.array, b.array)
    assert a.geometry.allclose(b.geometry, atol=1e-9)


def test_single_slice_ct_matches_simpleitk(shared_data: Path) -> None:
    # highdicom's ct_image.dcm: one 128² GE CT slice; the z spacing follows GDCM (SpacingBetweenSlices)
    path = shared_data / "highdicom_seg_ct/data/test_files/ct_image.dcm"
    vol = series_to_volume(scan_study(path).all_series()[0], min_slices=1)
    ref = sitk.ReadImage(str(path))
    assert vol.geometry.allclose(ImageGeometry.from_sitk(ref), atol=1e-4)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(ref))
    with pytest.raises(DicomInputError, match="expected at least 3 slices for a volume; got 1"):
        series_to_volume(scan_study(path).all_series()[0])
