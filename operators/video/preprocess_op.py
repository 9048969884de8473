"""PreprocessOp: RGB frame → letterboxed, scaled float32 CHW model input."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.video.contracts import FRAME_RGB, MODEL_INPUT
from clara_stream.operators.video.preprocess import letterbox_image, to_tensor

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class PreprocessOp(Operator):
    """Fit each frame into the model input (aspect kept, centred, padded) and normalise it.

    Ports
    -----
    frame_in : uint8 (H, W, 3) RGB host array, metadata ``frame_info``
    tensor : float32 (3, height, width) CHW host array; metadata ``letterbox`` (Letterbox: scale,
        padding and frame size, so boxes map back to frame pixels) and ``frame_info`` passed on

    Parameters
    ----------
    width, height : int
        Model input size in pixels (each >= 8).
    scale : float
        Multiplier applied to uint8 values (default 1/255).
    mean, std : list of 3 floats, optional
        Per-channel normalisation after scaling: ``(x * scale - mean) / std``.
    pad_value : int
        Letterbox padding, 0–255 (default 114, the YOLO/CenterNet convention).
    """

    inputs = (Port(P.FRAME_IN, FRAME_RGB),)
    outputs = (Port(P.TENSOR, MODEL_INPUT),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        width: int = 320,
        height: int = 192,
        scale: float = 1.0 / 255.0,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        pad_value: int = 114,
        name: str = "preprocess",
        **kwargs: Any,
    ) -> None:
        if int(width) < 8 or int(height) < 8:
            raise ValueError(f"PreprocessOp: expected width and height >= 8; got {width}x{height}")
        for label, v in (("mean", mean), ("std", std)):
            if v is not None and len(v) != 3:
                raise ValueError(f"PreprocessOp: expected {label} as 3 numbers (R, G, B); got {v!r}")
        if std is not None and min(std) <= 0:
            raise ValueError(f"PreprocessOp: expected std > 0; got {std}")
        if not 0 <= int(pad_value) <= 255:
            raise ValueError(f"PreprocessOp: expected pad_value in [0, 255]; got {pad_value}")
        self.size = (int(width), int(height))
        self.scale, self.mean, self.std, self.pad_value = float(scale), mean, std, int(pad_value)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = self.receive(op_input, P.FRAME_IN)
        image, lb = letterbox_image(frame, self.size, pad_value=self.pad_value)
        tensor = to_tensor(image, scale=self.scale, mean=self.mean, std=self.std)
        self.emit(op_output, tensor, P.TENSOR, meta={P.LETTERBOX: lb})
