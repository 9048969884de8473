"""3D segmentation inference in patient space: resample → MONAI layout → sliding window → labels.

The model's own card (``model.json`` beside its weights, or a MONAI Bundle's configs, see
:mod:`.bundle`) says how it was trained: voxel spacing,
HU window, ROI size, labels. Everything here follows the card, so training
(``apps/organ_segmentation/model/train.py``) and inference share one code path.

Conventions: our volumes are (z, y, x) in LPS. MONAI networks take channel-first (N, C, X, Y, Z) in
RAS orientation; :func:`to_monai` / :func:`from_monai` are the only places that convert, and they
are only called from here and from the inference operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

from .resample import resample_to_grid, spacing_grid

__all__ = ["ModelCard", "to_monai", "from_monai", "prepare_input", "labels_from_logits", "segment"]


@dataclass
class ModelCard:
    """How a segmentation model expects its input (stored as model.json beside the weights)."""

    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)  # (x, y, z)
    hu_window: tuple[float, float] = (-200.0, 600.0)
    roi_size: tuple[int, int, int] = (96, 96, 64)  # MONAI order (X, Y, Z)
    labels: dict[int, str] = field(default_factory=dict)  # value -> name, background 0 implied
    files: dict[str, str] = field(default_factory=dict)  # backend -> file name (torchscript, onnx)
    metrics: dict[str, Any] = field(default_factory=dict)
    scaled_range: tuple[float, float] = (0.0, 1.0)  # the HU window maps onto this range (MONAI b_min, b_max)

    @property
    def num_classes(self) -> int:
        return max(self.labels, default=0) + 1

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        from .bundle import card_from_bundle, is_bundle

        if is_bundle(path):  # a MONAI Bundle folder: configs/metadata.json + configs/inference.json
            return card_from_bundle(path)
        if path.is_dir():
            path = path / "model.json"
        if not path.is_file():
            raise FileNotFoundError(f"ModelCard: expected a model.json; got {str(path)!r} (missing)")
        d = json.loads(path.read_text())
        return cls(
            spacing_mm=tuple(d["spacing_mm"]),
            hu_window=tuple(d["hu_window"]),
            roi_size=tuple(d["roi_size"]),
            labels={int(k): v for k, v in d["labels"].items()},
            files=dict(d.get("files", {})),
            metrics=dict(d.get("metrics", {})),
            scaled_range=tuple(d.get("scaled_range", (0.0, 1.0))),
        )

    def save(self, path: str | Path) -> None:
        d = {
            "spacing_mm": list(self.spacing_mm),
            "hu_window": list(self.hu_window),
            "roi_size": list(self.roi_size),
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "files": self.files,
            "metrics": self.metrics,
        }
        Path(path).write_text(json.dumps(d, indent=2) + "\n")


def _ornt(geometry: ImageGeometry) -> np.ndarray:
    import nibabel.orientations as no

    return no.ornt_transform(no.io_orientation(geometry.ras_affine()), no.axcodes2ornt("RAS"))


def to_monai(array_zyx: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """(z, y, x) LPS → (X, Y, Z) with axes permuted/flipped to the closest RAS (a view when possible)."""
    import nibabel.orientations as no

    return no.apply_orientation(array_zyx.transpose(2, 1, 0), _ornt(geometry))


def from_monai(array_xyz: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """Inverse of :func:`to_monai` for the trailing three axes (leading channel axes kept)."""
    import nibabel.orientations as no

    inv = no.ornt_transform(no.axcodes2ornt("RAS"), no.io_orientation(geometry.ras_affine()))
    lead = array_xyz.ndim - 3
    if lead:
        out = np.stack([from_monai(a, geometry) for a in array_xyz])
        return out
    return no.apply_orientation(array_xyz, inv).transpose(2, 1, 0)


def prepare_input(
    hu: np.ndarray, geometry: ImageGeometry, card: ModelCard
) -> tuple[np.ndarray, tuple[int, int, int], ImageGeometry]:
    """Resample to the card's spacing, window to [0, 1]; returns (N=1, C=1, X, Y, Z) float32 + grid."""
    shape, grid = spacing_grid(hu.shape, geometry, card.spacing_mm)
    lo, hi = card.hu_window
    img = resample_to_grid(hu, geometry, shape, grid, order=1, cval=float(hu.min()))
    img = np.clip((img - lo) / (hi - lo), 0.0, 1.0, out=img)
    b0, b1 = card.scaled_range
    if (b0, b1) != (0.0, 1.0):
        img = img * (b1 - b0) + b0
    x = to_monai(img, grid)[None, None]
    return np.ascontiguousarray(x, dtype=np.float32), shape, grid


def labels_from_logits(
    logits: np.ndarray,
    grid_shape: Sequence[int],
    grid: ImageGeometry,
    shape: Sequence[int],
    geometry: ImageGeometry,
) -> np.ndarray:
    """(C, X, Y, Z) logits on the model grid → uint8 (z, y, x) labels on the original grid.

    Softmax probabilities are resampled linearly and the argmax taken on the original grid, which
    keeps organ boundaries smoother than resampling labels by nearest neighbour.
    """
    z = logits - logits.max(axis=0, keepdims=True)
    p = np.exp(z, dtype=np.float32)
    p /= p.sum(axis=0, keepdims=True)
    probs = from_monai(p, grid)  # (C, z, y, x) on the model grid
    if tuple(probs.shape[1:]) != tuple(grid_shape):
        raise ValueError(f"labels_from_logits: expected grid {tuple(grid_shape)}; got {probs.shape[1:]}")
    back = resample_to_grid(probs, grid, shape, geometry, order=1, cval=0.0)
    back[0] += 1e-6  # outside the grid: background
    return back.argmax(axis=0).astype(np.uint8)


def segment(
    hu: np.ndarray,
    geometry: ImageGeometry,
    card: ModelCard,
    predictor: Callable[[Any], Any],
    *,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    mode: str = "gaussian",
) -> np.ndarray:
    """Segment one volume with MONAI's sliding-window inference; returns uint8 (z, y, x) labels.

    ``predictor`` maps a torch tensor (N, 1, *roi) to logits (N, C, *roi) (a torch module, or a
    wrapper over ONNX Runtime / Triton).
    """
    import torch
    from monai.inferers import sliding_window_inference

    x, grid_shape, grid = prepare_input(hu, geometry, card)
    with torch.inference_mode():
        logits = sliding_window_inference(
            torch.from_numpy(x), tuple(card.roi_size), sw_batch_size, predictor, overlap=overlap, mode=mode
        )
    return labels_from_logits(logits[0].numpy(), grid_shape, grid, hu.shape, geometry)
