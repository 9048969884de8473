"""Detection quality: precision and recall at an IoU threshold (greedy matching, per class)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from clara_stream.operators.video.detections import iou_matrix


@dataclass
class Score:
    """Counts over a set of frames; ``precision``/``recall`` are 1.0 when undefined (nothing to find)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def add(self, other: Score) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn


def match_frame(
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    pred_classes: Sequence[int],
    gt_boxes: np.ndarray,
    gt_classes: Sequence[int],
    iou_threshold: float = 0.5,
) -> Score:
    """Greedy by score: each prediction matches the best unmatched ground truth of its class."""
    pb, gb = (
        np.asarray(pred_boxes, np.float32).reshape(-1, 4),
        np.asarray(gt_boxes, np.float32).reshape(-1, 4),
    )
    pc, gc = np.asarray(pred_classes).reshape(-1), np.asarray(gt_classes).reshape(-1)
    used = np.zeros(len(gb), bool)
    tp = 0
    ious = iou_matrix(pb, gb) if len(pb) and len(gb) else np.zeros((len(pb), len(gb)))
    for i in np.argsort(-np.asarray(pred_scores).reshape(-1), kind="stable"):
        cand = np.where((gc == pc[i]) & ~used, ious[i], -1.0) if len(gb) else np.zeros(0)
        if cand.size and cand.max() >= iou_threshold:
            used[int(cand.argmax())] = True
            tp += 1
    return Score(tp, len(pb) - tp, len(gb) - tp)


def evaluate(frames: Iterable[tuple[tuple, tuple]], iou_threshold: float = 0.5) -> Score:
    """Sum :func:`match_frame` over ``((pred_boxes, pred_scores, pred_classes), (gt_boxes, gt_classes))``."""
    total = Score()
    for (pb, ps, pc), (gb, gc) in frames:
        total.add(match_frame(pb, ps, pc, gb, gc, iou_threshold))
    return total


def evaluate_kitti(kitti_dir: str | Path, ground_truth: str | Path, iou_threshold: float = 0.5) -> Score:
    """Score a folder of per-frame KITTI files against a :mod:`clara_stream.samples.video` ground truth.

    Frames without a KITTI file count all their objects as missed.
    """
    from clara_stream.operators.video.kitti import kitti_name, read_kitti

    from clara_stream.samples.video import load_ground_truth

    gt = load_ground_truth(Path(ground_truth))
    classes = list(gt["classes"])
    total = Score()
    for index, objects in enumerate(gt["boxes"]):
        gb = np.asarray([o["box"] for o in objects], np.float32).reshape(-1, 4)
        gc = np.asarray([o["class_id"] for o in objects], np.int64)
        path = Path(kitti_dir) / kitti_name(index)
        if not path.is_file():
            total.add(Score(0, 0, len(gb)))
            continue
        det = read_kitti(path, classes)
        ids = np.asarray([classes.index(n) for n in det.names()], np.int64)
        total.add(match_frame(det.boxes, det.scores, ids, gb, gc, iou_threshold))
    return total
