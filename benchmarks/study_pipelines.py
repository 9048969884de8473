"""prostate_mr and lung_ct per study: a stage breakdown (as organ_segmentation's) plus the whole app.

Each stage is timed through the same library call its operator makes (scan, select, volume,
inference, writers, classifier); then the app runs end to end through the runtime, interleaved
with the stage runs so both see the same load. Printed: per-stage p50/p90, each stage's share, and
the anchor ratio app / sum of stage medians (what the graph adds on top of the work; ≈ 1 is ideal).

Usage: python benchmarks/study_pipelines.py [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

APPS = Path(__file__).resolve().parents[1] / "apps"
ROOT = "1.2.826.0.1.3680043.8.498."


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p90_ms": round(float(np.percentile(a, 90)), 1),
            "n": len(values)}  # fmt: skip


def _predictor(model_dir: Path) -> tuple[Callable, object]:
    import torch
    from clara_stream.operators.volume.segment import ModelCard

    from clara_stream.inference import create_backend

    card = ModelCard.load(model_dir)
    backend = create_backend("onnxruntime", model_dir / card.files["onnx"], threads=2)
    return (lambda x: torch.from_numpy(next(iter(backend.infer(x.numpy()).values())))), card


def stages(name: str, dicom: Path, out: Path, timed: Callable) -> None:
    """One pass of ``name``'s stages through the library calls."""
    from clara_stream.operators.dicom.mask_series import write_mask_series
    from clara_stream.operators.dicom.rtstruct import write_rtstruct
    from clara_stream.operators.dicom.seg import segment_specs, write_dicom_seg
    from clara_stream.operators.dicom.selector import select_series
    from clara_stream.operators.dicom.series import series_to_volume
    from clara_stream.operators.dicom.study import scan_study
    from clara_stream.operators.volume.classify import ClassifierCard, classify
    from clara_stream.operators.volume.mhd import write_mhd
    from clara_stream.operators.volume.render_dataset import write_render_dataset
    from clara_stream.operators.volume.segment import segment

    from clara_stream.inference import create_backend

    seg_dir = APPS / name / "model" / ("segmentation" if name == "lung_ct" else "")
    predict, card = _predictor(seg_dir)
    specs = segment_specs({k: {"label": v, "code": "39607008" if name == "lung_ct" else "41216001", "meaning": v}
                           for k, v in card.labels.items()})  # fmt: skip
    index = timed("scan", scan_study, dicom)
    sel = timed("select", select_series, index, None)
    vol = timed("volume", series_to_volume, sel.selected[0][1])
    labels = timed("inference", segment, vol.array, vol.geometry, card, predict)
    g, h = vol.geometry, vol.source.headers
    if name == "prostate_mr":
        timed("rtstruct", write_rtstruct, out / "rt.dcm", labels, g, h, specs, uid_root=ROOT, manufacturer="bench")
        timed("mask_series", write_mask_series, out / "mask_series", labels, g, h, uid_root=ROOT, manufacturer="bench")
        timed("render", write_render_dataset, out / "render", vol.array, g, labels, card.labels)
    else:
        eq = dict(manufacturer="bench", manufacturer_model_name="bench", software_versions="0",
                  device_serial_number="0")
        timed("seg", write_dicom_seg, out / "seg.dcm", labels, g, h, specs, uid_root=ROOT, **eq)
        timed("mhd", write_mhd, out / "mask.mhd", labels, g)
        cdir = APPS / "lung_ct" / "model" / "classifier"
        ccard = ClassifierCard.load(cdir)
        backend = create_backend("onnxruntime", cdir / ccard.files["onnx"], threads=2)
        timed("classifier", classify, vol.array, labels, g, ccard, lambda x: next(iter(backend.infer(x).values())))


def bench(name: str, dicom: Path, out: Path, repeats: int) -> dict:
    from clara_stream.runtime import load_app

    times: dict[str, list[float]] = {}

    def timed(stage: str, fn: Callable, *args, **kw):
        t0 = time.perf_counter()
        r = fn(*args, **kw)
        times.setdefault(stage, []).append(time.perf_counter() - t0)
        return r

    e2e, ratios = [], []
    for i in range(repeats):  # interleaved: stages, then the app, per repeat
        before = {k: len(v) for k, v in times.items()}
        stages(name, dicom, out / f"stages{i}", timed)
        step_sum = sum(v[-1] for k, v in times.items() if len(v) > before.get(k, 0))
        app = load_app(name, input=dicom, output=out / f"app{i}")
        t0 = time.perf_counter()
        app.run()
        e2e.append(time.perf_counter() - t0)
        ratios.append(e2e[-1] / step_sum)
    total = sum(statistics.median(v) for v in times.values())
    return {"stages": {k: pct(v) for k, v in times.items()},
            "stage_share_pct": {k: round(100 * statistics.median(v) / total, 1) for k, v in times.items()},
            "app_end_to_end": pct(e2e), "sum_of_stage_medians_ms": round(total * 1e3, 1),
            "app_over_stages": {"median": round(statistics.median(ratios), 2), "min": round(min(ratios), 2),
                                "max": round(max(ratios), 2)}}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from clara_stream.samples import write_sample

    print(f"machine {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"prostate_mr": write_sample("pelvis_mr", tmp / "pelvis", seed=5)["dicom"],
                 "lung_ct": write_sample("chest", tmp / "chest", seed=7)["dicom"]}  # fmt: skip
        for name, dicom in cases.items():
            bench(name, dicom, tmp / f"{name}-warm", 1)  # warm-up: imports, model load, page cache
            result[name] = bench(name, dicom, tmp / name, args.repeats)
            print(name, json.dumps(result[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
