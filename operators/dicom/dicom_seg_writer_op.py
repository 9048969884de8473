"""DicomSegWriterOp: labels on a DICOM series' grid → DICOM SEG (highdicom)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.seg import segment_specs, write_dicom_seg
from clara_stream.operators.volume.contracts import DICOM_LABELS

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Operator, Port

_EQUIPMENT = ("manufacturer", "manufacturer_model_name", "software_versions", "device_serial_number")


class DicomSegWriterOp(Operator):
    """Write a BINARY SEG whose frames reference the source instances.

    Ports
    -----
    mask : uint8 (z, y, x) labels; metadata ``geometry`` and ``dicom_source`` (from SeriesToVolumeOp)

    Parameters
    ----------
    output : path
        Folder (required); the file is ``output/filename`` (default ``seg.dcm``).
    segments : mapping
        value → {label, code, meaning[, category_code, category_meaning, scheme]} (SNOMED CT).
    uid_root : str
        Root for the new UIDs (required).
    equipment : mapping
        manufacturer, manufacturer_model_name, software_versions, device_serial_number (required).
    series_number, series_description, algorithm_name, algorithm_version : SEG header fields.

    on_missing_uids : {"error", "skip"}
        A source anonymised without Study/Series/SOP UIDs cannot be referenced: ``error`` (default)
        raises; ``skip`` writes ``<filename stem>.skipped.txt`` with the reason instead.

    Raises
    ------
    DicomInputError
        At run time, if the labels are not on the source grid (the volume was resampled).
    """

    inputs = (Port(P.MASK, DICOM_LABELS),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "seg.dcm", segments: Any = None,
                 uid_root: str | None = None, equipment: Any = None, series_number: int = 901,
                 series_description: str = "Segmentation", algorithm_name: str = "organ_segmentation",
                 algorithm_version: str = "1", on_missing_uids: str = "error",
                 name: str = "seg_writer", **kwargs: Any) -> None:  # fmt: skip
        if output is None or not uid_root:
            raise ValueError(f"DicomSegWriterOp: expected output and uid_root; got {output!r}, {uid_root!r}")
        self.segments = segment_specs(segments or {})
        if not self.segments:
            raise ValueError("DicomSegWriterOp: expected at least one segment in 'segments'; got none")
        equipment = dict(equipment or {})
        missing = [k for k in _EQUIPMENT if not equipment.get(k)]
        if missing:
            raise ValueError(f"DicomSegWriterOp: expected equipment fields {list(_EQUIPMENT)}; got {missing} missing")
        if on_missing_uids not in ("error", "skip"):
            raise ValueError(f"DicomSegWriterOp: expected on_missing_uids in error, skip; got {on_missing_uids!r}")
        self.on_missing_uids = on_missing_uids
        self.path = Path(output) / filename
        self.fields = dict(uid_root=uid_root if uid_root.endswith(".") else uid_root + ".",
                           series_number=int(series_number), series_description=series_description,
                           algorithm_name=algorithm_name, algorithm_version=str(algorithm_version),
                           **{k: str(equipment[k]) for k in _EQUIPMENT})  # fmt: skip
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        labels = self.receive(op_input, P.MASK)
        src = self.get_meta("dicom_source")
        if src is None or not src.aligned:
            raise DicomInputError(f"DicomSegWriterOp: expected labels on the source series' grid; got "
                                  f"{'no dicom_source metadata' if src is None else 'a resampled volume'}")  # fmt: skip
        missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
                   if not str(src.headers[0].get(k, "") or "")]  # fmt: skip
        if missing and self.on_missing_uids == "skip":
            reason = (f"{type(self).__name__}: skipped; the source series has empty {', '.join(missing)} "
                      "(anonymised without UIDs), so no DICOM object can reference it")  # fmt: skip
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.with_suffix(".skipped.txt").write_text(reason + "\n")
            return
        write_dicom_seg(self.path, labels, self.get_meta("geometry"), src.headers, self.segments, **self.fields)
