"""RtStructWriterOp: labels on a DICOM series' grid → RT Structure Set (rt-utils)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.dicom.derived_writer import DerivedObjectWriter
from clara_stream.operators.dicom.rtstruct import write_rtstruct
from clara_stream.operators.dicom.seg import segment_specs


class RtStructWriterOp(DerivedObjectWriter):
    """Write one ROI per labelled segment, contours per slice, referencing the source instances.

    Ports
    -----
    mask : uint8 (z, y, x) labels; metadata ``geometry`` and ``dicom_source``

    Parameters
    ----------
    output : path
        Folder (required); file ``output/filename`` (default ``rtstruct.dcm``).
    segments : mapping
        value → {label, code, meaning}; ROI names are the labels.
    uid_root : str
        Root for the new UIDs (required).
    equipment : mapping
        ``manufacturer`` is used.
    on_missing_uids : {"error", "skip"}
        A source anonymised without Study/Series/SOP UIDs cannot be referenced: ``error`` (default)
        raises; ``skip`` writes ``<filename stem>.skipped.txt`` with the reason instead.
    """

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "rtstruct.dcm",
                 segments: Any = None, uid_root: str | None = None, equipment: Any = None,
                 series_number: int = 902, on_missing_uids: str = "error",
                 name: str = "rtstruct_writer", **kwargs: Any) -> None:  # fmt: skip
        root = self._configure(output=output, filename=filename, uid_root=uid_root, on_missing_uids=on_missing_uids)
        self.segments = segment_specs(segments or {})
        manufacturer = dict(equipment or {}).get("manufacturer")
        if not self.segments or not manufacturer:
            raise ValueError("RtStructWriterOp: expected segments and equipment.manufacturer; got them missing")
        self.fields = dict(uid_root=root, manufacturer=manufacturer,
                           series_number=int(series_number))  # fmt: skip
        super().__init__(fragment, *args, name=name, **kwargs)

    def write(self, labels: Any, geometry: Any, headers: Any) -> None:
        write_rtstruct(self.path, labels, geometry, headers, self.segments, **self.fields)
