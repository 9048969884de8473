"""Train the organ segmentation model on CT phantoms, export TorchScript + ONNX, write model.json.

The phantoms come from :mod:`clara_stream.samples.ct` (5 organs); they go through the same
preprocessing as inference (:func:`clara_stream.operators.volume.segment.prepare_input`: resample to
3 mm, HU window, MONAI channel-first RAS layout), so train and deploy cannot drift apart.
The network is a small MONAI UNet (4 levels, 8–64 channels, ~124 k parameters) trained on random
64 x 64 x 48 crops (foreground-biased) with Dice + cross-entropy. CPU only; about 9 minutes on 2 cores.

Usage::

    python -m clara_stream.apps.organ_segmentation.model.train --out apps/organ_segmentation/model
    python -m clara_stream.apps.organ_segmentation.model.train --steps 1 --phantoms 1 --no-eval --out /tmp/m
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from clara_stream.operators.volume.segment import ModelCard, prepare_input, segment

from clara_stream.geometry import ImageGeometry
from clara_stream.samples.ct import LABELS, make_phantom

CROP = (64, 64, 48)  # MONAI order (X, Y, Z)
CARD = ModelCard(
    spacing_mm=(3.0, 3.0, 3.0),
    hu_window=(-200.0, 600.0),
    roi_size=CROP,
    labels={k: v[0] for k, v in LABELS.items()},
    files={"torchscript": "model.pt", "onnx": "model.onnx"},
)
SHAPES = [(48, 128, 128), (40, 112, 112), (60, 144, 144)]  # native grids the phantoms are drawn on


def build_network(num_classes: int = CARD.num_classes):
    """The network (also used by tests to rebuild it)."""
    from monai.networks.nets import UNet

    return UNet(3, 1, num_classes, channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=0)


def make_case(
    seed: int, rng: np.random.Generator, card: ModelCard = CARD, keep: dict[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One phantom as model input (1, X, Y, Z) float32 and labels (X, Y, Z) int64 on the model grid."""
    from clara_stream.operators.volume.resample import resample_to_grid

    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    hu, lab, g = make_phantom(shape, seed=seed, noise_hu=float(rng.uniform(5, 25)))
    geom = ImageGeometry(g["origin"], g["spacing"], g["direction"])
    x, grid_shape, grid = prepare_input(hu, geom, card)
    if keep is not None:  # a model for a subset of organs: phantom value -> model value, others background
        lab = _remap(lab, keep)
    y = resample_to_grid(lab, geom, grid_shape, grid, order=0)
    from clara_stream.operators.volume.segment import to_monai

    return x[0], np.ascontiguousarray(to_monai(y, grid)).astype(np.int64)


