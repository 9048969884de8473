"""Volume pipeline benchmark: DICOM series → volume against SimpleITK in the same run, and
organ_segmentation end to end with a per-stage breakdown.

Anchors (measured here, same run, same warm page cache):
  1. a generated 200 x 512² uncompressed CT series (shuffled file names) → volume:
     ours (header scan + selection + series_to_volume) vs SimpleITK ImageSeriesReader (GDCM file
     discovery + Execute); the ratio is SimpleITK time / our time (target >= 3). Also printed: the
     CPU-time ratio (less sensitive to other jobs on the box), each reader's CPU seconds per wall
     second (the cores it had) and the load: the wall ratio passes the CPU-time ratio only by the
     cores one reader gets beyond the other.
  2. the real JPEG 2000 CT (TotalSegmentator, 20 x 512²) the same way (target >= 1.8). Ours decodes
     slices on a 2-thread pool; SimpleITK's JPEG 2000 read is multi-threaded too (1.35-1.67 CPU s
     per wall s measured on the 2-core box). Both decode with OpenJPEG; no decoder installable here
     is markedly cheaper (benchmarks/j2k_decoders.py), so the target is out of reach on this CPU.
  Before timing, both readers are checked to read the same files in the same order, voxel-equal.
  3. organ_segmentation per study on the phantom (48 x 128²): stages timed through the same library
     calls the operators make, plus the whole app through the runtime.

Usage: python benchmarks/volume_pipeline.py [--repeats 5] [--slices 200] [--data DIR] [--json OUT]
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

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
J2K = SHARED / "totalsegmentator_ct_dicom/tests/reference_files/example_ct_dicom"


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p90_ms": round(float(np.percentile(a, 90)), 1),
            "max_ms": round(float(a.max()), 1), "n": len(values)}  # fmt: skip


def ours(folder: Path) -> np.ndarray:
    from clara_stream.operators.dicom.selector import select_series
    from clara_stream.operators.dicom.series import series_to_volume
    from clara_stream.operators.dicom.study import scan_study

    sel = select_series(scan_study(folder), None, sort_by_sop_instance_count=True)
    return series_to_volume(sel.selected[0][1], min_slices=2).array


def simpleitk(folder: Path):
    """The anchor: GDCM file discovery and sorting, then the series read (a SimpleITK image)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def same_files(folder: Path) -> None:
    """Both readers read the same files in the same slice order (so the timings compare like for like)."""
    import SimpleITK as sitk
    from clara_stream.operators.dicom.selector import select_series
    from clara_stream.operators.dicom.series import series_to_volume
    from clara_stream.operators.dicom.study import scan_study

    sel = select_series(scan_study(folder), None, sort_by_sop_instance_count=True)
    mine = [str(i.path.resolve()) for i in series_to_volume(sel.selected[0][1], min_slices=2).source.instances]
    reader = sitk.ImageSeriesReader()
    theirs = [str(Path(f).resolve()) for f in reader.GetGDCMSeriesFileNames(str(folder))]
    if mine != theirs and mine != theirs[::-1]:
        raise SystemExit(f"volume_pipeline: expected the same {len(theirs)} files as SimpleITK in slice order; "
                         f"got {len(mine)}, {len(set(mine) & set(theirs))} shared, in {folder}")  # fmt: skip


