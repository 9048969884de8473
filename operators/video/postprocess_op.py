"""DetectionPostprocessOp: dense model outputs → final detections (threshold, per-class NMS, labels)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from clara_stream.operators.video.contracts import DETECTIONS, MODEL_OUTPUTS
from clara_stream.operators.video.detections import load_labels, postprocess

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

LOGITS_IN = dataclasses.replace(MODEL_OUTPUTS, meta=(P.LETTERBOX,))


class DetectionPostprocessOp(Operator):
    """Decode one frame's dense boxes and scores into labelled detections in frame pixels.

    Ports
    -----
    logits : dict of host arrays from the model: ``boxes_name`` (A, 4) or (1, A, 4) model-input
        pixels (left, top, right, bottom) and ``scores_name`` (A, C) or (1, A, C) probabilities;
        needs metadata ``letterbox`` (from PreprocessOp)
    detections : Detections (boxes in frame pixels), metadata passed on

    Parameters
    ----------
    labels : path
        Labels file, one class name per line, C lines (required).
    score_threshold : float in (0, 1)
        Minimum class probability kept (default 0.35).
    iou_threshold : float in (0, 1]
        Per-class NMS overlap (default 0.45).
    max_detections : int
        Per frame, highest scores first (default 100).
    boxes_name, scores_name : str
        Names of the model outputs.
    """

    inputs = (Port(P.LOGITS, LOGITS_IN),)
    outputs = (Port(P.DETECTIONS, DETECTIONS),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        labels: str | Path | None = None,
        score_threshold: float = 0.35,
        iou_threshold: float = 0.45,
        max_detections: int = 100,
        boxes_name: str = "boxes",
        scores_name: str = "scores",
        name: str = "postprocess",
        **kwargs: Any,
    ) -> None:
        if labels is None:
            raise ValueError("DetectionPostprocessOp: expected labels=<labels file>; got none")
        if not 0 < float(score_threshold) < 1 or not 0 < float(iou_threshold) <= 1:
            raise ValueError(
                f"DetectionPostprocessOp: expected score_threshold in (0, 1) and iou_threshold in (0, 1]; "
                f"got {score_threshold}, {iou_threshold}"
            )
        if int(max_detections) < 1:
            raise ValueError(f"DetectionPostprocessOp: expected max_detections >= 1; got {max_detections}")
        self.labels = load_labels(labels)
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.max_detections, self.boxes_name, self.scores_name = int(max_detections), boxes_name, scores_name
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        outputs = self.receive(op_input, P.LOGITS)
        missing = {self.boxes_name, self.scores_name} - set(outputs)
        if missing:
            raise ValueError(
                f"DetectionPostprocessOp: expected model outputs {self.boxes_name!r} and {self.scores_name!r}; "
                f"got {sorted(outputs)}"
            )
        boxes, scores = outputs[self.boxes_name], outputs[self.scores_name]
        if boxes.ndim == 3:
            boxes, scores = boxes[0], scores[0]
        det = postprocess(
            boxes,
            scores,
            self.get_meta(P.LETTERBOX),
            self.labels,
            score_threshold=self.score_threshold,
            iou_threshold=self.iou_threshold,
            max_detections=self.max_detections,
        )
        self.emit(op_output, det, P.DETECTIONS)
