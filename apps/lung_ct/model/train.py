"""Train the lung CT models on chest phantoms: lung segmentation, then the COVID-like classifier.

Phantoms from :mod:`clara_stream.samples.chest` (half with ground-glass-like lesions).
1. Segmentation: the organ model's small MONAI UNet, 2 classes, at 4 x 4 x 6 mm, HU window
   -1000..200, 64 x 64 x 32 crops, Dice + CE, through the deploy path's preprocessing.
2. Classifier: :func:`clara_stream.operators.volume.classify.build_classifier` on the lung region
   (:func:`~clara_stream.operators.volume.classify.prepare_region`), trained on ground-truth masks
   with random erosion/dilation, evaluated on held-out phantoms through the *predicted* masks.
Held-out lung Dice and classifier AUC go into the cards' ``metrics``. CPU only, minutes.

Usage::

    python -m clara_stream.apps.lung_ct.model.train --out apps/lung_ct/model
    python -m clara_stream.apps.lung_ct.model.train --steps 1 --phantoms 2 --no-eval --out /tmp/m
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from clara_stream.apps.organ_segmentation.model.train import build_network, dice_per_label, export, random_crop
from clara_stream.operators.volume.classify import ClassifierCard, build_classifier, classify, prepare_region
from clara_stream.operators.volume.resample import resample_to_grid
from clara_stream.operators.volume.segment import ModelCard, prepare_input, segment, to_monai
from clara_stream.operators.volume.training import fit

from clara_stream.geometry import ImageGeometry
from clara_stream.samples.chest import LABELS, make_phantom

CROP = (64, 64, 32)
SEG = ModelCard(spacing_mm=(4.0, 4.0, 6.0), hu_window=(-1000.0, 200.0), roi_size=CROP,
                labels={k: v[0] for k, v in LABELS.items()},
                files={"torchscript": "model.pt", "onnx": "model.onnx"})  # fmt: skip
CLS = ClassifierCard(files={"onnx": "classifier.onnx"})


def phantom(seed: int) -> tuple[np.ndarray, np.ndarray, ImageGeometry, bool]:
    lesions = seed % 2 == 1
    hu, lab, g = make_phantom(seed=seed, lesions=lesions)
    return hu, lab, ImageGeometry(g["origin"], g["spacing"], g["direction"]), lesions


def auc(scores: list[float], truth: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney: P(score of a positive > score of a negative), ties 1/2)."""
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder; segmentation/ and classifier/ inside")
    ap.add_argument("--minutes", type=float, default=2.5, help="budget per model")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--phantoms", type=int, default=24, help="training phantoms (seeds 1000+, odd: lesions)")
    ap.add_argument("--eval-seeds", type=int, default=20, help="held-out phantoms (seeds 9000+)")
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    seg_dir, cls_dir = args.out / "segmentation", args.out / "classifier"
    seg_dir.mkdir(parents=True, exist_ok=True)
    cls_dir.mkdir(parents=True, exist_ok=True)
    cases, regions = [], []
    for i in range(args.phantoms):
        hu, lab, geom, lesions = phantom(1000 + i)
        x, grid_shape, grid = prepare_input(hu, geom, SEG)
        y = to_monai(resample_to_grid(lab, geom, grid_shape, grid, order=0), grid)
        cases.append((x[0], np.ascontiguousarray(y).astype(np.int64)))
        regions.append((hu, lab, geom, int(lesions)))

    def seg_batch():
        b = [random_crop(*cases[int(rng.integers(len(cases)))], rng, CROP) for _ in range(2)]
        return torch.from_numpy(np.stack([c[0] for c in b])), torch.from_numpy(np.stack([c[1] for c in b]))[:, None]

    seg_net = build_network(SEG.num_classes)
    seg_steps = fit(seg_net, DiceCELoss(to_onehot_y=True, softmax=True), seg_batch, minutes=args.minutes,
                    max_steps=args.steps, lr=3e-3)
    export(seg_net, seg_dir, CROP)

    from scipy import ndimage

    def cls_batch():
        xs, ys = [], []
        for _ in range(4):
            hu, lab, geom, y = regions[int(rng.integers(len(regions)))]
            it = int(rng.integers(0, 3))
            morph = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
            m = morph(lab, iterations=it) if it else lab
            xs.append(prepare_region(hu, m if m.any() else lab, geom, CLS)[0])
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys)

    cls_net = build_classifier(len(CLS.classes))
    cls_steps = fit(cls_net, torch.nn.CrossEntropyLoss(), cls_batch, minutes=args.minutes, max_steps=args.steps,
                    lr=2e-3)
    cls_net.eval()
    torch.onnx.export(cls_net, (torch.zeros(1, 1, *CLS.input_size),), str(cls_dir / CLS.files["onnx"]),
                      input_names=["region"], output_names=["logits"], opset_version=17, dynamo=False)  # fmt: skip
    seg_card, cls_card = ModelCard(**SEG.__dict__), ClassifierCard(**CLS.__dict__)
    seg_card.metrics = {"steps": seg_steps, "train_phantoms": args.phantoms}
    cls_card.metrics = {"steps": cls_steps, "train_phantoms": args.phantoms}
    if not args.no_eval:
        dice, scores, truth = [], [], []
        with torch.inference_mode():
            for i in range(args.eval_seeds):
                hu, lab, geom, lesions = phantom(9000 + i)
                pred = segment(hu, geom, SEG, seg_net)
                dice.append(dice_per_label(pred, lab, SEG)["lung"])
                probs = classify(hu, pred, geom, CLS, lambda x: cls_net(torch.from_numpy(x)).numpy())
                scores.append(probs[CLS.classes[1]])
                truth.append(lesions)
        seg_card.metrics.update(dice_heldout={"lung": round(float(np.mean(dice)), 4)}, eval_phantoms=args.eval_seeds)
        acc = float(np.mean([(s > 0.5) == t for s, t in zip(scores, truth, strict=True)]))
        cls_card.metrics.update(auc_heldout=round(auc(scores, truth), 4), accuracy_heldout=round(acc, 4),
                                eval_phantoms=args.eval_seeds, eval_masks="predicted by segmentation")  # fmt: skip
        print("held-out:", seg_card.metrics, cls_card.metrics, flush=True)
    seg_card.save(seg_dir / "model.json")
    cls_card.save(cls_dir / "classifier.json")
    return {**seg_card.metrics.get("dice_heldout", {}), "auc": cls_card.metrics.get("auc_heldout", float("nan"))}


if __name__ == "__main__":
    main()
