"""ArraySourceOp: emits synthetic float32 frames with FrameInfo metadata."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from clara_stream.operators.common.frames import F32_IMAGE, blob_frame, frame_info

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class ArraySourceOp(Operator):
    """Emit ``count`` synthetic frames (a moving blob), then end the stream.

    Ports
    -----
    frame : float32 (H, W) host array, metadata ``frame_info`` (FrameInfo)

    Parameters
    ----------
    count : int
        Frames to emit (>= 1).
    height, width : int
        Frame size in pixels (>= 8).
    rate : float
        Nominal frame rate for timestamps (> 0); frames are not paced.
    """

    outputs = (Port(P.FRAME, F32_IMAGE),)

    def __init__(self, fragment: Any, *args: Any, count: int = 10, height: int = 64, width: int = 64,
                 rate: float = 30.0, name: str = "source", **kwargs: Any) -> None:
        if int(count) < 1:
            raise ValueError(f"ArraySourceOp: expected count >= 1; got {count}")
        if min(int(height), int(width)) < 8:
            raise ValueError(f"ArraySourceOp: expected height and width >= 8; got {height}x{width}")
        if float(rate) <= 0:
            raise ValueError(f"ArraySourceOp: expected rate > 0; got {rate}")
        self.count, self.height, self.width = int(count), int(height), int(width)
        self.rate = Fraction(rate).limit_denominator(1001)
        self.index = 0
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = blob_frame(self.index, self.height, self.width)
        self.emit(op_output, frame, P.FRAME, meta={P.FRAME_INFO: frame_info(self.index, self.rate)})
        self.index += 1
        if self.index >= self.count:
            self.stop_stream()
