"""Whole-dataset checks before success, on pydicom's own test files (files we did not write):
every transfer syntax family must pass intact and be refused truncated or with a tail."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filereader import _read_file_meta_info, read_preamble

from clara_stream.errors import DicomInputError
from clara_stream.platform.validate import DatasetMismatchError, check_instance

FILES = {
    "CT_small.dcm": "explicit VR LE, native 16-bit",
    "MR_small_implicit.dcm": "implicit VR LE",
    "MR_small_bigendian.dcm": "explicit VR BE (whole-parse path)",
    "JPEG2000.dcm": "encapsulated J2K",
    "SC_rgb_rle.dcm": "encapsulated RLE, RGB",
    "SC_rgb_small_odd.dcm": "native RGB, odd rows/columns",
    "image_dfl.dcm": "deflated (whole-parse path)",
    "reportsi.dcm": "no Pixel Data (SR)",
    "waveform_ecg.dcm": "no Pixel Data, large OW waveform",
}


def _split(name: str) -> tuple[bytes, bytes, str, str, str]:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"pydicom test file {name} missing from the wheel")
    raw = Path(path).read_bytes()
    fp = io.BytesIO(raw)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    ds = dcmread(path, stop_before_pixels=True)
    return raw[: fp.tell()], raw[fp.tell() :], str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(meta.TransferSyntaxUID)


@pytest.mark.parametrize("name", FILES)
def test_intact_files_pass_and_damaged_ones_are_refused(name):
    """Fails if any intact file is refused, or a cut (1001 bytes), a 7-byte zero tail or a 40-byte
    garbage tail is accepted (pydicom itself reads the last two silently)."""
    head, body, sop, cls, ts = _split(name)
    study, series = check_instance(head, body, sop, cls, ts)
    ds = dcmread(io.BytesIO(head + body))
    assert (study, series) == (ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert check_instance(head, body, sop, cls) == (study, series)  # transfer syntax read from the head
    if "deflated" in FILES[name]:
        return  # the deflate stream's own end hides a tail; truncation still fails to inflate
    for damaged in (body[:-1001], body + b"\x00" * 7, body + b"\xde\xad\xbe\xef" * 10):
        with pytest.raises(DicomInputError):
            check_instance(head, damaged, sop, cls, ts)


def test_pixel_data_of_the_wrong_length_is_a_dataset_mismatch():
    head, _, sop, cls, ts = _split("CT_small.dcm")
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[:-2]  # well-formed, but one pixel short of Rows x Columns
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    with pytest.raises(DatasetMismatchError, match=r"of 32768 bytes .*got 32766"):
        check_instance(raw[: len(head)], raw[len(head) :], sop, cls, ts)


def test_request_uids_must_match_the_dataset():
    head, body, sop, cls, ts = _split("CT_small.dcm")
    with pytest.raises(DicomInputError, match=r"\(0008,0018\) SOPInstanceUID 1\.2\.3 as requested"):
        check_instance(head, body, "1.2.3", cls, ts)
    with pytest.raises(DicomInputError, match=r"\(0008,0016\) SOPClassUID"):
        check_instance(head, body, sop, "1.2.840.10008.5.1.4.1.1.4", ts)
