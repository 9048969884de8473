"""Synthetic sample data the repo generates (no downloads): one module per kind.

Each module ``clara_stream.samples.<kind>`` exposes
``write_sample(out_dir: Path, *, seed: int = 0, **options) -> dict[str, Path]``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from clara_stream.errors import UserError

KINDS: dict[str, str] = {
    "video": "H.264 MP4 with moving objects of two classes + per-frame ground-truth boxes",
    "ct": "CT-like phantom DICOM series with organ labels",
    "slide": "synthetic H&E-like pyramidal TIFF slide (JPEG tiles, MPP 0.5) for digital_pathology",
    "chest": "chest CT phantom DICOM series (lungs, airways; ground-glass-like lesions unless lesions=false)",
    "pelvis_mr": "T2-like pelvis MR phantom DICOM series (oblique, anisotropic pixels) with a prostate label",
}


def write_sample(kind: str, out_dir: str | Path, *, seed: int = 0, **options: object) -> dict[str, Path]:
    """Generate sample ``kind`` into ``out_dir`` and return the paths written.

    Raises
    ------
    UserError
        For an unknown kind or an option the generator does not take.
    """
    if kind not in KINDS:
        raise UserError(f"sample: expected a kind in {sorted(KINDS)}; got {kind!r}",
                        hint="; ".join(f"{k}: {v}" for k, v in KINDS.items()))
    module = importlib.import_module(f"clara_stream.samples.{kind}")
    params = inspect.signature(module.write_sample).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        known = [k for k in params if k not in ("out_dir", "seed")]
        raise UserError(f"sample {kind}: expected options from {known}; got {unknown}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return module.write_sample(out, seed=seed, **options)
