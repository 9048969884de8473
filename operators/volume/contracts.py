"""Port contracts of the volume pipeline (one place, so every edge agrees)."""

from __future__ import annotations

from clara_stream.operators.dicom.series import VolumeSource
from clara_stream.operators.dicom.study import DicomSeries, StudyIndex

from clara_stream.contracts import Contract, Device, Kind

#: A scalar (z, y, x) volume in LPS with its ImageGeometry as ``geometry`` metadata.
VOLUME = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/scalar", device=Device.ANY, meta=("geometry",),
    description="(z, y, x) volume, LPS geometry in metadata 'geometry'",
)  # fmt: skip
#: The same, read from DICOM: carries ``dicom_source`` (sorted source instances) for the writers.
DICOM_VOLUME = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/scalar", device=Device.ANY, meta=("geometry", "dicom_source"),
    description="(z, y, x) volume from a DICOM series; metadata 'geometry' and 'dicom_source'",
)  # fmt: skip
#: uint8 label volume on the grid given by ``geometry`` metadata.
LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=("geometry",), description="uint8 (z, y, x) labels, LPS geometry in metadata 'geometry'",
)  # fmt: skip
#: Labels on the grid of a DICOM source series (what SEG and RTSTRUCT writers need).
DICOM_LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=("geometry", "dicom_source"), description="uint8 (z, y, x) labels on a DICOM series' grid",
)  # fmt: skip
STUDY = Contract(kind=Kind.OBJECT, domain="dicom/study", pytype=StudyIndex, description="indexed DICOM studies")
SERIES = Contract(kind=Kind.OBJECT, domain="dicom/series", pytype=list, description="selected DicomSeries list")
SOURCE = VolumeSource
__all__ = ["VOLUME", "DICOM_VOLUME", "LABELS", "DICOM_LABELS", "STUDY", "SERIES", "DicomSeries"]
