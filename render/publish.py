"""Publish a pipeline's output as a render dataset: write the seed layout, then register it.

The seed layout (one folder): ``config.meta`` (JSON: name, image, mask, labels), ``image.mhd``/
``.raw``, optional ``mask.mhd``/``.raw``, and ``config_render.json`` with display hints (window,
label colours/opacity/visibility). Registration goes to a running render server over gRPC; when it
cannot be reached the folder stays on disk (nothing lost) and the result says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.render.durable import sync_files, write_durably
from clara_stream.render.state import default_label_color

from clara_stream.geometry import ImageGeometry


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

    try:
        with RenderClient(address, token=token, timeout_s=timeout_s) as client:
            info = client.register(str(Path(folder).resolve()), name=name, dataset_id=dataset_id)
        return PublishResult(Path(folder), info.id, True)
    except grpc.RpcError as exc:
        return PublishResult(Path(folder), dataset_id, False, f"{exc.code().name}: {exc.details()}")
