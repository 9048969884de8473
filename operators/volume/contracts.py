"""Port contracts of the volume pipeline (one place, so every edge agrees).

Nothing in ``operators/dicom`` imports this package: the DICOM contracts (studies, series, and
``DICOM_VOLUME`` / ``DICOM_LABELS``, these plus ``dicom_source`` metadata) are in
:mod:`clara_stream.operators.dicom.contracts`; the volume reader imports the DICOM library, never back.
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
#: uint8 label volume on the grid given by ``geometry`` metadata.
LABELS = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    meta=(P.GEOMETRY,), description="uint8 (z, y, x) labels, LPS geometry in metadata 'geometry'",
)  # fmt: skip
__all__ = ["VOLUME", "LABELS"]
