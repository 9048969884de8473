"""Checks a received instance completely before the SCP may answer success.

The whole dataset is parsed (not only the header), every element must hold the bytes its length
declares, nothing may follow the last element, and Pixel Data must be as long as Rows × Columns ×
Samples per Pixel × Bits Allocated × Number of Frames (native) or well-formed fragments
(encapsulated). dcmtk's storescp refuses such bytes too; a truncated or garbage-tailed instance
must never be acknowledged and stored.
"""

from __future__ import annotations

import io
import re

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from clara_stream.errors import DicomInputError

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNDEFINED = 0xFFFFFFFF
_PIXEL_TAGS = {Tag(0x7FE0, 0x0010): "PixelData", Tag(0x7FE0, 0x0008): "FloatPixelData",
               Tag(0x7FE0, 0x0009): "DoubleFloatPixelData"}
_FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}


class DatasetMismatchError(DicomInputError):
    """The dataset parses but does not match what its own attributes declare (Pixel Data length)."""


def is_uid(value: str) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters (safe as a file or folder name)."""
    return len(value) <= 64 and bool(UID_RE.match(value))


def check_instance(head: bytes, body: memoryview | bytes, sop_uid: str, sop_class: str) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID) of a fully checked encoded instance.

    ``head`` is the preamble + file meta, ``body`` the dataset as it arrived.

    Raises
    ------
    DicomInputError
        The bytes do not parse, an element is cut short, bytes follow the last element, a UID is
        missing or not a UID, or the SOP Class/Instance UID differ from the C-STORE request's.
    DatasetMismatchError
        Pixel Data is shorter or longer than the image attributes declare, or its fragments are
        malformed.
    """
    where = f"[SOP Instance {sop_uid}]"
    fp = io.BytesIO(b"".join((head, body)))  # one copy of the received bytes
    try:
        ds = dcmread(fp)
        end = fp.tell()
        tags = list(ds.keys())
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError, NotImplementedError) as exc:
        raise DicomInputError(
            f"C-STORE: expected a decodable dataset; got {type(exc).__name__}: {exc} {where}"
        ) from None
    total = len(fp.getbuffer())
    if tags and str(ds.file_meta.get("TransferSyntaxUID", "")) != _DEFLATED:
        end = _element_end(fp.getbuffer(), ds._dict[tags[-1]], end)
        if end != total:
            raise DicomInputError(
                f"C-STORE: expected the dataset to end with its last element; got {total - end:+d} byte(s) "
                f"after it (truncated or a garbage tail) {where}"
            )
    previous = -1
    for tag in tags:
        raw = ds._dict[tag]
        if tag <= previous:
            raise DicomInputError(
                f"C-STORE: expected elements in ascending tag order; got {tag} after {Tag(previous)} "
                f"(a garbage tail?) {where}"
            )
        previous = tag
        if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED and len(raw.value or b"") != raw.length:
            raise DicomInputError(
                f"C-STORE: expected {raw.length} bytes in {tag}; got {len(raw.value or b'')} (truncated) {where}"
            )
    _check_pixels(ds, where)
    for keyword, tag in (("StudyInstanceUID", "0020,000D"), ("SeriesInstanceUID", "0020,000E")):
        value = str(ds.get(keyword, "") or "").strip()
        if not value:
            raise DicomInputError(f"C-STORE: expected ({tag}) {keyword}; got none {where}")
        if not is_uid(value):
            raise DicomInputError(f"C-STORE: expected ({tag}) {keyword} to be a UID; got {value[:70]!r} {where}")
    if str(ds.get("SOPInstanceUID", "")) != sop_uid:
        raise DicomInputError(
            f"C-STORE: expected (0008,0018) SOPInstanceUID {sop_uid} as requested; got {ds.get('SOPInstanceUID')!r}"
        )
    if str(ds.get("SOPClassUID", "")) != sop_class:
        raise DicomInputError(
            f"C-STORE: expected (0008,0016) SOPClassUID {sop_class} as requested; got "
            f"{ds.get('SOPClassUID')!r} {where}"
        )
    return str(ds.StudyInstanceUID).strip(), str(ds.SeriesInstanceUID).strip()


def _element_end(buf: memoryview, raw, fallback: int) -> int:
    """Where the last element ends: its value offset + length (+ the delimiter if undefined)."""
    if not isinstance(raw, RawDataElement) or raw.value_tell is None:
        return fallback
    if raw.length != _UNDEFINED:
        return raw.value_tell + raw.length
    stop = raw.value_tell + len(raw.value or b"")
    if bytes(buf[stop : stop + 4]) != b"\xfe\xff\xdd\xe0":  # (FFFE,E0DD) Sequence Delimitation Item
        return stop  # no delimiter: reported as truncated
    return stop + 8


def _check_pixels(ds, where: str) -> None:
    found = [(tag, kw) for tag, kw in _PIXEL_TAGS.items() if tag in ds]
    if not found:
        return
    tag, keyword = found[0]
    raw = ds._dict[tag]
    length = raw.length if isinstance(raw, RawDataElement) else len(ds[tag].value or b"")
    value = raw.value if isinstance(raw, RawDataElement) else ds[tag].value
    if length == _UNDEFINED:
        _check_fragments(value or b"", ds, where)
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = _FLOAT_BITS.get(keyword) or int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DatasetMismatchError(
            f"C-STORE: expected Rows, Columns and BitsAllocated with {keyword}; got {exc} {where}"
        ) from None
    n_bits = rows * cols * spp * frames * bits
    expected = (n_bits + 7) // 8
    expected += expected % 2  # values are padded to even length
    if len(value or b"") != expected:
        raise DatasetMismatchError(
            f"C-STORE: expected (7FE0,0010) {keyword} of {expected} bytes ({rows} x {cols} x {spp} samples x "
            f"{bits} bits x {frames} frames); got {len(value or b'')} {where}"
        )


def _check_fragments(value: bytes, ds, where: str) -> None:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        fragments = list(generate_fragments(value, endianness="<"))
    except (ValueError, EOFError, TypeError) as exc:
        raise DatasetMismatchError(f"C-STORE: expected well-formed Pixel Data fragments; got {exc} {where}") from None
    if len(fragments) < 1 + min(frames, 1):  # Basic Offset Table item, then at least one fragment
        raise DatasetMismatchError(
            f"C-STORE: expected a Basic Offset Table and at least one fragment; got {len(fragments)} item(s) {where}"
        )
