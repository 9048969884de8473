"""ResampleOp: resample a volume (or labels) to a new voxel spacing over the same extent."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.volume.resample import resample_to_spacing

from clara_stream import ports as P
from clara_stream.contracts import Contract, Kind
from clara_stream.runtime import Operator, Port

_ANY_VOLUME = Contract(kind=Kind.TENSOR, ndim=3, layout="ZYX", meta=(P.GEOMETRY,), description="(z, y, x) + geometry")


class ResampleOp(Operator):
    """Resample in patient space (linear for images, nearest for labels); geometry updated.

    Ports
    -----
    volume_in : (z, y, x) host array, metadata ``geometry``
    volume_out : float32 (order 1) or the input dtype (order 0), new ``geometry``; any ``dicom_source``
        metadata is marked not aligned (its slices no longer match the array)

    Parameters
    ----------
    spacing_mm : 3 floats
        Target (x, y, z) spacing in mm (each > 0).
    order : int
        0 nearest (labels) or 1 linear (default).
    """

    inputs = (Port(P.VOLUME_IN, _ANY_VOLUME),)
    outputs = (Port(P.VOLUME_OUT, _ANY_VOLUME),)

    def __init__(self, fragment: Any, *args: Any, spacing_mm: Any = None, order: int = 1, name: str = "resample",
                 **kwargs: Any) -> None:  # fmt: skip
        try:
            sp = tuple(float(v) for v in spacing_mm)
        except TypeError as exc:
            raise ValueError(f"ResampleOp: expected spacing_mm as 3 numbers; got {spacing_mm!r}") from exc
        if len(sp) != 3 or min(sp) <= 0:
            raise ValueError(f"ResampleOp: expected spacing_mm as 3 numbers > 0; got {spacing_mm!r}")
        if order not in (0, 1, 3):
            raise ValueError(f"ResampleOp: expected order 0, 1 or 3; got {order}")
        self.spacing, self.order = sp, int(order)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        from dataclasses import replace

        vol = self.receive(op_input, P.VOLUME_IN)
        out, geom = resample_to_spacing(vol, self.get_meta(P.GEOMETRY), self.spacing, order=self.order)
        meta: dict[str, Any] = {P.GEOMETRY: geom}
        src = self.get_meta(P.DICOM_SOURCE)
        if src is not None:
            meta[P.DICOM_SOURCE] = replace(src, aligned=False, notes=[*src.notes, f"resampled to {self.spacing} mm"])
        self.emit(op_output, out, P.VOLUME_OUT, meta=meta)
