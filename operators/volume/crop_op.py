"""CropOp: a box of a volume as a zero-copy view (the shared-memory 3D pipeline)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.volume.crop import box_from_mm, crop_view

from clara_stream import ports as P
from clara_stream.contracts import Contract, Kind
from clara_stream.runtime import Operator, Port

_ANY_VOLUME = Contract(kind=Kind.TENSOR, ndim=3, layout="ZYX", meta=(P.GEOMETRY,), description="(z, y, x) + geometry")


class CropOp(Operator):
    """Crop to a voxel box or an LPS box in mm; emits a view of the input buffer (no copy).

    Ports
    -----
    volume_in : (z, y, x) host or device array, metadata ``geometry``
    volume_out : a view into ``volume_in`` (same dtype, device and memory), cropped ``geometry``

    Parameters
    ----------
    box : [[z0, y0, x0], [z1, y1, x1]], optional
        Voxel indices, stop exclusive.
    box_mm : [[x0, y0, z0], [x1, y1, z1]], optional
        Two opposite LPS corners in mm (clipped to the volume). Exactly one of box / box_mm.
    """

    inputs = (Port(P.VOLUME_IN, _ANY_VOLUME),)
    outputs = (Port(P.VOLUME_OUT, _ANY_VOLUME),)

    def __init__(self, fragment: Any, *args: Any, box: Any = None, box_mm: Any = None, name: str = "crop",
                 **kwargs: Any) -> None:  # fmt: skip
        if (box is None) == (box_mm is None):
            raise ValueError(f"CropOp: expected exactly one of box, box_mm; got box={box!r}, box_mm={box_mm!r}")
        if box is not None and (len(box) != 2 or any(len(c) != 3 for c in box)):
            raise ValueError(f"CropOp: expected box [[z0, y0, x0], [z1, y1, x1]]; got {box!r}")
        if box_mm is not None and (len(box_mm) != 2 or any(len(c) != 3 for c in box_mm)):
            raise ValueError(f"CropOp: expected box_mm [[x0, y0, z0], [x1, y1, z1]]; got {box_mm!r}")
        self.box, self.box_mm = box, box_mm
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        vol = self.receive(op_input, P.VOLUME_IN)
        geom = self.get_meta(P.GEOMETRY)
        box = self.box if self.box is not None else box_from_mm(vol.shape, geom, *self.box_mm)
        view, cropped = crop_view(vol, geom, box)
        self.emit(op_output, view, P.VOLUME_OUT, meta={P.GEOMETRY: cropped, P.CROP_BOX: box})
