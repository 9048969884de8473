"""Port contracts of the DICOM operators: studies, series, and volumes/labels on a DICOM series' grid.

``DICOM_VOLUME`` / ``DICOM_LABELS`` are :mod:`clara_stream.operators.volume.contracts`' ``VOLUME`` /
``LABELS`` plus ``dicom_source`` metadata; edges between them are matched by the contracts, not by
imports. This package imports nothing from ``operators/volume`` (the volume reader imports the DICOM
library to read a folder): imports point volume → dicom only, never back.
"""

from __future__ import annotations

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind

from .series import VolumeSource
from .study import DicomSeries, StudyIndex

#: The same, read from DICOM: carries ``dicom_source`` (sorted source instances) for the writers.
DICOM_VOLUME = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/scalar", device=Device.ANY, meta=(P.GEOMETRY, P.DICOM_SOURCE),
    description="(z, y, x) volume from a DICOM series; metadata 'geometry' and 'dicom_source'",
)  # fmt: skip
#: Labels on the grid of a DICOM source series (what SEG and RTSTRUCT writers need).
DICOM_LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=(P.GEOMETRY, P.DICOM_SOURCE), description="uint8 (z, y, x) labels on a DICOM series' grid",
)  # fmt: skip
STUDY = Contract(kind=Kind.OBJECT, domain="dicom/study", pytype=StudyIndex, description="indexed DICOM studies")
SERIES = Contract(kind=Kind.OBJECT, domain="dicom/series", pytype=list, description="selected DicomSeries list")
#: What ``dicom_source`` metadata holds (sorted source instances, for the SEG and RTSTRUCT writers).
SOURCE = VolumeSource
__all__ = ["DICOM_VOLUME", "DICOM_LABELS", "STUDY", "SERIES", "SOURCE", "DicomSeries", "StudyIndex"]
