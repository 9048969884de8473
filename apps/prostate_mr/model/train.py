"""Train the prostate model on pelvis MR phantoms; export TorchScript + ONNX and model.json.

Phantoms from :mod:`clara_stream.samples.pelvis_mr` (tilt, pixel size and anatomy vary by seed) go
through the deploy path's preprocessing (:func:`clara_stream.operators.volume.segment.prepare_input`:
resample to 1.5 x 1.5 x 3 mm, intensity window 0..1200 → [0, 1], MONAI RAS layout). The network is
the organ model's small MONAI UNet with 2 classes, trained on 64 x 64 x 24 crops with Dice + CE.
CPU only, a few minutes on 2 cores. (Real MR needs per-scan intensity normalisation first; the
phantom's scale is fixed.)

Usage::

    python -m clara_stream.apps.prostate_mr.model.train --out apps/prostate_mr/model --minutes 4
    python -m clara_stream.apps.prostate_mr.model.train --steps 1 --phantoms 1 --no-eval --out /tmp/m
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from clara_stream.apps.organ_segmentation.model.train import build_network, dice_per_label, export, random_crop
from clara_stream.operators.volume.resample import resample_to_grid
from clara_stream.operators.volume.segment import ModelCard, prepare_input, segment, to_monai
from clara_stream.operators.volume.training import fit

from clara_stream.geometry import ImageGeometry
from clara_stream.samples.pelvis_mr import LABELS, make_phantom

CROP = (64, 64, 24)  # MONAI order (X, Y, Z)
CARD = ModelCard(spacing_mm=(1.5, 1.5, 3.0), hu_window=(0.0, 1200.0), roi_size=CROP,
                 labels={k: v[0] for k, v in LABELS.items()},
                 files={"torchscript": "model.pt", "onnx": "model.onnx"})  # fmt: skip


def _phantom(seed: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, ImageGeometry]:
    if rng is None:
        img, lab, g = make_phantom(seed=seed)
    else:
        spacing = (rng.uniform(0.7, 1.2), rng.uniform(0.7, 1.2), rng.uniform(2.5, 3.6))
        shape = (int(72 / spacing[2]), int(158 / spacing[1]), int(158 / spacing[0]))
        img, lab, g = make_phantom(shape, seed=seed, spacing=spacing, noise=rng.uniform(8, 30),
                                   tilt_deg=rng.uniform(-18, 18))  # fmt: skip
        img *= rng.uniform(0.85, 1.15)
    return img, lab, ImageGeometry(g["origin"], g["spacing"], g["direction"])


def make_case(seed: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Model input (1, X, Y, Z) float32 and labels (X, Y, Z) int64 on the model grid."""
    img, lab, geom = _phantom(seed, rng)
    x, grid_shape, grid = prepare_input(img, geom, CARD)
    y = resample_to_grid(lab, geom, grid_shape, grid, order=0)
    return x[0], np.ascontiguousarray(to_monai(y, grid)).astype(np.int64)


def evaluate(net, seeds: list[int]) -> dict[str, float]:
    """Mean Dice on held-out phantoms (default geometry: oblique, anisotropic) via the deploy path."""
    import torch

    net.eval()
    scores = []
    for seed in seeds:
        img, lab, geom = _phantom(seed)
        with torch.inference_mode():
            scores.append(dice_per_label(segment(img, geom, CARD, net), lab, CARD)["prostate"])
    return {"prostate": round(float(np.mean(scores)), 4)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--phantoms", type=int, default=16, help="training phantoms (seeds 1000+)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-seeds", type=int, default=6, help="held-out phantoms (seeds 9000+)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [make_case(1000 + i, rng) for i in range(args.phantoms)]
    net, card = build_network(CARD.num_classes), ModelCard(**CARD.__dict__)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    t0 = time.monotonic()

    def batches():
        batch = [random_crop(*cases[int(rng.integers(len(cases)))], rng, CROP) for _ in range(args.batch)]
        x, y = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
        return torch.from_numpy(x), torch.from_numpy(y)[:, None]

    step = fit(net, loss_fn, batches, minutes=args.minutes, max_steps=args.steps, lr=args.lr, log_every=50)
    export(net, args.out, CROP)
    card.metrics = {"steps": step, "train_minutes": round((time.monotonic() - t0) / 60, 2),
                    "train_phantoms": args.phantoms}  # fmt: skip
    if not args.no_eval:
        card.metrics["dice_heldout"] = evaluate(net, [9000 + i for i in range(args.eval_seeds)])
        card.metrics["eval_phantoms"] = args.eval_seeds
        print("held-out Dice:", card.metrics["dice_heldout"], flush=True)
    card.save(args.out / "model.json")
    return card.metrics.get("dice_heldout", {})


if __name__ == "__main__":
    main()
