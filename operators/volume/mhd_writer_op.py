"""MhdWriterOp: write a (z, y, x) volume or label map as MetaImage (.mhd/.raw) or NIfTI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.mhd import write_volume

from clara_stream import ports as P
from clara_stream.arrays import to_host
from clara_stream.contracts import Contract, Kind
from clara_stream.runtime import Operator, Port

_ANY_VOLUME = Contract(kind=Kind.TENSOR, ndim=3, layout="ZYX", meta=(P.GEOMETRY,), description="(z, y, x) + geometry")


class MhdWriterOp(Operator):
    """Write each received volume to ``output/filename`` with its exact LPS geometry.

    Ports
    -----
    volume : (z, y, x) array (image or labels), metadata ``geometry``

    Parameters
    ----------
    output : path
        Folder (created).
    filename : str
        ``*.mhd`` (+ .raw), ``*.nii`` or ``*.nii.gz`` (default ``mask.mhd``).
    """

    inputs = (Port(P.VOLUME, _ANY_VOLUME),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "mask.mhd",
                 name: str = "mhd_writer", **kwargs: Any) -> None:  # fmt: skip
        if not filename.endswith((".mhd", ".nii", ".nii.gz")):
            raise ValueError(f"MhdWriterOp: expected filename ending .mhd, .nii or .nii.gz; got {filename!r}")
        self.path = Path(output) / filename if output is not None else None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # an output is needed to run, not to validate the graph
        if self.path is None:
            raise ValueError("MhdWriterOp: expected output=<folder>; got None")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        vol = to_host(self.receive(op_input, P.VOLUME))
        write_volume(self.path, vol, self.get_meta(P.GEOMETRY))