def _remap(lab: np.ndarray, keep: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in keep.items():
        lut[src] = dst
    return lut[lab]


def random_crop(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                crop: tuple[int, int, int] = CROP) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    CROP = crop  # noqa: N806 (the other apps' models train on their own ROI)
    pad = [(0, 0)] + [(0, max(0, c - s)) for c, s in zip(CROP, y.shape, strict=True)]
    x = np.pad(x, pad, constant_values=0.0)
    y = np.pad(y, pad[1:], constant_values=0)
    if rng.random() < 0.67:  # centre on a random organ voxel
        fg = np.argwhere(y > 0)
        c = fg[int(rng.integers(len(fg)))]
        start = [int(np.clip(ci - cs // 2, 0, s - cs)) for ci, cs, s in zip(c, CROP, y.shape, strict=True)]
    else:
        start = [int(rng.integers(0, s - cs + 1)) for cs, s in zip(CROP, y.shape, strict=True)]
    sl = tuple(slice(s, s + c) for s, c in zip(start, CROP, strict=True))
    return x[(slice(None), *sl)], y[sl]


def dice_per_label(pred: np.ndarray, truth: np.ndarray, card: ModelCard = CARD) -> dict[str, float]:
    out = {}
    for value, name in card.labels.items():
        p, t = pred == value, truth == value
        denom = int(p.sum() + t.sum())
        out[name] = 1.0 if denom == 0 else float(2 * (p & t).sum() / denom)
    return out


def evaluate(net, seeds: list[int], card: ModelCard = CARD, keep: dict[int, int] | None = None) -> dict[str, float]:
    """Mean Dice per organ on held-out phantoms, at their original resolution, via the deploy path."""
    import torch

    net.eval()
    scores: dict[str, list[float]] = {n: [] for n in card.labels.values()}
    for seed in seeds:
        hu, lab, g = make_phantom((48, 128, 128), seed=seed)
        geom = ImageGeometry(g["origin"], g["spacing"], g["direction"])
        if keep is not None:
            lab = _remap(lab, keep)
        with torch.inference_mode():
            pred = segment(hu, geom, card, net)
        for k, v in dice_per_label(pred, lab, card).items():
            scores[k].append(v)
    return {k: round(float(np.mean(v)), 4) for k, v in scores.items()}


def export(net, out: Path, crop: tuple[int, int, int] = CROP) -> None:
    import torch

    net.eval()
    example = torch.zeros(1, 1, *crop)
    traced = torch.jit.trace(net, example)
    traced.save(str(out / CARD.files["torchscript"]))
    torch.onnx.export(
        net, (example,), str(out / CARD.files["onnx"]), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for model.pt, model.onnx, model.json")
    ap.add_argument("--minutes", type=float, default=9.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=100_000, help="upper bound on optimiser steps")
    ap.add_argument("--phantoms", type=int, default=24, help="training phantoms (seeds 1000+)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-seeds", type=int, default=6, help="held-out phantoms (seeds 9000+)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 was fastest on the shared 2-core box)")
    ap.add_argument("--labels", default="", help="train on a subset of phantom labels, e.g. 3,4 (kidneys)")
    ap.add_argument("--init", type=Path, default=None, help="TorchScript weights to continue from (model.pt)")
    args = ap.parse_args(argv)

    import torch
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    args.out.mkdir(parents=True, exist_ok=True)
    keep = None
    card = ModelCard(**{**CARD.__dict__})
    if args.labels:
        values = [int(v) for v in args.labels.split(",")]
        keep = {v: i + 1 for i, v in enumerate(values)}
        card.labels = {i + 1: LABELS[v][0] for i, v in enumerate(values)}
    cases = [make_case(1000 + i, rng, card, keep) for i in range(args.phantoms)]
    net = build_network(card.num_classes)
    if args.init is not None:  # continue training: the traced module keeps the parameter names
        own = net.state_dict()  # a subset model keeps the features; its output layer (other shape) starts fresh
        init = {k: v for k, v in torch.jit.load(str(args.init)).state_dict().items() if own[k].shape == v.shape}
        net.load_state_dict(init, strict=False)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    t0, step, deadline = time.monotonic(), 0, time.monotonic() + 60 * args.minutes
    while step < args.steps and time.monotonic() < deadline:
        net.train()
        batch = [random_crop(*cases[int(rng.integers(len(cases)))], rng) for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        x = x + 0.03 * torch.randn(()) * (x > 0)  # small intensity shift
        y = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        frac = (time.monotonic() - t0) / (60 * args.minutes)
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, frac)))
        if step % 50 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} t {time.monotonic() - t0:.0f}s", flush=True)
    export(net, args.out)
    card.metrics = {"steps": step, "train_minutes": round((time.monotonic() - t0) / 60, 2),
                    "train_phantoms": args.phantoms, "init": str(args.init) if args.init else None}  # fmt: skip
    if not args.no_eval:
        dice = evaluate(net, [9000 + i for i in range(args.eval_seeds)], card, keep)
        card.metrics["dice_heldout"] = dice
        card.metrics["eval_phantoms"] = args.eval_seeds
        print("held-out Dice:", dice, flush=True)
    card.save(args.out / "model.json")
    return card.metrics.get("dice_heldout", {})


if __name__ == "__main__":
    main()
