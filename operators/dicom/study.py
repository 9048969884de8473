"""Index a DICOM study folder: one header-only pass, grouped by study and series.

Each file is parsed up to (but not including) its Pixel Data, which costs about half a millisecond;
the offset of the Pixel Data element is kept so that native (uncompressed) pixels can later be read
straight into a preallocated volume without parsing the file again. Files that are not DICOM,
DICOMDIRs and instances without pixels (SR, RTSTRUCT, presentation states, ...) are skipped and
listed with the reason, never raised: a study folder from a PACS export routinely holds them.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .fastheader import fast_header, find_truncation, raw_text

__all__ = ["DicomInstance", "DicomSeries", "DicomStudy", "SkippedFile", "StudyIndex", "scan_study"]

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_NATIVE_LE = {"1.2.840.10008.1.2": 8, "1.2.840.10008.1.2.1": 12}  # implicit, explicit VR: header bytes
#: Read through pydicom (its reader inflates and byte-swaps); pixels through pydicom's pixel handlers.
_BIG_OR_DEFLATED = {"1.2.840.10008.1.2.2": "Explicit VR Big Endian", "1.2.840.10008.1.2.1.99": "Deflated Explicit VR"}


@dataclass
class SkippedFile:
    """A file left out of the study, with the reason (shown to the user, never silently dropped)."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class DicomInstance:
    """One image instance: its header (no pixels) and where its native pixels start in the file.

    ``pixel_offset`` is the byte offset of the Pixel Data *value* for native little-endian transfer
    syntaxes with a defined length, else None (the pixels then go through pydicom's decoders).
    """

    path: Path
    header: Dataset
    transfer_syntax: str
    pixel_offset: int | None
    pixel_length: int | None
    encapsulated_offset: int | None = None  # where an encapsulated Pixel Data value (its items) starts

    @property
    def sop_instance_uid(self) -> str:
        """SOPInstanceUID, or the file meta's MediaStorageSOPInstanceUID where an anonymiser blanked it."""
        uid = raw_text(self.header, 0x00080018)
        if not uid and getattr(self.header, "file_meta", None) is not None:
            uid = str(self.header.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
        return uid

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.header.get(keyword, default)


@dataclass
class DicomSeries:
    """Instances sharing a SeriesInstanceUID, in file-scan order (sorted later by position)."""

    series_uid: str
    study_uid: str
    instances: list[DicomInstance] = field(default_factory=list)

    @property
    def first(self) -> Dataset:
        return self.instances[0].header

    def get(self, keyword: str, default: Any = None) -> Any:
        """A series-level attribute, read from the first instance."""
        return self.first.get(keyword, default)

    @property
    def modality(self) -> str:
        return str(self.get("Modality", ""))

    @property
    def description(self) -> str:
        return str(self.get("SeriesDescription", ""))

    def __len__(self) -> int:
        return len(self.instances)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON header summary (the series_selection app writes these)."""
        keys = ("Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined", "ImageType",
                "Manufacturer", "Rows", "Columns", "SliceThickness", "PixelSpacing")  # fmt: skip
        out: dict[str, Any] = {"SeriesInstanceUID": self.series_uid, "StudyInstanceUID": self.study_uid,
                               "instances": len(self.instances)}  # fmt: skip
        for k in keys:
            v = self.get(k)
            if v is None:
                continue
            if isinstance(v, pydicom.multival.MultiValue):
                v = [str(x) if not isinstance(x, int | float) else float(x) for x in v]
            elif isinstance(v, pydicom.valuerep.DSfloat | pydicom.valuerep.IS):
                v = float(v)
            elif not isinstance(v, int | float):
                v = str(v)
            out[k] = v
        out["TransferSyntaxUID"] = self.instances[0].transfer_syntax
        return out


@dataclass
class DicomStudy:
    """Series sharing a StudyInstanceUID."""

    study_uid: str
    series: dict[str, DicomSeries] = field(default_factory=dict)

    def get(self, keyword: str, default: Any = None) -> Any:
        first = next(iter(self.series.values()))
        return first.get(keyword, default)


@dataclass
class StudyIndex:
    """What a scan found: studies (by StudyInstanceUID) and the files it skipped."""

    studies: dict[str, DicomStudy] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)

    def all_series(self) -> list[DicomSeries]:
        return [s for st in self.studies.values() for s in st.series.values()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "studies": [
                {
                    "StudyInstanceUID": st.study_uid,
                    "StudyDescription": str(st.get("StudyDescription", "")),
                    "series": [s.summary() for s in st.series.values()],
                }
                for st in self.studies.values()
            ],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def _iter_files(paths: Iterable[str | os.PathLike[str]], recursive: bool) -> Iterable[Path]:
    for p in paths:
        path = Path(p)
        if path.is_dir():
            it = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(q for q in it if q.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"DicomStudyLoader: expected a file or folder; got {str(path)!r} (missing)")


def read_instance(path: Path) -> DicomInstance | SkippedFile:
    """Parse one file's header; return a DicomInstance or the reason it is skipped."""
    try:
        fast = fast_header(path)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error):
        fast = None  # the full reader below gives the precise reason
    if fast is not None:
        ds, ts, pixel_pos, length, encapsulated = fast
        sop_class = raw_text(ds, 0x00080016) or raw_text(ds.file_meta, 0x00020002)
        ok = all(k in ds for k in (0x0020000E, 0x0020000D, 0x00080018, 0x00280010))  # Series/Study/SOP UID, Rows
        if ok and sop_class != DICOMDIR_SOP_CLASS:
            native = ts in _NATIVE_LE and not encapsulated
            offset = pixel_pos + _NATIVE_LE[ts] if native else None
            encaps = pixel_pos + 12 if encapsulated and ts not in _NATIVE_LE else None
            return DicomInstance(path, ds, ts, offset, length if native else None, encaps)
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            tell = fp.tell()
            header = fp.read(12)
    except InvalidDicomError:
        return SkippedFile(path, "not a DICOM file (no DICM preamble or valid header)")
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        return _skip(path, f"unreadable DICOM header: {type(exc).__name__}: {exc}")
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return SkippedFile(path, "DICOMDIR (a media index, not an image)")
    missing = [k for k in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID") if k not in ds]
    if missing:
        return _skip(path, f"missing {', '.join(missing)}")
    ts = str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")) if meta else "1.2.840.10008.1.2"
    if ts in _BIG_OR_DEFLATED:  # pydicom's reader decoded (inflated, byte-swapped) the stream: read it fully
        try:
            has_pixels = "PixelData" in pydicom.dcmread(path, specific_tags=["PixelData"])
        except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
            return _skip(path, f"unreadable DICOM ({_BIG_OR_DEFLATED[ts]}): {type(exc).__name__}: {exc}")
    else:
        has_pixels = header[:4] == b"\xe0\x7f\x10\x00"
    if not has_pixels or "Rows" not in ds:
        modality = ds.get("Modality", "?")
        return _skip(path, f"not an image instance (no Pixel Data; Modality {modality}, SOP Class {sop_class})")
    offset = length = None
    if ts in _NATIVE_LE:
        n = _NATIVE_LE[ts]
        raw_len = int.from_bytes(header[n - 4 : n], "little")
        if raw_len != 0xFFFFFFFF:
            offset, length = tell + n, raw_len
    return DicomInstance(path, ds, ts, offset, length)


def _skip(path: Path, reason: str) -> SkippedFile:
    """A skipped file, explained as truncated when it ends inside its header (else ``reason``)."""
    try:
        cut = find_truncation(path)
    except OSError:
        cut = None
    return SkippedFile(path, f"truncated: {cut}" if cut else reason)


def scan_study(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, recursive: bool = True
) -> StudyIndex:
    """Index files or folders into studies and series (header-only pass).

    Parameters
    ----------
    paths : a folder, a file, or a list of either.
    recursive : descend into sub-folders.

    Returns
    -------
    StudyIndex with every readable image instance grouped by StudyInstanceUID then SeriesInstanceUID,
    and every other file in ``skipped`` with its reason. Duplicate SOPInstanceUIDs (the same instance
    sent twice) keep the first file and list the others as skipped.

    Raises
    ------
    FileNotFoundError
        If a named path does not exist.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    index = StudyIndex()
    seen: dict[str, Path] = {}
    for path in _iter_files(paths, recursive):
        item = read_instance(path)
        if isinstance(item, SkippedFile):
            index.skipped.append(item)
            continue
        uid = item.sop_instance_uid
        if uid and uid in seen:
            index.skipped.append(SkippedFile(path, f"duplicate SOPInstanceUID {uid} (first seen in {seen[uid]})"))
            continue
        seen[uid] = path
        study_uid = raw_text(item.header, 0x0020000D)
        series_uid = raw_text(item.header, 0x0020000E)
        study = index.studies.setdefault(study_uid, DicomStudy(study_uid))
        series = study.series.setdefault(series_uid, DicomSeries(series_uid, study_uid))
        series.instances.append(item)
    return index
