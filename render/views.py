"""Render a volume view (orthogonal slice, oblique MPR, MIP, composite) into an RGB frame.

Every view is an orthographic image plane: pixel (column c, row r) lies at
``center + (c + 0.5 - W/2)·s·u + (r + 0.5 - H/2)·s·v`` in LPS mm (``s`` mm per pixel), and ray
views integrate along ``forward`` through that point. :class:`ViewMapping` carries this map so
measurement and gestures use exactly the geometry the frame was drawn with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from clara_stream.render import gpu, kernels
from clara_stream.render.state import RAY_MODES, SLICE_MODES, ViewState
from clara_stream.render.transfer import blend_labels, build_lut, label_table, window_to_u8
from clara_stream.render.volume import Volume

FILL = -1.0e9  # outside the volume: below any window, so it draws black


@dataclass(frozen=True)
class ViewMapping:
    """Pixel ↔ LPS mm map of one frame (see module docstring)."""

    center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    forward: np.ndarray
    mm_per_px: float
    width: int
    height: int
    has_geometry: bool = True

    def pixel_to_mm(self, col: float, row: float) -> np.ndarray:
        """LPS point (mm) under a viewport pixel position (fractional pixels allowed)."""
        s = self.mm_per_px
        return self.center + (col - self.width / 2) * s * self.u + (row - self.height / 2) * s * self.v


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError(f"views: expected a non-zero vector; got {v.tolist()}")
    return v / n


def rotate(vec: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    """Rodrigues rotation of ``vec`` about unit ``axis`` by ``deg`` degrees."""
    a = math.radians(deg)
    k = _unit(axis)
    return vec * math.cos(a) + np.cross(k, vec) * math.sin(a) + k * float(k @ vec) * (1 - math.cos(a))


#: Patient (LPS) axes: +x left, +y posterior, +z superior.
LPS_X, LPS_Y, LPS_Z = np.eye(3)
#: (screen right, screen down, into the screen) of each orthogonal plane, in LPS: axial seen from
#: the feet (patient left on the right, anterior up), coronal from the front and sagittal from the
#: patient's left (superior up) — whatever the acquisition's orientation. Each is right-handed
#: (u × v = n), so an oblique plane started from it (normal n, up −v) shows the same picture.
PLANES = {
    "axial": (LPS_X, LPS_Y, LPS_Z),
    "coronal": (LPS_X, -LPS_Z, LPS_Y),
    "sagittal": (LPS_Y, -LPS_Z, -LPS_X),  # looking from the left towards the right: n = −L
}


def view_axes(volume: Volume, state: ViewState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, n) unit vectors in LPS: screen right, screen down, and into the screen.

    Orthogonal modes are planes of the patient (:data:`PLANES`), not of the array; oblique uses
    ``state.normal``/``state.up``; 3D modes start from the coronal (anterior) view, then turn by
    azimuth about superior and elevation about the screen's x axis.
    """
    if state.mode in PLANES:
        return tuple(a.copy() for a in PLANES[state.mode])  # type: ignore[return-value]
    if state.mode == "oblique":
        n = _unit(np.asarray(state.normal, dtype=np.float64))
        up = np.asarray(state.up, dtype=np.float64)
        up = up - n * float(up @ n)
        if np.linalg.norm(up) < 1e-6:  # up parallel to the normal: pick any perpendicular
            up = np.cross(n, LPS_X if abs(float(n @ LPS_X)) < 0.9 else LPS_Y)
        v = -_unit(up)
        return np.cross(v, n), v, n
    u, v, f = (a.copy() for a in PLANES["coronal"])
    u, v, f = (rotate(x, LPS_Z, state.azimuth_deg) for x in (u, v, f))
    v, f = (rotate(x, u, state.elevation_deg) for x in (v, f))
    return u, v, f


def array_axis_along(volume: Volume, n: np.ndarray, tol: float = 1e-6) -> int | None:
    """Index axis (0 = x, 1 = y, 2 = z) whose direction is parallel to ``n``, or None (oblique)."""
    cos = np.abs(volume.geometry.direction_matrix.T @ n)
    k = int(np.argmax(cos))
    return k if cos[k] > 1.0 - tol else None


