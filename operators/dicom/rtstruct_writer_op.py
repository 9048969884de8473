"""RtStructWriterOp: labels on a DICOM series' grid → RT Structure Set (rt-utils)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.rtstruct import write_rtstruct
from clara_stream.operators.dicom.seg import segment_specs
from clara_stream.operators.volume.contracts import DICOM_LABELS

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Operator, Port


class RtStructWriterOp(Operator):
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

    inputs = (Port(P.MASK, DICOM_LABELS),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "rtstruct.dcm",
                 segments: Any = None, uid_root: str | None = None, equipment: Any = None,
                 series_number: int = 902, on_missing_uids: str = "error",
                 name: str = "rtstruct_writer", **kwargs: Any) -> None:  # fmt: skip
        if output is None or not uid_root:
            raise ValueError(f"RtStructWriterOp: expected output and uid_root; got {output!r}, {uid_root!r}")
        self.segments = segment_specs(segments or {})
        manufacturer = dict(equipment or {}).get("manufacturer")
        if not self.segments or not manufacturer:
            raise ValueError("RtStructWriterOp: expected segments and equipment.manufacturer; got them missing")
        if on_missing_uids not in ("error", "skip"):
            raise ValueError(f"RtStructWriterOp: expected on_missing_uids in error, skip; got {on_missing_uids!r}")
        self.on_missing_uids = on_missing_uids
        self.path = Path(output) / filename
        self.fields = dict(uid_root=uid_root if uid_root.endswith(".") else uid_root + ".", manufacturer=manufacturer,
                           series_number=int(series_number))  # fmt: skip
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        labels = self.receive(op_input, P.MASK)
        src = self.get_meta("dicom_source")
        if src is None or not src.aligned:
            raise DicomInputError("RtStructWriterOp: expected labels on the source series' grid; got "
                                  f"{'no dicom_source metadata' if src is None else 'a resampled volume'}")  # fmt: skip
        missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
                   if not str(src.headers[0].get(k, "") or "")]  # fmt: skip
        if missing and self.on_missing_uids == "skip":
            reason = (f"{type(self).__name__}: skipped; the source series has empty {', '.join(missing)} "
                      "(anonymised without UIDs), so no DICOM object can reference it")  # fmt: skip
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.with_suffix(".skipped.txt").write_text(reason + "\n")
            return
        write_rtstruct(self.path, labels, self.get_meta("geometry"), src.headers, self.segments, **self.fields)
