"""Synthetic endoscopy-like H.264 videos with per-frame ground-truth boxes.

The same scene generator feeds three users: ``clara-stream sample video`` (a demo input), the
detector's training script (``apps/video_detection/model/train.py``) and the tests and benchmark
(held-out videos with known boxes, so recall and precision can be measured).

A scene is a pinkish tissue-like texture (multi-scale smooth noise, darker vessels, an
endoscope vignette) that pans slowly, with moving objects of two classes drawn on top:

* ``instrument`` (class 0): a grey, elongated, shaded bar at an angle, like a surgical tool shaft;
* ``polyp`` (class 1): a yellow-orange rounded blob with a soft rim and a specular highlight.

Boxes are ``(left, top, right, bottom)`` in pixels of the frame, the axis-aligned extent of the
drawn shape, clipped to the frame (objects bounce inside the frame, so clipping rarely matters);
objects more than half hidden under others are left out of the ground truth, and a partly hidden
object's box bounds its visible part.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

CLASSES: tuple[str, ...] = ("instrument", "polyp")


@dataclass
class _Object:
    cls: int
    x: float  # centre, px
    y: float
    vx: float  # px / frame
    vy: float
    size: float  # instrument length or polyp diameter, px
    thick: float  # instrument width or polyp aspect factor
    angle: float  # radians
    spin: float  # radians / frame
    start: int
    end: int
    tint: tuple[int, int, int]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scales: tuple[int, ...]) -> np.ndarray:
    import cv2

    out = np.zeros((h, w), np.float32)
    for k, s in enumerate(scales):
        small = rng.standard_normal((max(2, h // s), max(2, w // s))).astype(np.float32)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / (k + 1)
    return out / max(1e-6, float(out.std()))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A (h, w, 3) uint8 tissue-like RGB canvas."""
    import cv2

    n = _smooth_noise(rng, h, w, (max(8, h // 3), max(4, h // 12), max(2, h // 48)))
    fine = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.2)
    base = np.array(rng.uniform([150, 60, 55], [195, 95, 85]), np.float32)
    img = base[None, None, :] * (1.0 + 0.12 * n[..., None]) + 6.0 * fine[..., None]
    vessels = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(4, 10))):
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h)))]
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(12):
            heading += rng.normal(0, 0.4)
            step = rng.uniform(0.02, 0.06) * h
            pts.append((pts[-1][0] + step * math.cos(heading), pts[-1][1] + step * math.sin(heading)))
        cv2.polylines(vessels, [np.array(pts, np.int32)], False, 255, int(rng.integers(1, 4)), cv2.LINE_AA)
    v = cv2.GaussianBlur(vessels, (0, 0), 1.5).astype(np.float32)[..., None] / 255.0
    img = img * (1.0 - 0.35 * v) + np.array([120, 20, 30], np.float32) * 0.35 * v
    return np.clip(img, 0, 255).astype(np.uint8)


