"""The one-pass dataset walk (``platform/walk.py``) that the C-STORE check uses instead of pydicom's
parser: on pydicom's own test files (files we did not write) it must find the same UIDs as pydicom,
and on the same files cut short or given a tail it must refuse whatever the pydicom-based check
refuses, and accept only what that check accepts."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import UID

from clara_stream.errors import DicomInputError
from clara_stream.platform import walk
from clara_stream.platform.validate import _check_in_place, _check_walked, _ids, check_instance

ROOT = Path(pydicom.__file__).parent / "data" / "test_files"
#: little-endian files with sequences (nested, private, undefined length), encapsulated and native pixels
NAMES = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_small_odd.dcm",
    "nested_priv_SQ.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "rtplan.dcm",
    "UN_sequence.dcm",
    "priv_SQ.dcm",
]


def _split(name: str) -> tuple[memoryview, bool, Path]:
    path = ROOT / name
    if not path.is_file():
        pytest.fail(f"pydicom test file {name} missing from the wheel")
    raw = path.read_bytes()
    fp = io.BytesIO(raw)
    read_preamble(fp, False)
    ts = UID(str(_read_file_meta_info(fp).TransferSyntaxUID))
    assert ts.is_little_endian
    return memoryview(raw)[fp.tell() :], ts.is_implicit_VR, path


def _verdict(fn, body: memoryview, implicit: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the damage it reads past
        try:
            return fn(body, implicit)
        except Exception as exc:  # noqa: BLE001 - any refusal counts; the adapter maps it to a status
            return type(exc).__name__


def _old(body, implicit):
    return _ids(_check_in_place(body, implicit, ""))


def _new(body, implicit):
    """As check_instance does: the walk, or pydicom where the walk is unsure."""
    try:
        return _check_walked(body, implicit, "")
    except walk.Unsure:
        return _old(body, implicit)


@pytest.mark.parametrize("name", NAMES)
def test_the_walk_finds_what_pydicom_reads(name):
    """Fails if the walk mis-measures a header (2- vs 4-byte lengths), skips a sequence wrongly
    or reads a value with its padding: the UIDs would differ from pydicom's."""
    body, implicit, path = _split(name)
    ds = dcmread(path)
    keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
    found = walk.walk(body, implicit, "")
    got = tuple(walk.text(body, found.values.get(int(ds.data_element(k).tag))) if k in ds else "" for k in keys)
    assert got == tuple(str(ds.get(k, "") or "").strip() for k in keys)
    raw = ds._dict.get(0x7FE00010)
    if raw is not None:  # where Pixel Data starts and how long pydicom says it is
        head = len(path.read_bytes()) - len(body)
        assert (found.pixel_at + head, found.pixel_length) == (raw.value_tell, raw.length)


@pytest.mark.parametrize("name", NAMES)
def test_damaged_copies_get_the_verdict_of_the_pydicom_based_check(name):
    """64 cuts spread over the file (many inside sequences and Pixel Data) and four tails: the
    walk must refuse what the pydicom-based check refuses, and every tail. Fails if the walk accepts a
    value running past the end, stray bytes after the last element, an unterminated sequence or
    a well-formed element appended out of tag order."""
    body, implicit, _ = _split(name)
    cuts = sorted({max(1, len(body) * k // 64) for k in range(64)} - {len(body)})
    study_date = b"\x08\x00\x20\x00" + (b"\x08\x00\x00\x00" if implicit else b"DA\x08\x00") + b"20260101"
    tails = (b"\x00" * 7, b"\xde\xad\xbe\xef" * 10, b"\x08\x00", study_date)  # the last: well-formed, out of order
    for copy in [body[:c] for c in cuts]:
        old, new = _verdict(_old, copy, implicit), _verdict(_new, copy, implicit)
        assert isinstance(new, str) if isinstance(old, str) else new == old, (len(copy), old, new)
    for tail in tails:  # damaged by construction: refused, whatever pydicom makes of it
        assert isinstance(_verdict(_new, memoryview(bytes(body) + tail), implicit), str), tail


def test_deep_nesting_is_refused_not_recursed():
    """Sequences nested past walk.MAX_DEPTH are refused by name (work per request is bounded)."""
    item = b""
    for _ in range(walk.MAX_DEPTH + 2):  # (0040,0275) Request Attributes Sequence, undefined lengths
        item = b"\x40\x00\x75\x02" + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item
        item += b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    with pytest.raises(DicomInputError, match="nested at most"):
        walk.walk(memoryview(item), True, "")


def test_an_encoding_the_walk_does_not_read_goes_to_pydicom():
    """SC_rgb_jpeg.dcm says explicit VR in its meta but is implicit inside: the walk is unsure,
    pydicom reads it, and the instance passes as pydicom reads it."""
    body, implicit, path = _split("SC_rgb_jpeg.dcm")
    with pytest.raises(walk.Unsure):
        walk.walk(body, implicit, "")
    head = path.read_bytes()[: len(path.read_bytes()) - len(body)]
    ds = dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = check_instance(head, body, str(ds.SOPInstanceUID), str(ds.SOPClassUID))
    assert got == (ds.StudyInstanceUID, ds.SeriesInstanceUID)


def test_a_number_of_frames_only_pydicom_reads_is_left_to_pydicom():
    """NumberOfFrames "3.0" is a valid IS for pydicom: the walk must defer, not refuse the instance."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 5, 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    ds.add_new(0x00280008, "IS", "3.0")
    ds.PixelData = bytes(range(3 * 5 * 3)) + b"\x00"  # three frames, padded to even length
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=True)
        raw = out.getvalue()
        fp = io.BytesIO(raw)
        read_preamble(fp, False)
        _read_file_meta_info(fp)
        head, body = raw[: fp.tell()], memoryview(raw)[fp.tell() :]
        assert dcmread(io.BytesIO(raw)).NumberOfFrames == 3  # the oracle: pydicom reads it as 3
        got = check_instance(head, body, str(ds.SOPInstanceUID), str(ds.SOPClassUID))
    assert got == (ds.StudyInstanceUID, ds.SeriesInstanceUID)
