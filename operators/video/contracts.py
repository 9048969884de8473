"""Port contracts of the video operators (pure: no holoscan import)."""

from __future__ import annotations

from clara_stream.operators.video.batcher import FrameBatch
from clara_stream.operators.video.detections import Detections

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind

FRAME_RGB = Contract(
    kind=Kind.TENSOR,
    dtypes=("uint8",),
    shape=("H", "W", 3),
    layout="HWC",
    domain="video/rgb",
    device=Device.HOST,
    meta=(P.FRAME_INFO,),
    description="decoded RGB frame, uint8 (H, W, 3), with FrameInfo (pts, time base, index, rate)",
)
MODEL_INPUT = Contract(
    kind=Kind.TENSOR,
    dtypes=("float32",),
    shape=(3, "H", "W"),
    layout="CHW",
    domain="tensor/image",
    device=Device.HOST,
    meta=(P.FRAME_INFO, P.LETTERBOX),
    description="letterboxed, scaled float32 CHW model input",
)
MODEL_OUTPUTS = Contract(
    kind=Kind.TENSOR_MAP, device=Device.HOST, domain="tensor/*", description="model outputs by tensor name"
)
DETECTIONS = Contract(
    kind=Kind.OBJECT,
    pytype=Detections,
    domain="detections",
    meta=(P.FRAME_INFO,),
    description="Detections: boxes (N, 4) frame pixels (left, top, right, bottom), scores, class ids, labels",
)
FRAME_BATCH = Contract(
    kind=Kind.OBJECT,
    pytype=FrameBatch,
    domain="video/rgb-batch",
    description="FrameBatch: one RGB frame per source (source number, FrameInfo, glass-to-glass start each)",
)
DETECTIONS_BATCH = Contract(
    kind=Kind.OBJECT,
    pytype=list,
    domain="detections-batch",
    description="list of Detections, one per FrameBatch item, in the batch's order (boxes in each frame's pixels)",
)
