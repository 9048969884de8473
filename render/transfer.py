"""Grey mapping, transfer functions and label colouring shared by all views."""

from __future__ import annotations

import cv2
import numba as nb
import numpy as np
from clara_stream.render.state import LabelStyle, TransferPoint, default_label_color

LUT_SIZE = 1024
REFERENCE_STEP_MM = 1.0  # transfer-function opacities are per millimetre of ray


def window_to_u8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Grey (H, W) → RGB (H, W, 3) uint8 with a linear window [lo, hi]."""
    scale = 255.0 / max(hi - lo, 1e-6)
    g = np.clip((img - np.float32(lo)) * np.float32(scale), 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)


def _default_table() -> np.ndarray:
    table = np.zeros((256, 4), np.float32)
    for value in range(1, 256):
        table[value, :3] = default_label_color(value)
        table[value, 3] = 1.0
    table[0] = (0.0, 0.0, 0.0, 1.0)  # background tissue keeps the TF colour, full opacity
    return table


_DEFAULT_TABLE = _default_table()


def label_table(styles: list[LabelStyle], labels: np.ndarray | None) -> np.ndarray:
    """(256, 4) float32 RGBA per label value; alpha 0 = hidden. Label 0 keeps the TF colour."""
    table = _DEFAULT_TABLE.copy()
    for s in styles:
        table[s.value, :3] = s.color
        table[s.value, 3] = 0.0 if s.hidden else s.opacity
    return table


def blend_labels(rgb: np.ndarray, lab: np.ndarray, table: np.ndarray, opacity: float) -> np.ndarray:
    """Alpha-blend label colours over ``rgb`` in place (hidden labels and label 0 untouched)."""
    lut = np.empty((256, 4), np.int32)  # colour 0..255 and alpha 0..256 per label value
    lut[:, :3] = np.clip(table[:, :3] * 255.0 + 0.5, 0, 255).astype(np.int32)
    lut[:, 3] = np.clip(table[:, 3] * opacity * 256.0 + 0.5, 0, 256).astype(np.int32)
    lut[0, 3] = 0
    rgb = np.ascontiguousarray(rgb)
    _blend(rgb, np.ascontiguousarray(lab), lut)
    return rgb


@nb.njit(nogil=True, cache=True)
def _blend(rgb, lab, lut):  # pragma: no cover - compiled
    h, w = lab.shape
    for r in range(h):
        for c in range(w):
            a = lut[lab[r, c], 3]
            if a == 0:
                continue
            for ch in range(3):
                rgb[r, c, ch] = (rgb[r, c, ch] * (256 - a) + lut[lab[r, c], ch] * a) >> 8


def default_transfer(lo: float, hi: float) -> list[TransferPoint]:
    """A bone/soft-tissue ramp over [lo, hi]: transparent below 35 %, warm, then white."""
    span = hi - lo
    return [
        TransferPoint(lo + 0.30 * span, (0.9, 0.5, 0.4), 0.0),
        TransferPoint(lo + 0.45 * span, (0.95, 0.65, 0.55), 0.08),
        TransferPoint(lo + 0.70 * span, (1.0, 0.95, 0.85), 0.5),
        TransferPoint(hi, (1.0, 1.0, 1.0), 0.9),
    ]


def build_lut(points: list[TransferPoint], lo: float, hi: float, step_mm: float) -> tuple[np.ndarray, float, float]:
    """(LUT (N, 4) float32, value of entry 0, entries per unit value) for ``composite``.

    Opacities are given per millimetre and corrected for the ray step
    (``1 - (1 - a)^(step/1 mm)``) so the picture does not change with sampling rate.
    """
    pts = sorted(points or default_transfer(lo, hi), key=lambda p: p.value)
    v0, v1 = pts[0].value, pts[-1].value
    if v1 <= v0:
        v1 = v0 + 1.0
    xs = np.linspace(v0, v1, LUT_SIZE)
    vals = np.array([p.value for p in pts])
    lut = np.empty((LUT_SIZE, 4), np.float32)
    for ch in range(3):
        lut[:, ch] = np.interp(xs, vals, [p.color[ch] for p in pts])
    a = np.clip(np.interp(xs, vals, [p.opacity for p in pts]), 0.0, 1.0)
    lut[:, 3] = 1.0 - np.power(1.0 - a, step_mm / REFERENCE_STEP_MM)
    return lut, float(v0), float((LUT_SIZE - 1) / (v1 - v0))