def view_mapping(volume: Volume, state: ViewState) -> ViewMapping:
    """The frame geometry for ``state`` on ``volume``."""
    u, v, n = view_axes(volume, state)
    z, y, x = volume.shape_zyx
    corners = np.array([[i, j, k] for i in (-0.5, x - 0.5) for j in (-0.5, y - 0.5) for k in (-0.5, z - 0.5)])
    pts = volume.to_mm(corners) - volume.center_mm
    if state.mode in RAY_MODES:
        diag = float(np.linalg.norm(pts, axis=1).max() * 2)
        fit = diag / min(state.width, state.height)
    else:
        eu = float(np.ptp(pts @ u))
        ev = float(np.ptp(pts @ v))
        fit = max(eu / state.width, ev / state.height)
    return ViewMapping(
        center=np.asarray(state.focus_mm, dtype=np.float64),
        u=u,
        v=v,
        forward=n,
        mm_per_px=fit / state.zoom,
        width=state.width,
        height=state.height,
        has_geometry=volume.has_geometry,
    )


def index_frame(volume: Volume, m: ViewMapping, start_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    """(base, du, dv) of the frame in continuous (x, y, z) index space."""
    inv = np.linalg.inv(volume.index_matrix)
    s = m.mm_per_px
    p00 = start_mm + (0.5 - m.width / 2) * s * m.u + (0.5 - m.height / 2) * s * m.v
    base = inv @ (p00 - np.asarray(volume.geometry.origin))
    return base, inv @ (m.u * s), inv @ (m.v * s)


def sample_slice(volume: Volume, state: ViewState, m: ViewMapping) -> tuple[np.ndarray, np.ndarray | None]:
    """Intensities (H, W) float32 and labels (H, W) uint8 of a slice view.

    A patient plane that is an acquired slice plane shows the *original* slice nearest the focus
    (in-plane bilinear via ``cv2.warpAffine``); oblique views, and patient planes cutting an oblique
    acquisition, sample trilinearly through the volume.
    """
    base, du, dv = index_frame(volume, m, m.center)
    h, w = m.height, m.width
    labels_vol = volume.labels if state.show_mask else None
    normal_axis = array_axis_along(volume, m.forward) if state.mode != "oblique" else None
    if normal_axis is None:  # oblique, or a patient plane cutting the acquired slices: trilinear MPR
        img = None
        if gpu.usable():
            try:
                img = gpu.sample_plane(volume.device_data(1), base, du, dv, w, h, FILL)
            except Exception as exc:  # a CUDA/compile failure: the CPU kernel is the reference
                gpu.disable(exc)
        if img is None:
            img = np.empty((h, w), np.float32)
            kernels.sample_plane(volume.data, base, du, dv, img, FILL)
        lab = None
        if labels_vol is not None:
            lab = np.empty((h, w), np.uint8)
            kernels.sample_plane_nearest(labels_vol, base, du, dv, lab, 0)
        return img, lab
    cols_axis, rows_axis = (a for a in range(3) if a != normal_axis)
    focus_idx = volume.to_index_xyz(m.center)
    k = int(math.floor(focus_idx[normal_axis] + 0.5))
    n_k = volume.shape_zyx[2 - normal_axis]
    if not 0 <= k < n_k:
        return np.full((h, w), FILL, np.float32), None
    take = [slice(None)] * 3
    take[2 - normal_axis] = k
    src = volume.data[tuple(take)]  # rows/cols in array order: remaining axes (z,y,x) minus one
    affine = np.array(
        [[du[cols_axis], dv[cols_axis], base[cols_axis]], [du[rows_axis], dv[rows_axis], base[rows_axis]]]
    )
    img = cv2.warpAffine(
        src.astype(np.float32, copy=False),
        affine,
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=FILL,
    )
    lab = None
    if labels_vol is not None:
        lab = cv2.warpAffine(
            labels_vol[tuple(take)],
            affine,
            (w, h),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return img, lab


def ray_setup(volume: Volume, m: ViewMapping, factor: int) -> tuple:
    spacing = np.asarray(volume.geometry.spacing)
    # a sphere around the focus holding the whole volume (the focus need not be its centre)
    radius = float(np.linalg.norm(volume.extent_mm)) / 2 + float(np.linalg.norm(m.center - volume.center_mm))
    dt = float(spacing.min()) * factor
    start = m.center - radius * m.forward
    base, du, dv = index_frame(volume, m, start)
    dstep = np.linalg.inv(volume.index_matrix) @ (m.forward * dt)
    if factor > 1:  # coarse grid: index' = (index - (f-1)/2) / f
        base = (base - (factor - 1) / 2) / factor
        du, dv, dstep = du / factor, dv / factor, dstep / factor
    return base, du, dv, dstep, int(math.ceil(2 * radius / dt)) + 1, dt


def render_volume(volume: Volume, state: ViewState) -> tuple[np.ndarray, ViewMapping]:
    """Render ``state`` on ``volume``: (H, W, 3) uint8 RGB and the frame's mapping.

    ``state.interactive`` trades detail for speed in ray modes (2× max-pooled grid).
    """
    if state.mode not in SLICE_MODES + RAY_MODES:
        raise ValueError(f"render_volume: expected a volume view mode; got {state.mode!r}")
    m = view_mapping(volume, state)
    lo, hi = _window(volume, state)
    table = label_table(state.labels, volume.labels)
    if state.mode in SLICE_MODES:
        img, lab = sample_slice(volume, state, m)
        rgb = window_to_u8(img, lo, hi)
        if lab is not None:
            rgb = blend_labels(rgb, lab, table, state.mask_opacity)
        return rgb, m
    factor = 2 if state.interactive else 1
    data, labels = volume.coarse(factor)
    full = m
    if factor > 1:  # interactive: half the rays on the 2x grid, upscaled to the viewport
        m = ViewMapping(
            m.center,
            m.u,
            m.v,
            m.forward,
            m.mm_per_px * factor,
            max(1, m.width // factor),
            max(1, m.height // factor),
            m.has_geometry,
        )
    base, du, dv, dstep, nsteps, dt = ray_setup(volume, m, factor)
    no_labels = np.zeros((0, 0, 0), np.uint8)
    lab_arg = labels if labels is not None else no_labels
    if state.mode == "mip":
        img = np.empty((m.height, m.width), np.float32)
        lab = np.empty((m.height, m.width), np.uint8)
        hidden = table[:, 3] <= 0.0  # hidden labels leave the projection ("remove ribs")
        done = False
        if gpu.usable():
            try:
                img, lab = gpu.mip(
                    volume.device_data(factor), labels, hidden, base, du, dv, dstep, nsteps, m.width, m.height, FILL
                )
                done = True
            except Exception as exc:  # a CUDA/compile failure: the CPU kernel is the reference
                gpu.disable(exc)
        if not done:
            bmax = volume.block_max(factor)
            kernels.mip(data, lab_arg, hidden, bmax, base, du, dv, dstep, nsteps, img, lab, np.float32(FILL))
        rgb = window_to_u8(img, lo, hi)
        if labels is not None and state.show_mask:
            rgb = blend_labels(rgb, lab, table, state.mask_opacity)
        return _fit(rgb, full), full
    lut, lut_lo, lut_scale = build_lut(state.transfer, lo, hi, step_mm=dt)
    if not state.show_mask:  # labels still hide/fade tissue, but the transfer function colours it
        table = table.copy()
        table[1:, :3] = -1.0
    out = np.zeros((m.height, m.width, 3), np.float32)
    grad_scale = 1.0 / (np.asarray(volume.geometry.spacing) * factor)
    kernels.composite(data, lab_arg, base, du, dv, dstep, nsteps, lut, lut_lo, lut_scale, table, grad_scale, out)
    return _fit((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), full), full


def _fit(rgb: np.ndarray, m: ViewMapping) -> np.ndarray:
    if rgb.shape[0] == m.height and rgb.shape[1] == m.width:
        return rgb
    return cv2.resize(rgb, (m.width, m.height), interpolation=cv2.INTER_LINEAR)


def _window(volume: Volume, state: ViewState) -> tuple[float, float]:
    if state.window_width > 0:
        return state.window_center - state.window_width / 2, state.window_center + state.window_width / 2
    return volume.value_range()
