"""Base of the writers whose output references the source series (DICOM SEG, RTSTRUCT).

Both need the same guarantees before writing: labels on the source grid (not resampled), and
Study/Series/SOP UIDs to reference, with ``on_missing_uids=skip`` writing the reason instead of
an object. Subclasses only validate their own header fields and implement :meth:`write`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.contracts import DICOM_LABELS

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Operator, Port

_REFERENCED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class DerivedObjectWriter(Operator):
    """Receive labels with ``geometry`` and ``dicom_source`` metadata; write a referencing object.

    Subclasses call :meth:`_configure` first in ``__init__`` and implement :meth:`write`.
    """

    inputs = (Port(P.MASK, DICOM_LABELS),)

    def _configure(self, *, output: Any, filename: str, uid_root: str | None, on_missing_uids: str) -> str:
        """Validate the shared arguments; set ``path`` and the policy; return the normalised UID root."""
        owner = type(self).__name__
        if not uid_root:
            raise ValueError(f"{owner}: expected output and uid_root; got {output!r}, {uid_root!r}")
        if on_missing_uids not in ("error", "skip"):
            raise ValueError(f"{owner}: expected on_missing_uids in error, skip; got {on_missing_uids!r}")
        self.on_missing_uids = on_missing_uids
        self.path = Path(output) / filename if output is not None else None  # None: refused by start()
        return uid_root if uid_root.endswith(".") else uid_root + "."

    def start(self) -> None:  # an output is needed to run, not to validate the graph
        if self.path is None:
            raise ValueError(f"{type(self).__name__}: expected output and uid_root; got None")

    def write(self, labels: Any, geometry: Any, headers: Any) -> None:
        raise NotImplementedError

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        labels = self.receive(op_input, P.MASK)
        src = self.get_meta(P.DICOM_SOURCE)
        owner = type(self).__name__
        if src is None or not src.aligned:
            raise DicomInputError(f"{owner}: expected labels on the source series' grid; got "
                                  f"{'no dicom_source metadata' if src is None else 'a resampled volume'}")  # fmt: skip
        missing = [k for k in _REFERENCED_UIDS if not str(src.headers[0].get(k, "") or "")]
        if missing and self.on_missing_uids == "skip":
            reason = (f"{owner}: skipped; the source series has empty {', '.join(missing)} "
                      "(anonymised without UIDs), so no DICOM object can reference it")  # fmt: skip
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.with_suffix(".skipped.txt").write_text(reason + "\n")
            return
        self.write(labels, self.get_meta(P.GEOMETRY), src.headers)
