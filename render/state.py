"""Per-session view state and the interactions that change it.

The field names match the ``ViewState`` message of ``clara_stream.render.v1`` so the gRPC layer
and ``config_render.json`` convert with plain dicts (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

MODES = ("axial", "coronal", "sagittal", "oblique", "mip", "composite", "image", "slide")
VOLUME_MODES = MODES[:6]
SLICE_MODES = MODES[:4]
RAY_MODES = ("mip", "composite")
FORMATS = ("jpeg", "png", "rgb")
MAX_VIEWPORT = 4096
MAX_ZOOM = 256.0
MAX_RAY_PIXELS = 2048 * 2048  # ray-cast frames cost per pixel: bounded tighter than slices


@dataclass
class LabelStyle:
    """How one label value is drawn: colour (0..1 RGB), opacity multiplier, hidden flag."""

    value: int
    color: tuple[float, float, float] = (1.0, 0.0, 0.0)
    opacity: float = 1.0
    hidden: bool = False
    name: str = ""


@dataclass
class TransferPoint:
    """One control point of the intensity transfer function (RGBA, 0..1)."""

    value: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    opacity: float = 0.0


@dataclass
class ViewState:
    """Everything needed to render one frame of a dataset.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    width, height : int
        Viewport in pixels, 16..4096.
    focus_mm : 3 floats
        LPS point at the viewport centre (slice views) or rotation centre (3D views).
        For ``image``/``slide`` datasets: (x, y) level-0 pixel at the centre, z unused.
    zoom : float
        1 = the whole dataset fits the viewport; > 1 magnifies.
    normal, up : 3 floats
        Oblique plane: normal and in-plane up direction (LPS); orthogonalised when used.
    azimuth_deg, elevation_deg : float
        3D camera rotation about the patient's superior axis, then about the screen's x axis.
    window_center, window_width : float
        Grey mapping; width 0 means "automatic from the data".
    transfer : list of TransferPoint
        Composite rendering opacity/colour ramp; empty means a default for the data range.
    labels : list of LabelStyle
        Per-label colour, opacity and hidden flag (e.g. hide the ribs).
    show_mask, mask_opacity : bool, float
        Label overlay on slice and MIP views.
    scale_bar, picture_in_picture : bool
        Annotations drawn into the frame.
    format, quality : str, int
        ``jpeg`` (quality 1..100) or ``png``.
    """

    mode: str = "axial"
    width: int = 512
    height: int = 512
    focus_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    zoom: float = 1.0
    normal: tuple[float, float, float] = (0.0, 0.0, 1.0)
    up: tuple[float, float, float] = (0.0, -1.0, 0.0)
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    window_center: float = 40.0
    window_width: float = 0.0
    transfer: list[TransferPoint] = field(default_factory=list)
    labels: list[LabelStyle] = field(default_factory=list)
    show_mask: bool = True
    mask_opacity: float = 0.4
    scale_bar: bool = False
    picture_in_picture: bool = False
    format: str = "jpeg"
    quality: int = 85
    interactive: bool = False

    def validate(self) -> ViewState:
        """Check every field; return self. Raises ValueError naming the field."""
        if self.mode not in MODES:
            raise ValueError(f"ViewState: expected mode in {MODES}; got {self.mode!r}")
        for name, v in self._numbers():
            if not math.isfinite(v) or abs(v) > 1e7:
                raise ValueError(f"ViewState: expected {name} finite with |{name}| <= 1e7; got {v}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not (16 <= int(v) <= MAX_VIEWPORT):
                raise ValueError(f"ViewState: expected {name} in 16..{MAX_VIEWPORT}; got {v}")
        if self.mode in RAY_MODES and self.width * self.height > MAX_RAY_PIXELS:
            raise ValueError(
                f"ViewState: expected at most {MAX_RAY_PIXELS} pixels for {self.mode} frames; "
                f"got {self.width}x{self.height}"
            )
        if not (1.0 / MAX_ZOOM <= self.zoom <= MAX_ZOOM) or not math.isfinite(self.zoom):
            raise ValueError(f"ViewState: expected zoom in {1 / MAX_ZOOM}..{MAX_ZOOM}; got {self.zoom}")
        for name in ("focus_mm", "normal", "up"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(float(x)) and abs(float(x)) < 1e7 for x in v):
                raise ValueError(f"ViewState: expected {name} as 3 finite numbers (|x| < 1e7); got {v}")
        if math.hypot(*self.normal) < 1e-9:
            raise ValueError(f"ViewState: expected a non-zero normal; got {self.normal}")
        if self.format not in FORMATS:
            raise ValueError(f"ViewState: expected format in {FORMATS}; got {self.format!r}")
        if not (1 <= self.quality <= 100):
            raise ValueError(f"ViewState: expected quality in 1..100; got {self.quality}")
        if not (0.0 <= self.mask_opacity <= 1.0):
            raise ValueError(f"ViewState: expected mask_opacity in 0..1; got {self.mask_opacity}")
        if self.window_width < 0:
            raise ValueError(f"ViewState: expected window_width >= 0; got {self.window_width}")
        for lab in self.labels:
            if not (0 <= lab.value <= 255) or not (0.0 <= lab.opacity <= 1.0):
                raise ValueError(f"ViewState: expected label value 0..255 and opacity 0..1; got {lab}")
        return self

    def _numbers(self):
        """(field name, float) for every number a request can set, transfer points and labels included."""
        for name in ("zoom", "azimuth_deg", "elevation_deg", "window_center", "window_width", "mask_opacity"):
            yield name, float(getattr(self, name))
        for name in ("focus_mm", "normal", "up"):
            for i, x in enumerate(getattr(self, name)):
                yield f"{name}[{i}]", float(x)
        for i, p in enumerate(self.transfer):
            yield f"transfer[{i}].value", float(p.value)
            yield f"transfer[{i}].opacity", float(p.opacity)
            for j, c in enumerate(p.color):
                yield f"transfer[{i}].color[{j}]", float(c)
        for i, lab in enumerate(self.labels):
            yield f"labels[{i}].opacity", float(lab.opacity)
            for j, c in enumerate(lab.color):
                yield f"labels[{i}].color[{j}]", float(c)

    # ---- interactions -------------------------------------------------------------------------
    def label_style(self, value: int) -> LabelStyle:
        """The style entry for ``value`` (created when missing)."""
        for lab in self.labels:
            if lab.value == value:
                return lab
        lab = LabelStyle(value=value, color=default_label_color(value))
        self.labels.append(lab)
        return lab

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViewState:
        """From a dict with this class's field names (unknown keys are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ViewState: expected fields from {sorted(known)}; got unknown {sorted(unknown)}")
        kw = dict(d)
        if "transfer" in kw:
            kw["transfer"] = [p if isinstance(p, TransferPoint) else _tp(p) for p in kw["transfer"]]
        if "labels" in kw:
            kw["labels"] = [x if isinstance(x, LabelStyle) else _ls(x) for x in kw["labels"]]
        for name in ("focus_mm", "normal", "up"):
            if name in kw:
                kw[name] = tuple(float(v) for v in kw[name])
        return cls(**kw)


