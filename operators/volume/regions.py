"""Multi-AI segmentation: split a volume into regions, run one model per region, merge into one label map.

Each region is a box (fractions of the volume extent, or LPS millimetres) cut as a zero-copy view;
its model's labels are mapped to the output label values; regions are merged in order and an earlier
region's labels are never overwritten (so a specialised model listed first takes precedence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

from .crop import CropBox, box_from_mm, crop_view
from .segment import ModelCard, segment

__all__ = ["Region", "parse_regions", "region_box", "merge_region_labels", "segment_regions"]


@dataclass
class Region:
    """One region: where it is, which model runs there, and how its labels map to the output."""

    name: str
    model: Path
    label_map: dict[int, int] = field(default_factory=dict)  # model value -> output value (empty: identity)
    box_fraction: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # (z, y, x)
    box_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # LPS (x, y, z)
    backend: str = "onnxruntime"


def parse_regions(items: Sequence[Mapping[str, Any]], base: Path) -> list[Region]:
    """Validate the app.yaml ``regions`` list; model paths are relative to ``base``.

    Raises
    ------
    ValueError
        On a missing name/model, both or neither of box_fraction/box_mm, or fractions outside [0, 1].
    """
    if not items:
        raise ValueError("MultiModelSegmentation: expected at least one region; got none")
    regions, names = [], set()
    for i, it in enumerate(items):
        if "name" not in it or "model" not in it:
            raise ValueError(f"MultiModelSegmentation: expected region {i} with name and model; got {dict(it)!r}")
        if ("box_fraction" in it) == ("box_mm" in it):
            raise ValueError(
                f"MultiModelSegmentation: expected exactly one of box_fraction, box_mm in region {it['name']!r}"
            )
        if it["name"] in names:
            raise ValueError(f"MultiModelSegmentation: expected unique region names; got {it['name']!r} twice")
        names.add(it["name"])
        frac = it.get("box_fraction")
        if frac is not None:
            f = np.asarray(frac, dtype=float)
            if f.shape != (2, 3) or np.any(f < 0) or np.any(f > 1) or np.any(f[0] >= f[1]):
                raise ValueError(f"MultiModelSegmentation: expected box_fraction [[z0, y0, x0], [z1, y1, x1]] within "
                                 f"[0, 1] with lo < hi; got {frac!r} in region {it['name']!r}")  # fmt: skip
        model = Path(it["model"])
        regions.append(Region(
            name=str(it["name"]), model=model if model.is_absolute() else base / model,
            label_map={int(k): int(v) for k, v in (it.get("label_map") or {}).items()},
            box_fraction=tuple(map(tuple, frac)) if frac is not None else None,
            box_mm=tuple(map(tuple, it["box_mm"])) if "box_mm" in it else None,
            backend=str(it.get("backend", "onnxruntime")),
        ))  # fmt: skip
    return regions


def region_box(region: Region, shape: Sequence[int], geometry: ImageGeometry) -> CropBox:
    """The voxel box of a region in a volume of ``shape``."""
    if region.box_mm is not None:
        return box_from_mm(shape, geometry, *region.box_mm)
    lo = [int(np.floor(f * n)) for f, n in zip(region.box_fraction[0], shape, strict=True)]
    hi = [max(a + 1, int(np.ceil(f * n))) for a, f, n in zip(lo, region.box_fraction[1], shape, strict=True)]
    return tuple(lo), tuple(hi)  # type: ignore[return-value]


def merge_region_labels(merged: np.ndarray, box: CropBox, labels: np.ndarray, label_map: Mapping[int, int]) -> None:
    """Write a region's labels into ``merged`` (in place) where ``merged`` is still background."""
    view, _ = crop_view(merged, ImageGeometry(), box)
    out = labels if not label_map else np.zeros_like(labels)
    for src, dst in label_map.items():
        out[labels == src] = dst
    free = view == 0
    view[free] = out[free]


def segment_regions(
    hu: np.ndarray,
    geometry: ImageGeometry,
    regions: Sequence[Region],
    predictors: Mapping[str, Callable[[Any], Any]],
    cards: Mapping[str, ModelCard],
    *,
    overlap: float = 0.25,
) -> tuple[np.ndarray, dict[str, CropBox]]:
    """Run each region's model on its (zero-copy) crop; returns (merged uint8 labels, boxes by region)."""
    merged = np.zeros(hu.shape, dtype=np.uint8)
    boxes = {}
    for r in regions:
        box = region_box(r, hu.shape, geometry)
        view, sub_geom = crop_view(hu, geometry, box)
        labels = segment(view, sub_geom, cards[r.name], predictors[r.name], overlap=overlap)
        merge_region_labels(merged, box, labels, r.label_map)
        boxes[r.name] = box
    return merged, boxes
