"""BatchPreprocessOp: FrameBatch → one letterboxed float32 (B, 3, H, W) model input."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.video.batch_source_op import FRAME_BATCH_PORT
from clara_stream.operators.video.batcher import batch_tensor
from clara_stream.operators.video.contracts import FRAME_BATCH
from clara_stream.operators.video.preprocess_op import PreprocessOp

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind
from clara_stream.runtime import Port

BATCH_INPUT = Contract(kind=Kind.TENSOR, dtypes=("float32",), shape=("B", 3, "H", "W"), layout="NCHW",
                       domain="tensor/image", device=Device.HOST, meta=(P.LETTERBOX,),
                       description="letterboxed, scaled float32 NCHW model input, one image per batch item")


class BatchPreprocessOp(PreprocessOp):
    """Fit every frame of a batch into the model input on its own (aspect kept) and stack them.

    Ports
    -----
    frame_batch : FrameBatch
    tensor : float32 (B, 3, height, width); metadata ``letterbox``: the list of Letterbox, one per
        item (boxes map back to each frame's own pixels)

    Parameters
    ----------
    As PreprocessOp's (width, height, scale, mean, std, pad_value), validated the same way.
    """

    inputs = (Port(FRAME_BATCH_PORT, FRAME_BATCH),)
    outputs = (Port(P.TENSOR, BATCH_INPUT),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        batch = self.receive(op_input, FRAME_BATCH_PORT)
        tensor = batch_tensor(batch, self.size, scale=self.scale, pad_value=self.pad_value, mean=self.mean,
                              std=self.std)
        self.emit(op_output, tensor, P.TENSOR, meta={P.LETTERBOX: list(batch.letterboxes)})
