"""Write the render service's seed dataset layout for a segmented volume.

Layout (one folder)::

    config.meta          JSON: {"name", "image": "original.mhd", "mask": "mask.mhd", "labels": {value: {name, color}},
                          "modality", "series_uid", "geometry"}
    config_render.json   JSON: initial render hints (window, per-label colours and opacity); the render
                          service adds its own "view" key when a user saves a view
    original.mhd/.raw    the image as read (HU for CT), same geometry as the mask
    mask.mhd/.raw        uint8 labels

The folder is written as ``<folder>.partial`` and renamed into place when complete, so the render
service never sees half a dataset; :func:`discard_render_dataset` removes a published one (an app
whose run failed after this writer ran does not leave a dataset of that run behind).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.geometry import ImageGeometry

from .mhd import write_mhd

__all__ = ["write_render_dataset", "discard_render_dataset", "LABEL_COLOURS"]

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
    final = Path(folder)
    folder = final.with_name(final.name + ".partial")
    shutil.rmtree(folder, ignore_errors=True)  # a leftover of a run that died mid-write
    folder.mkdir(parents=True)
    try:
        _write_files(folder, image, geometry, mask, labels, name, modality, series_uid, window)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if final.exists():  # the folder belongs to this run now: replace, never merge
        old = final.with_name(final.name + ".replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(folder, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(folder, final)
    return {
        "folder": final,
        "config_meta": final / "config.meta",
        "config_render": final / "config_render.json",
        "image": final / "original.mhd",
        "mask": final / "mask.mhd",
    }


def discard_render_dataset(folder: str | Path) -> bool:
    """Remove a dataset written by :func:`write_render_dataset` (and any partial one); True if one was there."""
    final = Path(folder)
    found = final.exists()
    for path in (final, final.with_name(final.name + ".partial")):
        shutil.rmtree(path, ignore_errors=True)
    return found


def _write_files(folder: Path, image: np.ndarray, geometry: ImageGeometry, mask: np.ndarray,
                 labels: Mapping[int, str], name: str, modality: str, series_uid: str,
                 window: tuple[float, float]) -> None:  # fmt: skip
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
