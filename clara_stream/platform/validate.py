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
import struct

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from clara_stream.errors import DicomInputError
from clara_stream.platform import walk
from clara_stream.platform.walk import DatasetMismatchError

__all__ = ["DatasetMismatchError", "check_instance", "is_uid"]

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNDEFINED = 0xFFFFFFFF
_PIXEL_TAGS = {
    Tag(0x7FE0, 0x0010): "PixelData",
    Tag(0x7FE0, 0x0008): "FloatPixelData",
    Tag(0x7FE0, 0x0009): "DoubleFloatPixelData",
}
_FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}


def is_uid(value: str) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters (safe as a file or folder name)."""
    return len(value) <= 64 and bool(UID_RE.match(value))


class _View:
    """read/seek/tell over a memoryview: pydicom parses the header without copying the pixels."""

    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0
        self.partial = False  # a read met the end part-way: bytes too few for an element remained

    def read(self, n: int = -1) -> bytes:
        stop = len(self.buf) if n is None or n < 0 else min(self.pos + n, len(self.buf))
        out = bytes(self.buf[self.pos : stop])
        self.partial = self.partial or 0 < len(out) < (n if n is not None and n >= 0 else len(out))
        self.pos = stop
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else len(self.buf) + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos


_PARSE_ERRORS = (
    InvalidDicomError,
    ValueError,
    EOFError,
    OSError,
    KeyError,
    TypeError,
    NotImplementedError,
    struct.error,
)


def check_instance(
    head: bytes, body: memoryview | bytes, sop_uid: str, sop_class: str, transfer_syntax: str | None = None
) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID) of a fully checked encoded instance.

    ``head`` is the preamble + file meta, ``body`` the dataset as it arrived, ``transfer_syntax``
    its encoding (read from ``head`` when None). Little-endian datasets are walked in place: the
    header is parsed, Pixel Data is measured (never copied) and whatever follows it parsed again;
    big-endian and deflated ones are parsed whole by pydicom.

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
    if transfer_syntax is None:
        transfer_syntax = str(dcmread(io.BytesIO(head), stop_before_pixels=True).file_meta.TransferSyntaxUID)
    uid = UID(transfer_syntax)
    ids = None
    if transfer_syntax != _DEFLATED and uid.is_little_endian:
        try:
            ids = _check_walked(memoryview(body), uid.is_implicit_VR, where)
        except walk.Unsure:
            ids = None  # an encoding the walker leaves to pydicom
        if ids is None:
            ids = _ids(_check_in_place(memoryview(body), uid.is_implicit_VR, where))
    else:
        ids = _ids(_check_whole(head, body, where))
    study, series, got_sop, got_class = ids
    for value, keyword, tag in ((study, "StudyInstanceUID", "0020,000D"), (series, "SeriesInstanceUID", "0020,000E")):
        if not value:
            raise DicomInputError(f"C-STORE: expected ({tag}) {keyword}; got none {where}")
        if not is_uid(value):
            raise DicomInputError(f"C-STORE: expected ({tag}) {keyword} to be a UID; got {value[:70]!r} {where}")
    if got_sop != sop_uid:
        raise DicomInputError(f"C-STORE: expected (0008,0018) SOPInstanceUID {sop_uid} as requested; got {got_sop!r}")
    if got_class != sop_class:
        raise DicomInputError(
            f"C-STORE: expected (0008,0016) SOPClassUID {sop_class} as requested; got {got_class!r} {where}"
        )
    return study, series


def _ids(ds) -> tuple[str, str, str, str]:
    """(Study, Series, SOP Instance, SOP Class UID) of a pydicom dataset, '' where absent."""
    keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
    return tuple(str(ds.get(k, "") or "").strip() for k in keys)  # type: ignore[return-value]


def _check_walked(buf: memoryview, implicit: bool, where: str) -> tuple[str, str, str, str]:
    """The one-pass check (:mod:`clara_stream.platform.walk`): structure, then Pixel Data's size."""
    w = walk.walk(buf, implicit, where)
    v = w.values
    if w.pixel_tag is not None:
        if w.pixel_length == _UNDEFINED:
            _check_fragment_count(w.fragments, where)
        else:
            keyword = walk.PIXEL_TAGS[w.pixel_tag]
            try:
                rows, cols = walk.us(buf, v.get(0x00280010)), walk.us(buf, v.get(0x00280011))
                bits = _FLOAT_BITS.get(keyword) or walk.us(buf, v.get(0x00280100))
                if rows is None or cols is None or bits is None:
                    raise ValueError("Rows, Columns or BitsAllocated missing")
                spp = walk.us(buf, v.get(0x00280002)) or 1
                frames = _frames(walk.text(buf, v.get(0x00280008)))
            except ValueError as exc:
                raise DatasetMismatchError(
                    f"C-STORE: expected Rows, Columns and BitsAllocated with {keyword}; got {exc} {where}"
                ) from None
            _check_length(keyword, w.pixel_length, (rows, cols, spp, frames, bits), where)
    return tuple(walk.text(buf, v.get(t)) for t in (0x0020000D, 0x0020000E, 0x00080018, 0x00080016))  # type: ignore[return-value]


