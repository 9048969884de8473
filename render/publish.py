"""Publish a pipeline's output as a render dataset: write the seed layout, then register it.

The seed layout (one folder): ``config.meta`` (JSON: name, image, mask, labels), ``image.mhd``/
``.raw``, optional ``mask.mhd``/``.raw``, and ``config_render.json`` with display hints (window,
label colours/opacity/visibility). Registration goes to a running render server over gRPC; when it
cannot be reached the folder stays on disk with a pending marker, the result says why, and the
dataset service registers it when it (re)starts (:func:`adopt_pending`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.render.durable import sync_files, write_durably
from clara_stream.render.state import default_label_color

from clara_stream.geometry import ImageGeometry

log = logging.getLogger(__name__)


PENDING = ".render-pending.json"


@dataclass
class PublishResult:
    folder: Path
    dataset_id: str
    registered: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "dataset_id": self.dataset_id,
            "registered": self.registered,
            "error": self.error,
        }


def write_seed(
    folder: Path,
    image: np.ndarray,
    geometry: ImageGeometry,
    mask: np.ndarray | None = None,
    labels: Mapping[int, str] | None = None,
    name: str = "dataset",
    window: tuple[float, float] | None = None,
) -> Path:
    """Write the seed layout into ``folder`` (created); returns the folder.

    Raises
    ------
    ValueError
        If the image is not 3D or the mask differs in shape or holds values outside 0..255.
    """
    import SimpleITK as sitk

    if image.ndim != 3:
        raise ValueError(f"write_seed: expected a (z, y, x) image; got shape {image.shape}")
    if mask is not None:
        if mask.shape != image.shape:
            raise ValueError(f"write_seed: expected a mask of shape {image.shape}; got {mask.shape}")
        if mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
            raise ValueError("write_seed: expected mask values in 0..255")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"image": image}
    if mask is not None:
        files["mask"] = mask.astype(np.uint8, copy=False)
    for key, arr in files.items():
        img = geometry.apply_to_sitk(sitk.GetImageFromArray(np.ascontiguousarray(arr)))
        sitk.WriteImage(img, str(folder / f"{key}.mhd"))
    values = sorted(int(v) for v in np.unique(files["mask"]) if v) if mask is not None else []
    label_doc = {
        str(v): {"name": (labels or {}).get(v, f"label {v}"), "color": list(default_label_color(v))} for v in values
    }
    meta = {
        "name": name,
        "image": "image.mhd",
        "labels": label_doc,
        "geometry": geometry.to_dict(),
        "shape_zyx": list(image.shape),
    }
    if mask is not None:
        meta["mask"] = "mask.mhd"
    hints: dict[str, Any] = {"labels": {k: {**v, "opacity": 1.0, "visible": True} for k, v in label_doc.items()}}
    if window is not None:
        hints["window"] = {"center": float(window[0]), "width": float(window[1])}
    (folder / "config_render.json").write_text(json.dumps(hints, indent=2))
    sync_files([folder / f"{k}.{ext}" for k in files for ext in ("mhd", "raw")] + [folder / "config_render.json"])
    write_durably(folder / "config.meta", json.dumps(meta, indent=2))  # last: a folder with it is complete
    return folder


def register(
    folder: Path, address: str, token: str = "", dataset_id: str = "", name: str = "", timeout_s: float = 30.0
) -> PublishResult:
    """Register ``folder`` with the render server at ``address``; never raises for a server
    problem (the result carries the error)."""
    import grpc
    from clara_stream.render.client import RenderClient

    retriable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    marker = pending_marker(Path(folder))
    try:
        with RenderClient(address, token=token, timeout_s=timeout_s) as client:
            info = client.register(str(Path(folder).resolve()), name=name, dataset_id=dataset_id)
    except grpc.RpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"
        if exc.code() in retriable:  # the service is down or restarting: it registers it when it starts
            doc = {"path": str(Path(folder).resolve()), "name": name, "dataset_id": dataset_id, "error": error}
            write_durably(marker, json.dumps(doc))
        return PublishResult(Path(folder), dataset_id, False, error)
    marker.unlink(missing_ok=True)
    return PublishResult(Path(folder), info.id, True)


def pending_marker(path: Path) -> Path:
    """Where a registration that could not reach the render service is kept for its next start:
    ``<folder>/.render-pending.json``, or ``.<file>.render-pending.json`` beside a slide file."""
    path = Path(path)
    return path / PENDING if path.is_dir() else path.parent / f".{path.name}{PENDING}"


def adopt_pending(registry: Any, max_depth: int = 3, max_dirs: int = 10_000) -> list[str]:
    """Register what publishers left pending under ``registry.roots`` (at most ``max_depth``
    folders deep, ``max_dirs`` folders visited; hidden folders skipped); returns the new ids.

    A marker whose registration fails now (bad data, a path out of the roots) is kept and logged,
    so nothing is lost and start-up goes on; it is removed once its dataset is registered.
    """
    ids, visited = [], 0
    for root in registry.roots:
        for here, dirs, files in os.walk(root):
            visited += 1
            depth = len(Path(here).relative_to(root).parts)
            dirs[:] = [] if depth >= max_depth or visited >= max_dirs else [d for d in dirs if not d.startswith(".")]
            for f in (f for f in files if f.endswith(PENDING)):
                marker = Path(here) / f
                try:
                    doc = json.loads(marker.read_text())
                    rec = registry.register(doc["path"], name=doc.get("name", ""), dataset_id=doc.get("dataset_id", ""))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("render: pending registration %s not adopted: %s", marker, exc)
                    continue
                marker.unlink(missing_ok=True)
                ids.append(rec.id)
    return ids