def _vignette(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    return np.clip(1.08 - 0.35 * r**2, 0.55, 1.0)[..., None].astype(np.float32)


def _spawn(rng: np.random.Generator, cls: int, w: int, h: int, frames: int) -> _Object:
    if cls == 0:
        size, thick = rng.uniform(0.22, 0.45) * h, rng.uniform(0.045, 0.08) * h
        tint = tuple(int(v) for v in rng.integers(150, 215, 1).repeat(3) + rng.integers(-8, 8, 3))
    else:
        size, thick = rng.uniform(0.09, 0.2) * h, rng.uniform(0.75, 1.0)
        tint = (int(rng.integers(215, 245)), int(rng.integers(150, 190)), int(rng.integers(60, 100)))
    speed = rng.uniform(0.002, 0.012) * h
    heading = rng.uniform(0, 2 * math.pi)
    start = int(rng.integers(0, max(1, frames // 3))) if rng.random() < 0.4 else 0
    end = frames if rng.random() < 0.7 else int(rng.integers(start + max(1, frames // 3), frames + 1))
    return _Object(
        cls,
        rng.uniform(0.25, 0.75) * w,
        rng.uniform(0.25, 0.75) * h,
        speed * math.cos(heading),
        speed * math.sin(heading),
        size,
        thick,
        rng.uniform(0, math.pi),
        rng.normal(0, 0.01),
        start,
        end,
        tint,
    )


def _shape(o: _Object) -> np.ndarray:
    """Polygon (N, 2) float of the object's outline at its current pose."""
    c, s = math.cos(o.angle), math.sin(o.angle)
    if o.cls == 0:
        hl, hw = o.size / 2, o.thick / 2
        local = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]], np.float32)
    else:
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        r = o.size / 2
        local = np.stack([r * np.cos(t), r * o.thick * np.sin(t)], 1).astype(np.float32)
    rot = np.array([[c, -s], [s, c]], np.float32)
    return local @ rot.T + np.array([o.x, o.y], np.float32)


def _draw(img: np.ndarray, o: _Object, poly: np.ndarray) -> None:
    import cv2

    pts = np.round(poly * 16).astype(np.int32)
    if o.cls == 0:
        cv2.fillConvexPoly(img, pts, (40, 40, 45), cv2.LINE_AA, 4)  # dark outline
        inner = poly - (poly - poly.mean(0)) * (2.0 / max(4.0, o.thick))
        cv2.fillConvexPoly(img, np.round(inner * 16).astype(np.int32), o.tint, cv2.LINE_AA, 4)
        c, s = math.cos(o.angle), math.sin(o.angle)
        p0 = (o.x - c * o.size * 0.45, o.y - s * o.size * 0.45)
        p1 = (o.x + c * o.size * 0.45, o.y + s * o.size * 0.45)
        hi = tuple(min(255, v + 40) for v in o.tint)
        cv2.line(
            img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), hi, max(1, int(o.thick / 5)), cv2.LINE_AA
        )
    else:
        rim = tuple(int(v * 0.7) for v in o.tint)
        cv2.fillPoly(img, [pts], rim, cv2.LINE_AA, 4)
        inner = poly - (poly - poly.mean(0)) * 0.15
        cv2.fillPoly(img, [np.round(inner * 16).astype(np.int32)], o.tint, cv2.LINE_AA, 4)
        r = max(1, int(o.size * 0.08))
        cv2.circle(
            img, (int(o.x - o.size * 0.15), int(o.y - o.size * 0.15)), r, (250, 245, 235), -1, cv2.LINE_AA
        )


def render_scene(
    *, seed: int = 0, width: int = 640, height: int = 360, frames: int = 90, objects: tuple[int, int] = (1, 3)
) -> Iterator[tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]]]]]:
    """Yield ``(rgb, boxes)`` per frame of one synthetic scene.

    Parameters
    ----------
    seed : int
        Seeds everything: the same seed gives the same frames and boxes.
    width, height : int
        Frame size in pixels (each ≥ 32).
    frames : int
        Number of frames (≥ 1).
    objects : (int, int)
        Inclusive range of the number of objects in the scene (each lives a part of the video).

    Yields
    ------
    rgb : (height, width, 3) uint8, RGB
    boxes : list of (class_id, (left, top, right, bottom)) in pixels
    """
    if width < 32 or height < 32 or frames < 1:
        raise ValueError(
            f"render_scene: expected width, height >= 32 and frames >= 1; got {width}x{height}, {frames}"
        )
    rng = np.random.default_rng(seed)
    mx, my = int(width * 0.12), int(height * 0.12)
    canvas = _background(rng, height + 2 * my, width + 2 * mx)
    vignette = _vignette(height, width)
    n = int(rng.integers(objects[0], objects[1] + 1))
    objs = [_spawn(rng, int(rng.integers(0, 2)), width, height, frames) for _ in range(n)]
    objs.sort(key=lambda o: -o.cls)  # polyps under instruments
    phase = rng.uniform(0, 2 * math.pi, 2)
    for i in range(frames):
        ox = int(mx + mx * 0.9 * math.sin(phase[0] + i * 0.013))
        oy = int(my + my * 0.9 * math.sin(phase[1] + i * 0.017))
        img = canvas[oy : oy + height, ox : ox + width].copy()
        drawn: list[tuple[_Object, np.ndarray]] = []
        for o in objs:
            if o.start <= i < o.end:
                poly = _shape(o)
                _draw(img, o, poly)
                drawn.append((o, poly))
            _move(o, width, height)
        yield (img.astype(np.float32) * vignette).astype(np.uint8), _visible_boxes(drawn, width, height)


def _visible_boxes(
    drawn: list[tuple[_Object, np.ndarray]], width: int, height: int, min_visible: float = 0.5
) -> list[tuple[int, tuple[float, float, float, float]]]:
    """Ground truth of one frame: boxes of objects at least ``min_visible`` unoccluded.

    A partly hidden object's box bounds its visible pixels.

    Objects are drawn in order, so later ones hide earlier ones; an object mostly hidden under
    another is not something a detector can be asked to find (KITTI's evaluation likewise ignores
    largely occluded objects).
    """
    import cv2

    masks = []
    for _, poly in drawn:
        m = np.zeros((height, width), np.uint8)
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
        masks.append(m.astype(bool))
    boxes = []
    for k, (o, poly) in enumerate(drawn):
        area = int(masks[k].sum())
        above = np.logical_or.reduce(masks[k + 1:]) if k + 1 < len(masks) else None
        seen = masks[k] if above is None else masks[k] & ~above
        visible = int(seen.sum())
        if area == 0 or visible < min_visible * area:
            continue
        if above is None or visible == area:
            lo, hi = poly.min(0), poly.max(0)
        else:  # partly hidden: the box bounds what can be seen, as a detector reports it
            ys, xs = np.nonzero(seen)
            lo, hi = np.array([xs.min(), ys.min()], float), np.array([xs.max() + 1, ys.max() + 1], float)
        box = (max(0.0, float(lo[0])), max(0.0, float(lo[1])), min(float(width), float(hi[0])),
               min(float(height), float(hi[1])))
        if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
            boxes.append((o.cls, box))
    return boxes