def _frames(text: str | None) -> int:
    """NumberOfFrames as a plain integer; anything else ("3.0", " 3 ") is pydicom's to judge (IS)."""
    if not text:
        return 1
    if not text.isdigit():
        raise walk.Unsure(f"NumberOfFrames {text!r}")
    return int(text) or 1


def _check_elements(ds, after: int, where: str) -> int:
    """Ascending tags (all above ``after``), every defined-length value complete; the last tag."""
    previous = after
    for tag in ds.keys():
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
    return previous


def _ends_at(buf: memoryview, ds, view: _View, where: str) -> None:
    """The last element of ``ds`` must end exactly at the end of ``buf`` (no part-read tail)."""
    end = _element_end(buf, ds._dict[list(ds.keys())[-1]], view.tell()) if len(ds) else view.tell()
    if view.partial:
        end = len(buf) - 1  # reported as trailing bytes
    if end != len(buf):
        raise DicomInputError(
            f"C-STORE: expected the dataset to end with its last element; got {len(buf) - end:+d} byte(s) "
            f"after it (truncated or a garbage tail) {where}"
        )


def _check_in_place(buf: memoryview, implicit: bool, where: str):
    view = _View(buf)
    found: dict = {}

    def at_pixels(tag, vr, length) -> bool:
        if tag in _PIXEL_TAGS:
            found.update(tag=tag, length=length, value_at=view.tell())
            return True
        return False

    try:
        ds = read_dataset(view, implicit, True, stop_when=at_pixels)
    except _PARSE_ERRORS as exc:
        raise DicomInputError(
            f"C-STORE: expected a decodable dataset; got {type(exc).__name__}: {exc} {where}"
        ) from None
    last = _check_elements(ds, -1, where)
    if not found:
        _ends_at(buf, ds, view, where)
        return ds
    start, length = found["value_at"], found["length"]
    if length == _UNDEFINED:
        end, fragments = walk.fragments(buf, start, len(buf), where)
        _check_fragment_count(fragments, where)
    else:
        end = start + length
        if end > len(buf):
            raise DicomInputError(
                f"C-STORE: expected {length} bytes in {found['tag']}; got {len(buf) - start} (truncated) {where}"
            )
        _check_native_length(ds, _PIXEL_TAGS[found["tag"]], length, where)
    view.seek(end)
    try:
        tail = read_dataset(view, implicit, True)
    except _PARSE_ERRORS as exc:
        raise DicomInputError(f"C-STORE: expected elements after Pixel Data to decode; got {exc} {where}") from None
    _check_elements(tail, max(last, found["tag"]), where)
    _ends_at(buf, tail, view, where)
    return ds


def _check_whole(head: bytes, body: memoryview | bytes, where: str):
    """Big-endian or deflated: pydicom parses the whole dataset (rare encodings)."""
    fp = io.BytesIO(b"".join((head, body)))
    try:
        ds = dcmread(fp)
        end = fp.tell()
    except _PARSE_ERRORS as exc:
        raise DicomInputError(
            f"C-STORE: expected a decodable dataset; got {type(exc).__name__}: {exc} {where}"
        ) from None
    _check_elements(ds, -1, where)
    buf = fp.getbuffer()
    if len(ds) and str(ds.file_meta.get("TransferSyntaxUID", "")) != _DEFLATED:
        end = _element_end(buf, ds._dict[list(ds.keys())[-1]], end)
        if end != len(buf):
            raise DicomInputError(
                f"C-STORE: expected the dataset to end with its last element; got {len(buf) - end:+d} byte(s) "
                f"after it (truncated or a garbage tail) {where}"
            )
    del buf
    _check_pixels(ds, where)
    return ds


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
        try:
            fragments = len(list(generate_fragments(value or b"", endianness="<")))  # BOT included
        except (ValueError, EOFError, TypeError) as exc:
            raise DatasetMismatchError(
                f"C-STORE: expected well-formed Pixel Data fragments; got {exc} {where}"
            ) from None
        _check_fragment_count(fragments, where)
        return
    _check_native_length(ds, keyword, len(value or b""), where)


def _check_native_length(ds, keyword: str, got: int, where: str) -> None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = _FLOAT_BITS.get(keyword) or int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DatasetMismatchError(
            f"C-STORE: expected Rows, Columns and BitsAllocated with {keyword}; got {exc} {where}"
        ) from None
    _check_length(keyword, got, (rows, cols, spp, frames, bits), where)


def _check_length(keyword: str, got: int, shape: tuple[int, int, int, int, int], where: str) -> None:
    """Native Pixel Data must hold Rows x Columns x samples x frames x bits, padded to even."""
    rows, cols, spp, frames, bits = shape
    expected = (rows * cols * spp * frames * bits + 7) // 8
    expected += expected % 2  # values are padded to even length
    if got != expected:
        raise DatasetMismatchError(
            f"C-STORE: expected (7FE0,0010) {keyword} of {expected} bytes ({rows} x {cols} x {spp} samples x "
            f"{bits} bits x {frames} frames); got {got} {where}"
        )


def _check_fragment_count(items: int, where: str) -> None:
    """A Basic Offset Table item, then at least one fragment."""
    if items < 2:
        raise DatasetMismatchError(
            f"C-STORE: expected a Basic Offset Table and at least one fragment; got {items} item(s) {where}"
        )
