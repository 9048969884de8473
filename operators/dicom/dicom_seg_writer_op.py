"""DicomSegWriterOp: labels on a DICOM series' grid → DICOM SEG (highdicom)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.dicom.derived_writer import DerivedObjectWriter
from clara_stream.operators.dicom.seg import segment_specs, write_dicom_seg

_EQUIPMENT = ("manufacturer", "manufacturer_model_name", "software_versions", "device_serial_number")


class DicomSegWriterOp(DerivedObjectWriter):
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

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "seg.dcm", segments: Any = None,
                 uid_root: str | None = None, equipment: Any = None, series_number: int = 901,
                 series_description: str = "Segmentation", algorithm_name: str = "organ_segmentation",
                 algorithm_version: str = "1", on_missing_uids: str = "error",
                 name: str = "seg_writer", **kwargs: Any) -> None:  # fmt: skip
        root = self._configure(output=output, filename=filename, uid_root=uid_root, on_missing_uids=on_missing_uids)
        self.segments = segment_specs(segments or {})
        if not self.segments:
            raise ValueError("DicomSegWriterOp: expected at least one segment in 'segments'; got none")
        equipment = dict(equipment or {})
        missing = [k for k in _EQUIPMENT if not equipment.get(k)]
        if missing:
            raise ValueError(f"DicomSegWriterOp: expected equipment fields {list(_EQUIPMENT)}; got {missing} missing")
        self.fields = dict(uid_root=root,
                           series_number=int(series_number), series_description=series_description,
                           algorithm_name=algorithm_name, algorithm_version=str(algorithm_version),
                           **{k: str(equipment[k]) for k in _EQUIPMENT})  # fmt: skip
        super().__init__(fragment, *args, name=name, **kwargs)

    def write(self, labels: Any, geometry: Any, headers: Any) -> None:
        write_dicom_seg(self.path, labels, geometry, headers, self.segments, **self.fields)
