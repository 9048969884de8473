"""Whole-region classification (Clara Deploy's COVID-style lung classifier): the segmented region in.

The classifier consumes the segmentation, as in Clara Deploy's two-operator design: the volume is
cut to the bounding box of the mask (plus a margin), voxels outside the mask set to the window's
low end, windowed to [0, 1] and resampled to the card's fixed input size in MONAI layout
(channel-first, RAS). A card (``classifier.json`` beside the weights) says how.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

from .segment import to_monai

__all__ = ["ClassifierCard", "prepare_region", "classify", "build_classifier"]


@dataclass
class ClassifierCard:
    """How a region classifier expects its input (``classifier.json``)."""

    hu_window: tuple[float, float] = (-1000.0, 0.0)
    input_size: tuple[int, int, int] = (48, 48, 24)  # MONAI order (X, Y, Z)
    margin_mm: float = 5.0
    classes: list[str] = field(default_factory=lambda: ["not covid-like", "covid-like"])
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ClassifierCard:
        path = Path(path)
        path = path / "classifier.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"ClassifierCard: expected a classifier.json; got {str(path)!r} (missing)")
        d = json.loads(path.read_text())
        return cls(tuple(d["hu_window"]), tuple(d["input_size"]), float(d.get("margin_mm", 5.0)),
                   list(d["classes"]), dict(d.get("files", {})), dict(d.get("metrics", {})))  # fmt: skip

    def save(self, path: str | Path) -> None:
        d = {"hu_window": list(self.hu_window), "input_size": list(self.input_size), "margin_mm": self.margin_mm,
             "classes": self.classes, "files": self.files, "metrics": self.metrics}  # fmt: skip
        Path(path).write_text(json.dumps(d, indent=2) + "\n")


def prepare_region(hu: np.ndarray, mask: np.ndarray, geometry: ImageGeometry, card: ClassifierCard) -> np.ndarray:
    """(1, 1, X, Y, Z) float32 classifier input from a (z, y, x) HU volume and its region mask.

    Raises
    ------
    ValueError
        If the mask is empty or of another shape (nothing to classify).
    """
    from scipy import ndimage

    if mask.shape != hu.shape:
        raise ValueError(f"prepare_region: expected a mask of shape {hu.shape}; got {mask.shape}")
    idx = np.argwhere(mask > 0)
    if not len(idx):
        raise ValueError("prepare_region: expected a non-empty region mask; got no voxel (segmentation empty)")
    sx, sy, sz = geometry.spacing
    pad = np.ceil(card.margin_mm / np.array([sz, sy, sx])).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, hu.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    w0, w1 = card.hu_window
    region = np.where(mask[box] > 0, hu[box].astype(np.float32), w0)
    region = np.clip((region - w0) / (w1 - w0), 0.0, 1.0)
    x = to_monai(region, geometry)  # (X, Y, Z), RAS-ordered axes
    zoom = [t / s for t, s in zip(card.input_size, x.shape, strict=True)]
    x = ndimage.zoom(x, zoom, order=1, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(x[None, None], dtype=np.float32)


def classify(hu: np.ndarray, mask: np.ndarray, geometry: ImageGeometry, card: ClassifierCard,
             predictor: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:  # fmt: skip
    """Class name → softmax probability for one region."""
    logits = np.asarray(predictor(prepare_region(hu, mask, geometry, card)), dtype=np.float64).reshape(-1)
    if logits.size != len(card.classes):
        raise ValueError(f"classify: expected {len(card.classes)} logits; got {logits.size}")
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return {name: float(v) for name, v in zip(card.classes, p, strict=True)}


def build_classifier(num_classes: int = 2) -> Any:
    """A small 3D CNN (≈ 30 k parameters): 4 conv blocks, global average pool, linear."""
    import torch.nn as nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout), nn.LeakyReLU(0.1), nn.MaxPool3d(2)]

    return nn.Sequential(*block(1, 8), *block(8, 16), *block(16, 32), *block(32, 32), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(32, num_classes))  # fmt: skip
