"""Transfer-function presets for composite (volume) rendering, per modality.

CT presets are in Hounsfield units, so they mean the same tissue on every scanner; the MR preset
is relative to the data's robust value range (MR intensities have no absolute scale). Opacities
are per millimetre of ray (see :func:`clara_stream.render.transfer.build_lut`): a body is
≈ 300 mm thick, so tissue that should stay see-through needs per-mm opacities near 0.01 — the
old default ramp (0.08/mm at mid-window) made any CT an opaque brown slab.
"""

from __future__ import annotations

from clara_stream.render.state import TransferPoint

#: name → (value, (r, g, b), opacity per mm). Values in HU for ``ct-*``; fractions of the value
#: range (0 = 0.5th, 1 = 99.5th percentile) for ``mr``.
PRESETS: dict[str, tuple[tuple[float, tuple[float, float, float], float], ...]] = {
    "ct-bone": (
        (150.0, (0.85, 0.70, 0.55), 0.0),
        (250.0, (0.95, 0.85, 0.70), 0.15),
        (600.0, (1.00, 0.97, 0.90), 0.6),
        (1500.0, (1.00, 1.00, 1.00), 0.9),
    ),
    "ct-soft-tissue": (
        (-500.0, (0.70, 0.45, 0.35), 0.0),
        (-100.0, (0.90, 0.75, 0.55), 0.002),  # fat: a faint veil
        (20.0, (0.75, 0.25, 0.20), 0.006),  # muscle and organs
        (100.0, (0.90, 0.40, 0.30), 0.02),  # enhanced organs and vessels
        (250.0, (0.95, 0.90, 0.80), 0.3),  # bone
        (1000.0, (1.00, 1.00, 1.00), 0.8),
    ),
    "ct-lung": (
        (-950.0, (0.30, 0.45, 0.85), 0.0),
        (-800.0, (0.55, 0.70, 1.00), 0.01),  # parenchyma
        (-550.0, (0.90, 0.90, 1.00), 0.08),  # vessels and airway walls
        (-350.0, (1.00, 1.00, 1.00), 0.0),  # the body wall stays transparent
    ),
    "mr": (
        (0.15, (0.50, 0.40, 0.35), 0.0),
        (0.40, (0.80, 0.65, 0.55), 0.01),
        (0.75, (0.95, 0.88, 0.80), 0.06),
        (1.00, (1.00, 1.00, 1.00), 0.25),
    ),
}
CT_DEFAULT = "ct-bone"
MR_DEFAULT = "mr"


def looks_like_ct(dtype_name: str, lo: float) -> bool:
    """Signed data reaching air (≈ −1000 HU) is taken as CT."""
    return dtype_name in ("int16", "int32", "float32") and lo < -500


def default_preset(dtype_name: str, lo: float) -> str:
    """The preset a volume opens with: bone for CT (a skeleton, not a slab), relative for MR."""
    return CT_DEFAULT if looks_like_ct(dtype_name, lo) else MR_DEFAULT


def preset(name: str, value_range: tuple[float, float]) -> list[TransferPoint]:
    """Transfer points of preset ``name`` for data whose robust range is ``value_range``.

    Raises
    ------
    ValueError
        If ``name`` is not a preset.
    """
    if name not in PRESETS:
        raise ValueError(f"presets: expected a preset in {sorted(PRESETS)}; got {name!r}")
    lo, hi = float(value_range[0]), float(value_range[1])
    relative = not name.startswith("ct-")
    return [
        TransferPoint(lo + v * (hi - lo) if relative else v, tuple(c), float(a))  # type: ignore[arg-type]
        for v, c, a in PRESETS[name]
    ]
