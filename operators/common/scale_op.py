"""ScaleOp: multiplies a frame by a constant on its own device (numpy or cupy)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.common.frames import F32_IMAGE

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class ScaleOp(Operator):
    """Multiply each frame by ``factor``.

    Ports
    -----
    frame_in : float32 (H, W), host or device
    frame_out : float32 (H, W), same device; ``frame_info`` passes through

    Parameters
    ----------
    factor : float
        Multiplier (finite, non-zero).
    """

    inputs = (Port(P.FRAME_IN, F32_IMAGE),)
    outputs = (Port(P.FRAME_OUT, F32_IMAGE),)

    def __init__(self, fragment: Any, *args: Any, factor: float = 1.0, name: str = "scale", **kwargs: Any) -> None:
        factor = float(factor)
        if factor == 0 or factor != factor or abs(factor) == float("inf"):
            raise ValueError(f"ScaleOp: expected a finite, non-zero factor; got {factor}")
        self.factor = factor
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = self.receive(op_input, P.FRAME_IN)
        scaled = frame * frame.dtype.type(self.factor)
        self.emit(op_output, scaled, P.FRAME_OUT)
