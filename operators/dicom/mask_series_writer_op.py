"""MaskSeriesWriterOp: labels on a DICOM series' grid → a new image series of the same study."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.dicom.derived_writer import DerivedObjectWriter
from clara_stream.operators.dicom.mask_series import write_mask_series


class MaskSeriesWriterOp(DerivedObjectWriter):
    """Write the mask as one MR/CT image per source slice, geometry copied from the source.

    Ports
    -----
    mask : uint8 (z, y, x) labels; metadata ``geometry`` and ``dicom_source``

    Parameters
    ----------
    output : path
        Folder (required); the series goes to ``output/filename`` (default ``mask_series``).
    uid_root : str
        Root for the new UIDs (required).
    equipment : mapping
        ``manufacturer`` is used (required).
    series_number : int
        Default 903. ``series_description`` names the series (default "Segmentation mask").
    on_missing_uids : {"error", "skip"}
        As the SEG and RTSTRUCT writers.
    """

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "mask_series",
                 uid_root: str | None = None, equipment: Any = None, series_number: int = 903,
                 series_description: str = "Segmentation mask", on_missing_uids: str = "error",
                 name: str = "mask_series_writer", **kwargs: Any) -> None:  # fmt: skip
        root = self._configure(output=output, filename=filename, uid_root=uid_root, on_missing_uids=on_missing_uids)
        manufacturer = dict(equipment or {}).get("manufacturer")
        if not manufacturer:
            raise ValueError("MaskSeriesWriterOp: expected equipment.manufacturer; got it missing")
        if not filename or "/" in filename or filename in (".", ".."):
            raise ValueError(f"MaskSeriesWriterOp: expected a plain folder name; got {filename!r}")
        self.fields = dict(uid_root=root, manufacturer=manufacturer, series_number=int(series_number),
                           series_description=str(series_description))  # fmt: skip
        super().__init__(fragment, *args, name=name, **kwargs)

    def write(self, labels: Any, geometry: Any, headers: Any) -> None:
        write_mask_series(self.path, labels, geometry, headers, **self.fields)
