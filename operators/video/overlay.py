"""Draw detections on RGB frames, like DeepStream's ``nvdsosd``: boxes, label + score, fill, clock.

OpenCV drawing on uint8 in place: per-frame cost is a few hundred µs for a handful of boxes at
720p. The optional blended fill only touches each box's region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from clara_stream.operators.video.detections import Detections

# distinct, colour-blind-friendlier RGB colours (Okabe-Ito), cycled by class id
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
)


def draw_detections(
    rgb: np.ndarray,
    det: Detections,
    *,
    thickness: int = 2,
    font_scale: float = 0.5,
    fill_alpha: float = 0.0,
    show_score: bool = True,
    colours: Sequence[tuple[int, int, int]] = PALETTE,
) -> np.ndarray:
    """Draw ``det`` on ``rgb`` (H, W, 3) uint8 in place and return it."""
    import cv2

    h, w = rgb.shape[:2]
    for (bl, bt, br, bb), s, c, name in zip(
        det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), det.names(), strict=True
    ):
        colour = colours[int(c) % len(colours)]
        x0, y0 = max(0, int(bl)), max(0, int(bt))
        x1, y1 = min(w - 1, int(round(br))), min(h - 1, int(round(bb)))
        if x1 <= x0 or y1 <= y0:
            continue
        if fill_alpha > 0:
            roi = rgb[y0:y1, x0:x1]
            roi[:] = (roi * (1 - fill_alpha) + np.asarray(colour, np.float32) * fill_alpha).astype(np.uint8)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_8)
        text = f"{name} {s:.2f}" if show_score else name
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(h - 1, y0 + th + 4)
        cv2.rectangle(rgb, (x0, ty - th - 2), (min(w - 1, x0 + tw + 4), ty + base - 1), colour, -1)
        cv2.putText(rgb, text, (x0 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


def draw_clock(rgb: np.ndarray, text: str, *, font_scale: float = 0.6) -> np.ndarray:
    """Write ``text`` (e.g. ``"00:01.233  #37"``) at the top-left on a dark band, in place."""
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    band = rgb[0 : th + base + 8, 0 : tw + 12]
    band[:] = (band * 0.4).astype(np.uint8)
    cv2.putText(rgb, text, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


def clock_text(time_s: float, index: int) -> str:
    """``mm:ss.mmm  #index``."""
    m, s = divmod(max(0.0, time_s), 60.0)
    return f"{int(m):02d}:{s:06.3f}  #{index}"
