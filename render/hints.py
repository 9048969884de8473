"""Display hints a writer left beside a dataset: label names and colours from config.meta, window
and label opacity/visibility from a ``config_render.json`` without a saved view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def unit_color(c: Any) -> tuple[float, float, float]:
    """An RGB colour as 0..1 floats (0..255 values, as some writers store them, are scaled)."""
    vals = [float(x) for x in list(c)[:3]]
    if len(vals) != 3:
        raise ValueError(f"datasets: expected a colour of 3 numbers; got {c!r}")
    if max(vals) > 1.0:
        vals = [v / 255.0 for v in vals]
    return (vals[0], vals[1], vals[2])


def render_hints(labels_meta: dict | None, settings: Path | None) -> dict[str, Any]:
    """Initial display hints a writer left in the seed layout: label names/colours from
    config.meta and window/label opacity from a config_render.json without a saved ``view``.

    Returns ``{"window": (center, width) | None, "labels": {value: {name, color, opacity, hidden}}}``
    with colours as 0..1 floats (0..255 integers are converted).
    """
    labels: dict[int, dict[str, Any]] = {}
    for k, v in (labels_meta or {}).items():
        if str(k).isdigit() and isinstance(v, dict):
            labels[int(k)] = {
                "name": str(v.get("name", "")),
                **({"color": unit_color(v["color"])} if "color" in v else {}),
            }
    window = None
    if settings is not None and settings.is_file():
        try:
            doc = json.loads(settings.read_text())
        except json.JSONDecodeError:
            doc = {}
        w = doc.get("window") if isinstance(doc, dict) else None
        if isinstance(w, dict) and {"center", "width"} <= set(w):
            window = (float(w["center"]), float(w["width"]))
        for k, v in (doc.get("labels") or {}).items() if isinstance(doc, dict) else ():
            if str(k).isdigit() and isinstance(v, dict):
                entry = labels.setdefault(int(k), {})
                if "color" in v:
                    entry["color"] = unit_color(v["color"])
                if "opacity" in v:
                    entry["opacity"] = float(v["opacity"])
                if "visible" in v:
                    entry["hidden"] = not bool(v["visible"])
    return {"window": window, "labels": labels}
