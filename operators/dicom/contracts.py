"""Port contracts of the DICOM operators: studies and series (objects), one place for every edge.

The volume contracts (``VOLUME``, ``DICOM_VOLUME``, ``LABELS``, ``DICOM_LABELS``) live in
:mod:`clara_stream.operators.volume.contracts`, which imports nothing from this package: imports
point dicom → volume only, never back.
"""

from __future__ import annotations

from clara_stream.contracts import Contract, Kind

from .series import VolumeSource
from .study import DicomSeries, StudyIndex

STUDY = Contract(kind=Kind.OBJECT, domain="dicom/study", pytype=StudyIndex, description="indexed DICOM studies")
SERIES = Contract(kind=Kind.OBJECT, domain="dicom/series", pytype=list, description="selected DicomSeries list")
#: What ``dicom_source`` metadata holds (sorted source instances, for the SEG and RTSTRUCT writers).
SOURCE = VolumeSource
__all__ = ["STUDY", "SERIES", "SOURCE", "DicomSeries", "StudyIndex"]
