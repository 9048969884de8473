"""A fast path for the header-only pass: one read of the file's first bytes, elements parsed with struct.

pydicom's reader makes many small reads and builds its element records in a generator; for a study of
hundreds of slices the header pass then dominates loading. This parser handles the common case —
little-endian (implicit or explicit VR) datasets whose elements before Pixel Data have defined lengths,
all within the first ``chunk`` bytes — and hands pydicom the same raw element records its own reader
would, so the resulting :class:`~pydicom.dataset.Dataset` converts values lazily exactly as usual.
Anything else (undefined-length sequences, big endian, deflate, a header past the chunk) returns None
and the caller falls back to ``pydicom.dcmread``; tests check the two agree on every real file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

__all__ = ["fast_header", "find_truncation", "raw_text"]

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
#: VR bytes → (str, long form?) for the VRs of the standard: one dict look-up per element, no decode
_VRS = {vr: (vr.decode(), vr in _LONG_VRS) for vr in _LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
    b"ST", b"TM", b"UI", b"UL", b"US",
}}  # fmt: skip
_IMPLICIT, _EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
_BIG_OR_DEFLATE = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
_PIXEL_DATA = 0x7FE00010
_new_raw = tuple.__new__
_unpack_tags = struct.Struct("<HH").unpack_from
_unpack_u16 = struct.Struct("<H").unpack_from
_unpack_u32 = struct.Struct("<I").unpack_from


def _parse(buf: bytes, pos: int, implicit: bool, stop_group: int | None):
    """Elements from ``pos`` until Pixel Data / a group change / the end; None on anything unusual."""
    out: dict = {}
    n = len(buf)
    while pos + 8 <= n:
        group, elem = _unpack_tags(buf, pos)
        if stop_group is not None and group != stop_group:
            return out, pos
        tag = (group << 16) | elem
        if tag == _PIXEL_DATA:
            return out, pos
        if implicit:
            vr, length, start = None, _unpack_u32(buf, pos + 4)[0], pos + 8
        else:
            raw_vr = buf[pos + 4 : pos + 6]
            known = _VRS.get(raw_vr)
            if known is not None:
                vr, long = known
            elif raw_vr.isalpha() and raw_vr.isupper():  # a VR this table does not list: short form
                vr, long = raw_vr.decode("ascii"), False
            else:
                return None
            if long:
                if pos + 12 > n:
                    return None
                length, start = _unpack_u32(buf, pos + 8)[0], pos + 12
            else:
                length, start = _unpack_u16(buf, pos + 6)[0], pos + 8
        if length == 0xFFFFFFFF or start + length > n or group == 0xFFFE:
            return None
        key = BaseTag(tag)  # a RawDataElement built without its Python-level namedtuple __new__ (hot path)
        out[key] = _new_raw(RawDataElement, (key, vr, length, buf[start : start + length], start, implicit,
                                             True, True, False))  # fmt: skip
        pos = start + length
    return None  # ran off the chunk before Pixel Data


def raw_text(ds: Dataset, tag: int) -> str:
    """A string element's value without pydicom's conversion (UIDs of every file: the scan's hot path).

    Equal to ``str(ds.get(tag).value)`` for single-valued UI/CS/LO/SH elements; "" when absent or empty.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    return "" if value is None else str(value).strip(" \x00")


def fast_header(path: Path, chunks: tuple[int, ...] = (8192, 262144)) -> tuple[Dataset, str, int, int, bool] | None:
    """(header Dataset, transfer syntax, Pixel Data element offset, its value length, encapsulated) or None.

    ``offset`` is where the Pixel Data element's tag starts; the value follows after 8 (implicit) or
    12 (explicit) bytes. The first bytes are read in one call (8 KiB, then 256 KiB if the header is
    longer). None means: use pydicom's reader for this file.
    """
    with open(path, "rb", buffering=0) as f:
        for chunk in chunks:
            f.seek(0)
            buf = f.read(chunk)
            result = _from_buffer(path, buf)
            if result is not None or len(buf) < chunk:
                return result
    return None


def _from_buffer(path: Path, buf: bytes) -> tuple[Dataset, str, int, int, bool] | None:
    if len(buf) < 144 or buf[128:132] != b"DICM":
        return None
    parsed = _parse(buf, 132, False, 0x0002)
    if parsed is None:
        return None
    meta_elems, pos = parsed
    ts_elem = meta_elems.get(0x00020010)
    if ts_elem is None:
        return None
    ts = ts_elem.value.rstrip(b"\x00 ").decode("ascii", "replace")
    if ts in _BIG_OR_DEFLATE:
        return None
    implicit = ts == _IMPLICIT
    parsed = _parse(buf, pos, implicit, None)
    if parsed is None:
        return None
    elems, pixel_pos = parsed
    if pixel_pos + 12 > len(buf):
        return None
    if implicit:
        length = _unpack_u32(buf, pixel_pos + 4)[0]
    else:
        length = _unpack_u32(buf, pixel_pos + 8)[0]
    encoding: str | list[str] = "iso8859"
    if 0x00080005 in elems:
        encoding = convert_encodings(convert_raw_data_element(elems[0x00080005]).value)
    ds = Dataset(elems)
    ds.set_original_encoding(implicit, True, encoding)
    meta = FileMetaDataset(meta_elems)
    ds.file_meta = meta
    ds.filename = str(path)
    return ds, ts, pixel_pos, length, length == 0xFFFFFFFF


def find_truncation(path: Path) -> str | None:
    """Where a little-endian file ends inside its header (before Pixel Data), or None if it does not.

    Walks the elements (stepping into sequences and items, whatever their lengths) up to the first
    Pixel Data; a tag, length or value that runs past the end of the file means the file was cut.
    Only used to explain a file that is about to be skipped, so it reads the whole file.
    """
    buf = Path(path).read_bytes()
    n = len(buf)
    if n < 132 or buf[128:132] != b"DICM":
        return None
    meta = _parse(buf, 132, False, 0x0002)
    if meta is None:
        return f"the file ends at byte {n}, inside its file meta information" if n < 1024 else None
    elems, pos = meta
    ts_elem = elems.get(0x00020010)
    ts = ts_elem.value.rstrip(b"\x00 ").decode("ascii", "replace") if ts_elem is not None else _IMPLICIT
    if ts in _BIG_OR_DEFLATE:
        return None
    implicit = ts == _IMPLICIT
    while pos < n:
        if pos + 8 > n:
            return f"the file ends at byte {n}, inside the element header at byte {pos}"
        group, elem = _unpack_tags(buf, pos)
        if (group << 16) | elem == _PIXEL_DATA:
            return None
        step_into = False
        if group == 0xFFFE or implicit:  # items, delimiters and implicit VR: tag + 4-byte length
            length, start = _unpack_u32(buf, pos + 4)[0], pos + 8
            step_into = group == 0xFFFE and elem == 0xE000  # an item: its elements follow
        else:
            raw_vr = buf[pos + 4 : pos + 6]
            if raw_vr in _LONG_VRS:
                if pos + 12 > n:
                    return f"the file ends at byte {n}, inside the element header at byte {pos}"
                length, start = _unpack_u32(buf, pos + 8)[0], pos + 12
            else:
                length, start = _unpack_u16(buf, pos + 6)[0], pos + 8
            step_into = raw_vr == b"SQ"
        if length == 0xFFFFFFFF or (step_into and group == 0xFFFE):
            length = 0  # undefined length, or an item: walk its contents
        if start + length > n:
            return (f"the file ends at byte {n}, inside element ({group:04X},{elem:04X}) whose {length}-byte "
                    f"value starts at byte {start}")  # fmt: skip
        pos = start + (0 if step_into else length)
    return None
