"""Stored pixel values exactly as pydicom and SimpleITK give them: unused bits, sign extension, J2K sign
mismatch, big-endian and deflated syntaxes; truncated files reported as truncated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from clara_stream.errors import DicomInputError
from clara_stream.samples.ct import write_dicom_series

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
GEOMETRY = {"origin": (3.5, -7.25, 11.0), "spacing": (0.7, 0.9, 2.5), "direction": (1, 0, 0, 0, 1, 0, 0, 0, 1)}


def _sitk_series(paths: list[Path]) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in paths])
    return sitk.GetArrayFromImage(reader.Execute())


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                                    DeflatedExplicitVRLittleEndian], ids=lambda u: u.name)  # fmt: skip
@pytest.mark.parametrize(("signed", "bits_stored"), [(1, 12), (0, 12), (0, 10), (1, 16)])
def test_unused_bits_and_byte_order_match_pydicom_and_simpleitk(tmp_path: Path, syntax, signed: int,
                                                                bits_stored: int) -> None:  # fmt: skip
    """Random garbage above BitsStored: fails if signed data is not sign-extended from bit BitsStored-1,
    if unsigned data is not masked, or if big-endian / deflated files are skipped or misread."""
    rng = np.random.default_rng(bits_stored * 2 + signed)
    paths = write_dicom_series(np.zeros((3, 7, 9), np.int16), GEOMETRY, tmp_path, seed=signed)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, signed
        ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
        big = syntax == ExplicitVRBigEndian
        ds.PixelData = rng.integers(0, 65536, (7, 9), dtype=np.uint16).astype(">u2" if big else "<u2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        pydicom.dcmwrite(p, ds, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian,
                         enforce_file_format=True)  # fmt: skip
    index = scan_study(tmp_path)
    assert index.skipped == []
    vol = series_to_volume(index.all_series()[0], rescale=False)
    ordered = [i.path for i in vol.instances]
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in ordered])
    np.testing.assert_array_equal(vol.array, expected)
    np.testing.assert_array_equal(vol.array, _sitk_series(ordered))
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    assert lo <= vol.array.min() and vol.array.max() <= hi


@pytest.mark.parametrize(("name", "lo", "hi"), [("J2K_pixelrep_mismatch.dcm", -2000, 1896),
                                                ("MR_small_bigendian.dcm", 127, 2145),
                                                ("MR_small_expb.dcm", 127, 2145)])  # fmt: skip
def test_pydicom_test_files_match_pydicom_and_simpleitk(name: str, lo: int, hi: int) -> None:
    """pydicom's own files: fails if the J2K codestream's signedness (unsigned, 13 bits, for signed
    data) is trusted over PixelRepresentation (reads 0..8191), or if big endian is skipped."""
    path = TEST_FILES / name
    index = scan_study(path)
    assert index.skipped == [], index.skipped
    vol = series_to_volume(index.all_series()[0], min_slices=1, rescale=False)
    np.testing.assert_array_equal(vol.array[0], pydicom.dcmread(path).pixel_array)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(sitk.ReadImage(str(path))).reshape(vol.array.shape))
    assert (int(vol.array.min()), int(vol.array.max())) == (lo, hi)


def test_a_file_cut_inside_its_header_is_reported_as_truncated(tmp_path: Path) -> None:
    raw = (TEST_FILES / "CT_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[:500])  # inside (0008,0018) SOPInstanceUID
    index = scan_study(tmp_path)
    assert index.studies == {}
    (skipped,) = index.skipped
    assert skipped.reason.startswith("truncated: the file ends at byte 500, inside element (0008,0018)"), skipped


def test_pixel_data_cut_short_names_the_file() -> None:
    index = scan_study(TEST_FILES / "MR_truncated.dcm")
    with pytest.raises(DicomInputError, match=r"expected decodable Pixel Data; got .*less than expected.*"
                                              r"\[MR_truncated.dcm, transfer syntax 1.2.840.10008.1.2.1\]"):
        series_to_volume(index.all_series()[0], min_slices=1)
