"""Write the render service's seed dataset layout for a segmented volume.

Layout (one folder)::

    config.meta          JSON: {"name", "image": "original.mhd", "mask": "mask.mhd", "labels": {value: {name, color}},
                          "modality", "series_uid", "geometry"}
    config_render.json   JSON: initial render hints (window, per-label colours and opacity); the render
                          service adds its own "view" key when a user saves a view
    original.mhd/.raw    the image as read (HU for CT), same geometry as the mask
    mask.mhd/.raw        uint8 labels
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

from .mhd import write_mhd

__all__ = ["write_render_dataset", "LABEL_COLOURS"]

LABEL_COLOURS = [(220, 80, 60), (80, 160, 220), (240, 200, 60), (120, 200, 90), (200, 120, 220), (90, 220, 200)]


def write_render_dataset(
    folder: str | Path,
    image: np.ndarray,
    geometry: ImageGeometry,
    mask: np.ndarray,
    labels: Mapping[int, str],
    *,
    name: str = "dataset",
    modality: str = "CT",
    series_uid: str = "",
    window: tuple[float, float] = (40.0, 400.0),
) -> dict[str, Path]:
    """Write the seed layout; returns {"folder", "config_meta", "config_render", "image", "mask"}.

    Raises
    ------
    ValueError
        If image and mask differ in shape.
    """
    if image.shape != mask.shape:
        raise ValueError(
            f"RenderDatasetWriter: expected image and mask of one shape; got {image.shape} and {mask.shape}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_mhd(folder / "original.mhd", image, geometry)
    write_mhd(folder / "mask.mhd", mask.astype(np.uint8, copy=False), geometry)
    label_doc: dict[str, Any] = {
        str(v): {"name": n, "color": list(LABEL_COLOURS[(v - 1) % len(LABEL_COLOURS)])}
        for v, n in sorted(labels.items())
    }
    meta = {
        "name": name,
        "image": "original.mhd",
        "mask": "mask.mhd",
        "labels": label_doc,
        "modality": modality,
        "series_uid": series_uid,
        "geometry": geometry.to_dict(),
        "shape_zyx": list(image.shape),
    }
    (folder / "config.meta").write_text(json.dumps(meta, indent=2) + "\n")
    render = {
        "window": {"center": window[0], "width": window[1]},
        "labels": {k: {**v, "opacity": 0.6, "visible": True} for k, v in label_doc.items()},
    }
    (folder / "config_render.json").write_text(json.dumps(render, indent=2) + "\n")
    return {
        "folder": folder,
        "config_meta": folder / "config.meta",
        "config_render": folder / "config_render.json",
        "image": folder / "original.mhd",
        "mask": folder / "mask.mhd",
    }
