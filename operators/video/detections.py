"""Detections as plain arrays: letterbox geometry, box decoding, score threshold and NMS.

Boxes are ``(left, top, right, bottom)`` float32 pixels of the *frame* (x right, y down), the
convention KITTI and OpenCV drawing use. The detector's raw outputs are in *model input* pixels;
:class:`Letterbox` maps between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: ``model = frame * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float
    frame_width: int
    frame_height: int

    @classmethod
    def fit(cls, frame_hw: tuple[int, int], model_wh: tuple[int, int]) -> Letterbox:
        """Aspect-preserving fit of a ``(height, width)`` frame, centred in ``(width, height)``."""
        h, w = frame_hw
        mw, mh = model_wh
        scale = min(mw / w, mh / h)
        nw, nh = round(w * scale), round(h * scale)
        return cls(scale, (mw - nw) // 2, (mh - nh) // 2, w, h)

    @property
    def resized_wh(self) -> tuple[int, int]:
        return round(self.frame_width * self.scale), round(self.frame_height * self.scale)

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) model-input boxes to frame pixels, clipped to the frame."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale
        np.clip(out[:, 0::2], 0, self.frame_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.frame_height, out=out[:, 1::2])
        return out

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) frame boxes into model-input pixels."""
        out = np.asarray(boxes, np.float32).copy()
        out[:, 0::2] = out[:, 0::2] * self.scale + self.pad_x
        out[:, 1::2] = out[:, 1::2] * self.scale + self.pad_y
        return out


@dataclass
class Detections:
    """Objects found in one frame.

    Attributes
    ----------
    boxes : (N, 4) float32, frame pixels, (left, top, right, bottom)
    scores : (N,) float32 in [0, 1]
    class_ids : (N,) int32
    labels : tuple of str, the names of all classes (index = class id)
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def names(self) -> list[str]:
        return [self.labels[c] if 0 <= c < len(self.labels) else str(int(c)) for c in self.class_ids]


def load_labels(path: str | Path) -> tuple[str, ...]:
    """One label per non-empty line (DeepStream's labels.txt); ``#`` starts a comment."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"load_labels: expected a labels file; got missing {p}")
    labels = tuple(s.strip() for s in p.read_text().splitlines() if s.strip() and not s.lstrip().startswith("#"))
    if not labels:
        raise ValueError(f"load_labels: expected at least one label; got an empty file [{p}]")
    if any(" " in s for s in labels):
        raise ValueError(f"load_labels: expected labels without spaces (KITTI columns); got {labels} [{p}]")
    return labels


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) boxes → (N, M)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, np.int64)


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    letterbox: Letterbox,
    labels: Sequence[str],
    *,
    score_threshold: float = 0.35,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    min_size_px: float = 2.0,
) -> Detections:
    """Turn one image's dense outputs into final detections.

    Parameters
    ----------
    boxes : (A, 4) float, model-input pixels (left, top, right, bottom)
    scores : (A, C) float, per-class probabilities
    letterbox : Letterbox
        Geometry used by the preprocessing of this frame.
    labels : sequence of str, one per class (C)
    score_threshold, iou_threshold : float in (0, 1)
        Candidates below ``score_threshold`` are dropped; NMS is per class.
    max_detections : int
        Highest-scoring detections kept after NMS.
    min_size_px : float
        Boxes narrower or shorter than this in the frame are dropped.

    Raises
    ------
    ValueError
        Shapes disagree, or the score columns do not match the labels.
    """
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"postprocess: expected boxes (A, 4) and scores (A, C); got {boxes.shape} and {scores.shape}")
    if scores.shape[1] != len(labels):
        raise ValueError(f"postprocess: expected {len(labels)} score columns (one per label); got {scores.shape[1]}")
    cand, cls = np.nonzero(scores >= score_threshold)
    if cand.size == 0:
        return Detections(labels=tuple(labels))
    fb = letterbox.to_frame(boxes[cand])
    sc = scores[cand, cls]
    ok = ((fb[:, 2] - fb[:, 0]) >= min_size_px) & ((fb[:, 3] - fb[:, 1]) >= min_size_px)
    fb, sc, cls = fb[ok], sc[ok], cls[ok]
    keep_all: list[np.ndarray] = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        keep_all.append(idx[nms(fb[idx], sc[idx], iou_threshold)])
    keep = np.concatenate(keep_all) if keep_all else np.zeros(0, np.int64)
    keep = keep[np.argsort(-sc[keep], kind="stable")][:max_detections]
    return Detections(fb[keep], sc[keep].astype(np.float32), cls[keep].astype(np.int32), tuple(labels))
