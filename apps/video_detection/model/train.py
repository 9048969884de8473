"""Train the 2-class video detector on synthetic frames and export it to ONNX.

A tiny anchor-free detector in the CenterNet/FCOS family: a stride-8 convolutional backbone
with a stride-16 context branch, a per-class centre heatmap and per-cell (left, top, right,
bottom) distances. The ONNX graph decodes itself, so any runtime gets plain tensors:

* input ``images``: (N, 3, 192, 320) float32 RGB in [0, 1], letterboxed (pad 114/255);
* output ``boxes``: (N, A, 4) float32 model-input pixels (left, top, right, bottom), A = 24 × 40;
* output ``scores``: (N, A, 2) float32 class probabilities, already peak-filtered (3 × 3 max).

Frames come from :mod:`clara_stream.samples.video` (the same generator as the demo and test
videos, different seeds), with JPEG, blur and colour jitter so the model tolerates H.264.

Usage::

    python apps/video_detection/model/train.py --steps 1500 --out apps/video_detection/model
    python apps/video_detection/model/train.py --steps 1 --scenes 2 --out /tmp/x   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from clara_stream.operators.video.preprocess import letterbox_image
from torch import nn
from torch.nn import functional as F

from clara_stream.samples.video import CLASSES, render_scene

MODEL_W, MODEL_H, STRIDE = 320, 192, 8
GRID_W, GRID_H = MODEL_W // STRIDE, MODEL_H // STRIDE
FIRST_TRAIN_SEED = 10_000  # test and demo videos use seeds below this


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyDetector(nn.Module):
    """Backbone + heads; :meth:`forward` returns raw maps, :class:`Exported` adds decoding."""

    def __init__(self, classes: int = 2, width: int = 16):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_cbr(3, w // 2, 2), _cbr(w // 2, w, 2))
        self.s8 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w), _cbr(2 * w, 2 * w, dilation=2))
        self.s16 = nn.Sequential(_cbr(2 * w, 3 * w, 2), _cbr(3 * w, 3 * w), _cbr(3 * w, 3 * w, dilation=2))
        self.lateral = nn.Conv2d(3 * w, 2 * w, 1)
        self.head = _cbr(2 * w, 2 * w)
        self.heat = nn.Conv2d(2 * w, classes, 1)
        self.box = nn.Conv2d(2 * w, 4, 1)
        nn.init.constant_(self.heat.bias, -2.2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8 = self.s8(self.stem(x - 0.5))
        f16 = self.s16(f8)
        f = self.head(f8 + F.interpolate(self.lateral(f16), scale_factor=2.0, mode="nearest"))
        return self.heat(f), self.box(f)


class Exported(nn.Module):
    """Decoding wrapper: dense boxes in model-input pixels and peak-filtered class scores."""

    def __init__(self, net: TinyDetector):
        super().__init__()
        self.net = net
        ys, xs = torch.meshgrid(torch.arange(GRID_H), torch.arange(GRID_W), indexing="ij")
        centres = torch.stack([(xs + 0.5) * STRIDE, (ys + 0.5) * STRIDE], -1).reshape(1, -1, 2).float()
        self.register_buffer("centres", centres)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, box = self.net(images)
        prob = torch.sigmoid(heat)
        prob = prob * (F.max_pool2d(prob, 3, 1, 1) == prob).float()
        cells = GRID_H * GRID_W  # constants, so the ONNX outputs have static (A, 4) and (A, C) shapes
        scores = prob.reshape(-1, prob.shape[1], cells).transpose(1, 2)
        dist = torch.exp(box.clamp(max=6.0)).reshape(-1, 4, cells).transpose(1, 2) * STRIDE
        boxes = torch.cat([self.centres - dist[..., :2], self.centres + dist[..., 2:]], -1)
        return boxes, scores


def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    x = img.astype(np.float32)
    x = x * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20) + rng.normal(0, 6, 3)
    img = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.7:
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        img = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    return img


def make_dataset(scenes: int, per_scene: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Letterboxed uint8 images (N, H, W, 3) and per image an (M, 5) [cls, l, t, r, b] array (model px)."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for s in range(scenes):
        size = [(640, 360), (480, 270), (800, 450), (640, 480)][s % 4]
        frames = 60
        keep = set(rng.choice(frames, per_scene, replace=False).tolist())
        objects = (1, 4) if s % 3 else (0, 3)
        for i, (rgb, boxes) in enumerate(
            render_scene(
                seed=FIRST_TRAIN_SEED + seed * 100_000 + s,
                width=size[0],
                height=size[1],
                frames=frames,
                objects=objects,
            )
        ):
            if i not in keep:
                continue
            flip = rng.random() < 0.5
            if flip:
                rgb = rgb[:, ::-1].copy()
            img, lb = letterbox_image(_augment(rgb, rng), (MODEL_W, MODEL_H))
            t = np.zeros((len(boxes), 5), np.float32)
            for k, (c, b) in enumerate(boxes):
                bb = np.array([b], np.float32)
                if flip:
                    bb[:, [0, 2]] = size[0] - bb[:, [2, 0]]
                t[k, 0], t[k, 1:] = c, lb.to_model(bb)[0]
            images.append(img)
            targets.append(t)
    return np.stack(images), targets


def encode_targets(targets: list[np.ndarray], classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterNet-style heatmaps (N, C, GH, GW), log-distance targets (N, 4, GH, GW) and weights (N, GH, GW)."""
    n = len(targets)
    heat = np.zeros((n, classes, GRID_H, GRID_W), np.float32)
    dist = np.zeros((n, 4, GRID_H, GRID_W), np.float32)
    weight = np.zeros((n, GRID_H, GRID_W), np.float32)
    ys, xs = np.mgrid[0:GRID_H, 0:GRID_W].astype(np.float32)
    cx_cell, cy_cell = (xs + 0.5) * STRIDE, (ys + 0.5) * STRIDE
    for i, t in enumerate(targets):
        for c, lft, tp, r, b in t:
            w, h = r - lft, b - tp
            cx, cy = (lft + r) / 2 / STRIDE - 0.5, (tp + b) / 2 / STRIDE - 0.5
            sx, sy = max(0.5, w / STRIDE / 6), max(0.5, h / STRIDE / 6)
            g = np.exp(-((xs - cx) ** 2) / (2 * sx**2) - ((ys - cy) ** 2) / (2 * sy**2))
            ix, iy = int(np.clip(round(cx), 0, GRID_W - 1)), int(np.clip(round(cy), 0, GRID_H - 1))
            g[iy, ix] = 1.0
            heat[i, int(c)] = np.maximum(heat[i, int(c)], g)
            d = np.stack([cx_cell - lft, cy_cell - tp, r - cx_cell, b - cy_cell])
            inside = (d.min(0) > 1.0) & (g > 0.3) & (g > weight[i])
            dist[i][:, inside] = np.log(d[:, inside] / STRIDE)
            weight[i][inside] = g[inside]
    return heat, dist, weight


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def train(
    out: Path,
    *,
    steps: int,
    scenes: int,
    per_scene: int,
    batch: int,
    seed: int,
    width: int,
    checkpoint: bool = False,
    init: Path | None = None,
    lr: float = 3e-3,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    t0 = time.time()
    images, targets = make_dataset(scenes, per_scene, seed)
    heat, dist, weight = encode_targets(targets, len(CLASSES))
    print(f"dataset: {len(images)} images in {time.time() - t0:.0f} s", flush=True)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    h_all, d_all, w_all = torch.from_numpy(heat), torch.from_numpy(dist), torch.from_numpy(weight)
    net = TinyDetector(len(CLASSES), width)
    if init is not None:  # fine-tune from a saved state_dict (--checkpoint of an earlier run)
        net.load_state_dict(torch.load(init, map_location="cpu"))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        x = x_all[idx].float() / 255.0
        hm, bx = net(x)
        w = w_all[idx]
        l_heat = focal_loss(hm, h_all[idx])
        l_box = (F.smooth_l1_loss(bx, d_all[idx], reduction="none", beta=0.1).sum(1) * w).sum() / w.sum().clamp(min=1.0)
        loss = l_heat + 2.0 * l_box
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(
                f"step {step:5d}  loss {loss.item():.3f} (heat {l_heat.item():.3f}, box {l_box.item():.3f})"
                f"  {time.time() - t0:.0f} s",
                flush=True,
            )
    torch.save(net.state_dict(), out / "weights.pt") if checkpoint else None
    return export(
        net,
        out,
        {
            "steps": steps,
            "init": str(init) if init else None,
            "lr": lr,
            "scenes": scenes,
            "images": len(images),
            "seed": seed,
            "width": width,
        },
    )


def export(net: TinyDetector, out: Path, info: dict) -> dict:
    """Write ``model.onnx`` (opset 17, dynamic batch), ``labels.txt`` and ``model.json``."""
    out.mkdir(parents=True, exist_ok=True)
    model = Exported(net.eval()).eval()
    dummy = torch.zeros(1, 3, MODEL_H, MODEL_W)
    torch.onnx.export(
        model,
        (dummy,),
        str(out / "model.onnx"),
        input_names=["images"],
        output_names=["boxes", "scores"],
        dynamic_axes={"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    (out / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    meta = {
        "input": {"name": "images", "width": MODEL_W, "height": MODEL_H, "scale": 1 / 255, "pad_value": 114},
        "classes": list(CLASSES),
        "stride": STRIDE,
        "training": info,
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--scenes", type=int, default=240)
    ap.add_argument("--per-scene", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, help="start from this weights.pt (fine-tuning)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    ap.add_argument("--checkpoint", action="store_true", help="also save the torch state_dict (weights.pt)")
    a = ap.parse_args(argv)
    train(
        a.out,
        steps=a.steps,
        scenes=a.scenes,
        per_scene=a.per_scene,
        batch=a.batch,
        seed=a.seed,
        width=a.width,
        checkpoint=a.checkpoint,
        init=a.init,
        lr=a.lr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
