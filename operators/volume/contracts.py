"""Port contracts of the volume pipeline (one place, so every edge agrees).

Nothing here imports the DICOM operators (their study/series contracts are in
:mod:`clara_stream.operators.dicom.contracts`, which may import this module, never the reverse).
"""

from __future__ import annotations

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind

#: A scalar (z, y, x) volume in LPS with its ImageGeometry as ``geometry`` metadata.
VOLUME = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/scalar", device=Device.ANY, meta=(P.GEOMETRY,),
    description="(z, y, x) volume, LPS geometry in metadata 'geometry'",
)  # fmt: skip
#: The same, read from DICOM: carries ``dicom_source`` (sorted source instances) for the writers.
DICOM_VOLUME = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/scalar", device=Device.ANY, meta=(P.GEOMETRY, P.DICOM_SOURCE),
    description="(z, y, x) volume from a DICOM series; metadata 'geometry' and 'dicom_source'",
)  # fmt: skip
#: uint8 label volume on the grid given by ``geometry`` metadata.
LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=(P.GEOMETRY,), description="uint8 (z, y, x) labels, LPS geometry in metadata 'geometry'",
)  # fmt: skip
#: Labels on the grid of a DICOM source series (what SEG and RTSTRUCT writers need).
DICOM_LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=(P.GEOMETRY, P.DICOM_SOURCE), description="uint8 (z, y, x) labels on a DICOM series' grid",
)  # fmt: skip
__all__ = ["VOLUME", "DICOM_VOLUME", "LABELS", "DICOM_LABELS"]
