"""DeepStream's KITTI detector output: one text file per frame, 16 columns per object.

Line format (DeepStream ``gst-nvinfer`` / ``nvdsosd`` KITTI dump)::

    label 0.0 0 0.0 left top right bottom 0.0 0.0 0.0 0.0 0.0 0.0 0.0 confidence

Columns: type, truncated, occluded, alpha, bbox (4, pixels), dimensions (3), location (3),
rotation_y, score. DeepStream names the files by frame number, zero-padded to six digits
(``000000.txt``); an empty file is written for a frame with no objects, so there is exactly one
file per frame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from clara_stream.operators.video.detections import Detections

COLUMNS = 16


def kitti_name(index: int, *, digits: int = 6, prefix: str = "") -> str:
    """File name of frame ``index`` (``000042.txt``)."""
    if index < 0:
        raise ValueError(f"kitti_name: expected index >= 0; got {index}")
    return f"{prefix}{index:0{digits}d}.txt"


def kitti_lines(det: Detections) -> list[str]:
    """KITTI lines for one frame's detections (labels must not contain spaces)."""
    lines = []
    for name, (x0, y0, x1, y1), s in zip(det.names(), det.boxes.tolist(), det.scores.tolist(), strict=True):
        label = name.replace(" ", "_")
        lines.append(f"{label} 0.0 0 0.0 {x0:.2f} {y0:.2f} {x1:.2f} {y1:.2f} 0.0 0.0 0.0 0.0 0.0 0.0 0.0 {s:.4f}")
    return lines


def write_kitti(folder: str | Path, index: int, det: Detections, *, digits: int = 6, prefix: str = "") -> Path:
    """Write one frame's file (atomically: temp file + rename) and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / kitti_name(index, digits=digits, prefix=prefix)
    tmp = path.with_suffix(".tmp")
    lines = kitti_lines(det)
    try:
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        why = exc.strerror or exc
        raise OSError(exc.errno, f"write_kitti: expected to write {path.name}; got {why} [{folder}]") from exc
    return path


def clear_kitti(folder: str | Path, *, digits: int = 6, prefix: str = "") -> int:
    """Remove the files :func:`write_kitti` names (and their temporaries) from ``folder``; return how many."""
    pattern = re.compile(re.escape(prefix) + rf"\d{{{digits},}}\.(txt|tmp)")
    n = 0
    for p in Path(folder).iterdir():
        if p.is_file() and pattern.fullmatch(p.name):
            p.unlink()
            n += 1
    return n


def read_kitti(path: str | Path, labels: Sequence[str] = ()) -> Detections:
    """Parse one KITTI file back into :class:`Detections` (unknown labels are appended).

    Raises
    ------
    ValueError
        A line does not have 16 columns or its numbers do not parse.
    """
    names = list(labels)
    boxes, scores, ids = [], [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != COLUMNS:
            raise ValueError(f"read_kitti: expected {COLUMNS} columns; got {len(cols)} [{path}:{n}]")
        try:
            box, score = [float(v) for v in cols[4:8]], float(cols[15])
        except ValueError as exc:
            raise ValueError(f"read_kitti: expected numeric bbox and score; got {cols} [{path}:{n}]") from exc
        if cols[0] not in names:
            names.append(cols[0])
        boxes.append(box)
        scores.append(score)
        ids.append(names.index(cols[0]))
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(ids, np.int32),
        tuple(names),
    )