def _move(o: _Object, w: int, h: int) -> None:
    o.x += o.vx
    o.y += o.vy
    o.angle += o.spin
    ext = _shape(o)
    lo, hi = ext.min(0), ext.max(0)
    if (lo[0] < 0 and o.vx < 0) or (hi[0] > w and o.vx > 0):
        o.vx = -o.vx
    if (lo[1] < 0 and o.vy < 0) or (hi[1] > h and o.vy > 0):
        o.vy = -o.vy


def write_sample(
    out_dir: Path,
    *,
    seed: int = 0,
    width: int = 640,
    height: int = 360,
    frames: int = 90,
    fps: int = 30,
    **options: Any,
) -> dict[str, Path]:
    """Write a synthetic H.264 MP4 and its ground truth; return the paths written.

    Parameters
    ----------
    out_dir : Path
        Created if missing.
    seed, width, height, frames : see :func:`render_scene`. Width and height must be even.
    fps : int
        Frame rate (the MP4 time base is ``1/fps``, pts = frame index).
    **options
        ``name`` (file name, default ``sample_<seed>.mp4``), ``codec`` (``h264`` default; ``hevc``,
        ``mpeg4`` for tests of other codecs), ``preset`` (libx264, default ``veryfast``), ``tune``
        (libx264, e.g. ``zerolatency``: no B-frames, as a live camera's encoder sends), ``crf``
        (default 20), ``gop`` (keyframe interval, default ``fps``), ``faststart`` (moov first,
        default False), ``objects`` ((min, max) objects, default (1, 3)).

    Returns
    -------
    dict
        ``{"video": mp4 path, "ground_truth": json path}``. The JSON holds ``classes``, ``width``,
        ``height``, ``fps``, ``frames`` and ``boxes``: per frame a list of
        ``{"label", "class_id", "box": [left, top, right, bottom]}``.
    """
    import av

    if width % 2 or height % 2:
        raise ValueError(f"write_sample: expected even width and height for yuv420p; got {width}x{height}")
    unknown = set(options) - {"name", "codec", "preset", "tune", "crf", "gop", "faststart", "objects"}
    if unknown:
        raise TypeError(f"write_sample: unexpected options {sorted(unknown)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / str(options.get("name", f"sample_{seed}.mp4"))
    codec = str(options.get("codec", "h264"))
    container_opts = {"movflags": "+faststart"} if options.get("faststart") else {}
    gt: list[list[dict[str, Any]]] = []
    with av.open(str(video), "w", options=container_opts) as container:
        enc = {"h264": "libx264", "hevc": "libx265"}.get(codec, codec)
        stream = container.add_stream(enc, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.gop_size = int(options.get("gop", fps))
        if enc == "libx264":
            stream.options = {
                "preset": str(options.get("preset", "veryfast")),
                "crf": str(options.get("crf", 20)),
                **({"tune": str(options["tune"])} if options.get("tune") else {}),
            }
        for i, (rgb, boxes) in enumerate(
            render_scene(
                seed=seed,
                width=width,
                height=height,
                frames=frames,
                objects=tuple(options.get("objects", (1, 3))),
            )
        ):
            frame = av.VideoFrame.from_ndarray(_rgb_to_i420(rgb), format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
            gt.append(
                [{"label": CLASSES[c], "class_id": c, "box": [round(v, 2) for v in b]} for c, b in boxes]
            )
        container.mux(stream.encode(None))
    truth = video.with_suffix(".json")
    truth.write_text(
        json.dumps(
            {
                "classes": list(CLASSES),
                "width": width,
                "height": height,
                "fps": fps,
                "frames": frames,
                "boxes": gt,
            }
        )
    )
    return {"video": video, "ground_truth": truth}


def _rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)


def load_ground_truth(path: Path) -> dict[str, Any]:
    """Read a ground-truth JSON written by :func:`write_sample`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "boxes" not in data:
        raise ValueError(
            f"load_ground_truth: expected a JSON object with 'boxes'; got {type(data).__name__} [{path}]"
        )
    return data