def compare(folder: Path, repeats: int) -> dict:
    """Alternate the two readers ``repeats`` times (after one warm-up each); check equal voxels."""
    import SimpleITK as sitk

    a, b = ours(folder), sitk.GetArrayFromImage(simpleitk(folder))
    if not np.array_equal(a, b):
        raise SystemExit(f"volume_pipeline: expected equal voxels to SimpleITK; got a difference in {folder}")
    same_files(folder)
    t_ours, t_sitk, c_ours, c_sitk = [], [], [], []
    for _ in range(repeats):
        for fn, acc, cpu in ((ours, t_ours, c_ours), (simpleitk, t_sitk, c_sitk)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(folder)
            acc.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # this process's CPU seconds (all its threads)
    ratio = statistics.median(t_sitk) / statistics.median(t_ours)
    ratios = [s / o for s, o in zip(t_sitk, t_ours, strict=True)]
    return {"slices": int(a.shape[0]), "shape": list(a.shape), "ours": pct(t_ours), "simpleitk": pct(t_sitk),
            "ratio_median": round(ratio, 2), "ratio_min": round(min(ratios), 2), "ratio_max": round(max(ratios), 2),
            "ours_slices_per_s": round(a.shape[0] / statistics.median(t_ours), 1),
            "cpu_ratio_median": round(statistics.median(c_sitk) / statistics.median(c_ours), 2),
            "ours_cpu_per_wall_median": _per_wall(c_ours, t_ours),
            "simpleitk_cpu_per_wall_median": _per_wall(c_sitk, t_sitk),
            "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def _per_wall(cpu: list[float], wall: list[float]) -> float:
    """Median CPU seconds per wall second (about the number of cores a reader had)."""
    return round(statistics.median(c / t for c, t in zip(cpu, wall, strict=True)), 2)


def stage_breakdown(dicom: Path, out: Path, repeats: int) -> dict:
    """organ_segmentation's stages via the operators' library calls, then the whole app via the runtime."""
    import torch
    from clara_stream.operators.dicom.rtstruct import write_rtstruct
    from clara_stream.operators.dicom.seg import segment_specs, write_dicom_seg
    from clara_stream.operators.dicom.selector import select_series
    from clara_stream.operators.dicom.series import series_to_volume
    from clara_stream.operators.dicom.study import scan_study
    from clara_stream.operators.volume.mhd import write_mhd
    from clara_stream.operators.volume.render_dataset import write_render_dataset
    from clara_stream.operators.volume.segment import ModelCard, segment

    from clara_stream.inference import create_backend
    from clara_stream.runtime import load_app
    from clara_stream.samples.ct import LABELS

    app_dir = Path(__file__).resolve().parents[1] / "apps" / "organ_segmentation"
    card = ModelCard.load(app_dir / "model")
    backend = create_backend("onnxruntime", app_dir / "model" / card.files["onnx"], threads=2)
    predict: Callable = lambda x: torch.from_numpy(next(iter(backend.infer(x.numpy()).values())))  # noqa: E731
    specs = segment_specs({k: {"label": n, "code": c, "meaning": m} for k, (n, c, m) in LABELS.items()})
    eq = dict(manufacturer="bench", manufacturer_model_name="bench", software_versions="0", device_serial_number="0")
    root = "1.2.826.0.1.3680043.8.498."
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable, *args, **kw):
        t0 = time.perf_counter()
        r = fn(*args, **kw)
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return r

    names = {k: v[0] for k, v in LABELS.items()}
    for _ in range(repeats):
        index = timed("scan", scan_study, dicom)
        sel = timed("select", select_series, index, None)
        vol = timed("volume", series_to_volume, sel.selected[0][1])
        labels = timed("inference", segment, vol.array, vol.geometry, card, predict)
        g, h = vol.geometry, vol.source.headers
        timed("seg", write_dicom_seg, out / "seg.dcm", labels, g, h, specs, uid_root=root, **eq)
        timed("rtstruct", write_rtstruct, out / "rt.dcm", labels, g, h, specs, uid_root=root, manufacturer="bench")
        timed("mhd", write_mhd, out / "mask.mhd", labels, g)
        timed("render", write_render_dataset, out / "render", vol.array, g, labels, names)
    e2e = []
    for i in range(repeats):
        app = load_app("organ_segmentation", input=dicom, output=out / f"app{i}")
        t0 = time.perf_counter()
        app.run()
        e2e.append(time.perf_counter() - t0)
    stages = {k: pct(v) for k, v in times.items()}
    total = sum(statistics.median(v) for v in times.values())
    share = {k: round(100 * statistics.median(v) / total, 1) for k, v in times.items()}
    return {"stages": stages, "stage_share_pct": share, "app_end_to_end": pct(e2e),
            "sum_of_stage_medians_ms": round(total * 1e3, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--data", type=Path, default=None, help="where to keep the generated series (default: temp)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args(argv)
    from clara_stream.samples.ct import write_sample

    tmp = Path(tempfile.mkdtemp(prefix="volbench-"))
    data = args.data or tmp
    big = data / f"ct_{args.slices}x512"
    if not (big / "dicom").is_dir():
        write_sample(big, shape=(args.slices, 512, 512), shuffle_names=True)
    result: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                    "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats}  # fmt: skip
    result["uncompressed_512"] = compare(big / "dicom", args.repeats)
    print("uncompressed", json.dumps(result["uncompressed_512"]), flush=True)
    if J2K.is_dir():
        result["j2k_real"] = compare(J2K, args.repeats)
        print("j2k", json.dumps(result["j2k_real"]), flush=True)
    if not args.skip_e2e:
        small = write_sample(tmp / "phantom")["dicom"]
        result["organ_segmentation"] = stage_breakdown(small, tmp / "e2e", max(1, args.repeats // 2 + 1))
        print("organ_segmentation", json.dumps(result["organ_segmentation"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "volume_pipeline", "rows": rows(result), "details": result},
                                        indent=2) + "\n")  # fmt: skip
    return result


def rows(result: dict) -> list[dict]:
    """The run_all protocol's rows: our median against the anchor's median, same run."""
    out = []
    for key, case in (("uncompressed_512", "generated CT {n} x 512² uncompressed → volume"),
                      ("j2k_real", "real CT {n} x 512² JPEG 2000 → volume")):  # fmt: skip
        r = result.get(key)
        if r:
            metric = f"ms p50 of {r['ours']['n']} (p90 {r['ours']['p90_ms']})"
            out.append({"case": case.format(n=r["slices"]), "metric": metric, "value": r["ours"]["p50_ms"],
                        "anchor": "SimpleITK ImageSeriesReader", "anchor_value": r["simpleitk"]["p50_ms"],
                        "ratio": r["ratio_median"]})  # fmt: skip
    e2e = result.get("organ_segmentation")
    if e2e:
        total = sum(v["p50_ms"] for v in e2e["stages"].values())
        out.append({"case": "organ_segmentation 48 x 128² phantom, app end to end", "metric": "ms p50",
                    "value": e2e["app_end_to_end"]["p50_ms"], "anchor": "sum of its library stages",
                    "anchor_value": round(total, 1),
                    "ratio": round(e2e["app_end_to_end"]["p50_ms"] / total, 2)})  # fmt: skip
    return out


if __name__ == "__main__":
    main()
