"""MONAI Bundles as segmentation models: read a bundle's input spec into a ModelCard, or write one.

A bundle is a folder with ``configs/metadata.json`` (``network_data_format``: input channels,
output ``channel_def`` = label names), ``configs/inference.json`` (preprocessing transforms,
inferer, postprocessing) and ``models/model.ts`` and/or ``models/model.onnx``. The keys that decide
what the network sees are taken from the bundle, resolved with MONAI's own ``ConfigParser`` (so
``@ref`` and ``$expr`` values work) but without instantiating anything:

=============================  ============================================
bundle                         ModelCard
=============================  ============================================
``Spacingd.pixdim``            ``spacing_mm`` (x, y, z)
``ScaleIntensityRanged``       ``hu_window`` (a_min, a_max), ``scaled_range`` (b_min, b_max)
``Orientationd.axcodes``       must be RAS (what the operator feeds the network)
``SlidingWindowInferer``       ``roi_size`` (overlap and batch stay operator settings)
``outputs.pred.channel_def``   ``labels`` (channel index → name, 0 = background)
postprocessing                 softmax + argmax (sigmoid heads are refused)
=============================  ============================================
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["is_bundle", "card_from_bundle", "write_bundle"]

_FILES = {"torchscript": "models/model.ts", "onnx": "models/model.onnx"}


def is_bundle(path: str | Path) -> bool:
    p = Path(path)
    return (p / "configs" / "metadata.json").is_file() and (p / "configs" / "inference.json").is_file()


def _transforms(parser: Any, key: str) -> list[tuple[str, str]]:
    """(short target name, config id) of each transform under ``key`` (a Compose or a list)."""
    if key not in parser:
        return []
    node = parser[key]
    base = f"{key}#transforms" if isinstance(node, dict) and "transforms" in node else key
    items = parser[base] if isinstance(parser[base], list) else []
    return [(str(t.get("_target_", "")).rsplit(".", 1)[-1], f"{base}#{i}") for i, t in enumerate(items)
            if isinstance(t, dict)]  # fmt: skip


def _value(parser: Any, cid: str, key: str, default: Any = None) -> Any:
    try:
        return parser.get_parsed_content(f"{cid}#{key}", instantiate=False)
    except KeyError:
        return default


def card_from_bundle(path: str | Path) -> Any:
    """The ModelCard a bundle describes.

    Raises
    ------
    ValueError
        If a key the operator needs is missing or has a value it cannot honour (orientation other
        than RAS, a sigmoid head, no model file), naming the file and key.
    """
    from monai.bundle import ConfigParser

    from .segment import ModelCard

    root = Path(path)
    meta_path, inf_path = root / "configs" / "metadata.json", root / "configs" / "inference.json"
    meta = json.loads(meta_path.read_text())
    parser = ConfigParser()
    parser.read_config(str(inf_path))
    parser["bundle_root"] = str(root)
    where = f"[{inf_path}]"
    pre = _transforms(parser, "preprocessing")
    spacing = window = None
    scaled = (0.0, 1.0)
    for name, cid in pre:
        if name == "Spacingd":
            spacing = tuple(float(v) for v in _value(parser, cid, "pixdim"))
        elif name == "ScaleIntensityRanged":
            window = (float(_value(parser, cid, "a_min")), float(_value(parser, cid, "a_max")))
            scaled = (float(_value(parser, cid, "b_min", 0.0)), float(_value(parser, cid, "b_max", 1.0)))
            if not _value(parser, cid, "clip", False):
                raise ValueError(f"MONAI bundle: expected ScaleIntensityRanged clip=true; got clip=false {where}")
        elif name == "Orientationd" and str(_value(parser, cid, "axcodes", "RAS")).upper() != "RAS":
            raise ValueError(f"MONAI bundle: expected Orientationd axcodes 'RAS'; got "
                             f"{_value(parser, cid, 'axcodes')!r} {where}")  # fmt: skip
    if spacing is None or len(spacing) != 3:
        raise ValueError(f"MONAI bundle: expected a Spacingd transform with 3 pixdim values; got {spacing} {where}")
    if window is None:
        raise ValueError(f"MONAI bundle: expected a ScaleIntensityRanged transform (intensity window) {where}")
    if "inferer" not in parser:
        raise ValueError(f"MONAI bundle: expected an 'inferer' (SlidingWindowInferer) {where}")
    roi = _value(parser, "inferer", "roi_size")
    if roi is None or len(roi) != 3:
        raise ValueError(f"MONAI bundle: expected inferer roi_size of 3 values; got {roi} {where}")
    for name, cid in _transforms(parser, "postprocessing"):
        if name == "Activationsd" and _value(parser, cid, "sigmoid", False):
            raise ValueError(f"MONAI bundle: expected a softmax head; got Activationsd sigmoid=true {where}")
    fmt = meta.get("network_data_format", {})
    channels = fmt.get("inputs", {}).get("image", {}).get("num_channels", 1)
    if int(channels) != 1:
        raise ValueError(f"MONAI bundle: expected 1 input channel; got {channels} [{meta_path}]")
    channel_def = fmt.get("outputs", {}).get("pred", {}).get("channel_def", {})
    if not channel_def:
        raise ValueError(f"MONAI bundle: expected network_data_format.outputs.pred.channel_def [{meta_path}]")
    labels = {int(k): str(v) for k, v in channel_def.items() if int(k) != 0}
    files = {k: v for k, v in _FILES.items() if (root / v).is_file()}
    if not files:
        raise ValueError(f"MONAI bundle: expected models/model.ts or models/model.onnx; got neither [{root}]")
    return ModelCard(
        spacing_mm=spacing, hu_window=window, roi_size=tuple(int(v) for v in roi), labels=labels, files=files,
        metrics={"bundle": meta.get("name", root.name), "bundle_version": meta.get("version", "")},
        scaled_range=scaled,
    )  # fmt: skip


def write_bundle(model_dir: str | Path, out: str | Path, *, name: str = "clara_stream_segmentation",
                 version: str = "0.1.0") -> Path:  # fmt: skip
    """Package a clara-stream model folder (model.json + model.pt/.onnx) as a MONAI Bundle.

    The inference.json runs in MONAI as is (``python -m monai.bundle run --config_file ...``):
    LoadImaged → EnsureChannelFirstd → Orientationd RAS → Spacingd → ScaleIntensityRanged →
    SlidingWindowInferer over the TorchScript network → softmax → argmax.
    """
    from .segment import ModelCard

    src, root = Path(model_dir), Path(out)
    card = ModelCard.load(src)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    for key, rel in _FILES.items():
        if key in card.files:
            shutil.copyfile(src / card.files[key], root / rel)
    channel_def = {"0": "background", **{str(k): v for k, v in sorted(card.labels.items())}}
    meta = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "name": name, "version": version, "monai_version": _monai_version(), "changelog": {version: "exported"},
        "task": "3D segmentation", "description": f"exported by clara-stream from {src.name}",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
                                 "spatial_shape": list(card.roi_size), "dtype": "float32",
                                 "value_range": list(card.hu_window), "is_patch_data": True,
                                 "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": card.num_classes,
                                 "spatial_shape": list(card.roi_size), "dtype": "float32", "is_patch_data": True,
                                 "channel_def": channel_def}},
        },
    }  # fmt: skip
    lo, hi = card.hu_window
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "roi_size": list(card.roi_size),
        "network": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location=@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "image_only": False},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": list(card.spacing_mm), "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": lo, "a_max": hi, "b_min": 0.0,
             "b_max": 1.0, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@roi_size", "sw_batch_size": 1,
                    "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        ]},
    }  # fmt: skip
    (root / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    (root / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    return root


def _monai_version() -> str:
    import monai

    return monai.__version__
