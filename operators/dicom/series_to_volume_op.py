"""SeriesToVolumeOp: the first selected series → (z, y, x) volume with LPS geometry."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.dicom.contracts import DICOM_VOLUME, SERIES
from clara_stream.operators.dicom.series import series_to_volume

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

_POLICIES = ("error", "resample", "accept")


class SeriesToVolumeOp(Operator):
    """Sort slices along the normal, read pixels (parallel decode), rescale to HU, check the geometry.

    Ports
    -----
    series : list of DicomSeries (the ``index``-th is converted)
    volume : int16/int32/float32 (z, y, x) host array; metadata ``geometry`` (ImageGeometry, LPS)
        and ``dicom_source`` (VolumeSource: sorted instances for the DICOM writers)

    Parameters
    ----------
    irregular, tilt : {"error", "resample", "accept"}
        What to do with missing slices / irregular steps and with gantry tilt (default: refuse).
    min_slices : int
        Fewest slices that make a volume (default 3).
    index : int
        Which selected series to convert (default 0, the first).
    workers : int, optional
        Decoder threads for compressed pixels.

    Raises
    ------
    DicomInputError
        At run time, naming the problem (mixed orientation, not a volume, missing slices, tilt...).
    """

    inputs = (Port(P.SERIES, SERIES),)
    outputs = (Port(P.VOLUME, DICOM_VOLUME),)

    def __init__(self, fragment: Any, *args: Any, irregular: str = "error", tilt: str = "error", min_slices: int = 3,
                 index: int = 0, workers: int | None = None, name: str = "volume", **kwargs: Any) -> None:  # fmt: skip
        for key, v in (("irregular", irregular), ("tilt", tilt)):
            if v not in _POLICIES:
                raise ValueError(f"SeriesToVolumeOp: expected {key} in {_POLICIES}; got {v!r}")
        if int(min_slices) < 2 or int(index) < 0:
            raise ValueError(f"SeriesToVolumeOp: expected min_slices >= 2 and index >= 0; got {min_slices}, {index}")
        self.options = dict(irregular=irregular, tilt=tilt, min_slices=int(min_slices), workers=workers)
        self.index = int(index)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        series = self.receive(op_input, P.SERIES)
        if self.index >= len(series):
            raise ValueError(f"SeriesToVolumeOp: expected index < {len(series)} selected series; got {self.index}")
        vol = series_to_volume(series[self.index], **self.options)
        self.emit(op_output, vol.array, P.VOLUME, meta={P.GEOMETRY: vol.geometry, P.DICOM_SOURCE: vol.source})
