"""BatchPostprocessOp: batched model outputs → one Detections per batch item."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.video.contracts import DETECTIONS_BATCH
from clara_stream.operators.video.detections import postprocess
from clara_stream.operators.video.postprocess_op import LOGITS_IN, DetectionPostprocessOp

from clara_stream import ports as P
from clara_stream.runtime import Port

DETECTIONS_BATCH_PORT = P.suffixed(P.DETECTIONS, "batch")


class BatchPostprocessOp(DetectionPostprocessOp):
    """Decode each item's dense boxes and scores with its own letterbox (per-source frame pixels).

    Ports
    -----
    logits : dict with ``boxes_name`` (B, A, 4) and ``scores_name`` (B, A, C); metadata
        ``letterbox``: the list of B Letterbox from BatchPreprocessOp
    detections_batch : list of B Detections, in the batch's order

    Parameters
    ----------
    As DetectionPostprocessOp's, validated the same way.
    """

    inputs = (Port(P.LOGITS, LOGITS_IN),)
    outputs = (Port(DETECTIONS_BATCH_PORT, DETECTIONS_BATCH),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        outputs = self.receive(op_input, P.LOGITS)
        if not {self.boxes_name, self.scores_name} <= set(outputs):
            raise ValueError(f"BatchPostprocessOp: expected model outputs {self.boxes_name!r} and "
                             f"{self.scores_name!r}; got {sorted(outputs)}")
        boxes, scores = outputs[self.boxes_name], outputs[self.scores_name]
        boxes_lb = self.get_meta(P.LETTERBOX)
        if boxes.ndim != 3 or len(boxes_lb) != boxes.shape[0]:
            raise ValueError(f"BatchPostprocessOp: expected (B, A, 4) boxes with B letterboxes; got "
                             f"{boxes.shape} and {len(boxes_lb)}")
        dets = [postprocess(boxes[k], scores[k], boxes_lb[k], self.labels, score_threshold=self.score_threshold,
                            iou_threshold=self.iou_threshold, max_detections=self.max_detections)
                for k in range(boxes.shape[0])]
        self.emit(op_output, dets, DETECTIONS_BATCH_PORT)