def _tp(d: dict[str, Any]) -> TransferPoint:
    return TransferPoint(float(d.get("value", 0.0)), tuple(d.get("color", (1, 1, 1))), float(d.get("opacity", 0)))


def _ls(d: dict[str, Any]) -> LabelStyle:
    return LabelStyle(
        value=int(d["value"]),
        color=tuple(float(c) for c in d.get("color", default_label_color(int(d["value"])))),
        opacity=float(d.get("opacity", 1.0)),
        hidden=bool(d.get("hidden", False)),
        name=str(d.get("name", "")),
    )


_PALETTE = (
    (0.90, 0.10, 0.10),
    (0.10, 0.75, 0.20),
    (0.15, 0.35, 0.95),
    (0.95, 0.80, 0.10),
    (0.85, 0.20, 0.85),
    (0.10, 0.85, 0.85),
    (0.95, 0.55, 0.10),
    (0.55, 0.30, 0.85),
    (0.60, 0.90, 0.30),
    (0.95, 0.45, 0.60),
)


def default_label_color(value: int) -> tuple[float, float, float]:
    """A distinct colour per label value (a 10-colour cycle, dimmed per cycle)."""
    if value <= 0:
        return (0.0, 0.0, 0.0)
    r, g, b = _PALETTE[(value - 1) % len(_PALETTE)]
    k = 1.0 - 0.15 * (((value - 1) // len(_PALETTE)) % 4)
    return (r * k, g * k, b * k)
