"""Render sessions: per-session view state, interactions, frames, measurement, tiles.

This is the library the gRPC servicers (and tests) call; it knows nothing about transport.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from clara_stream.render.annotate import draw_pip, draw_scale_bar, encode, pip_size
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.presets import default_preset, looks_like_ct, preset
from clara_stream.render.state import MAX_ZOOM, MODES, RAY_MODES, SLICE_MODES, VOLUME_MODES, ViewState
from clara_stream.render.views import PLANES, array_axis_along, render_volume, rotate, view_mapping
from clara_stream.render.volume import Volume

OPS = ("pan", "zoom", "rotate", "scroll", "window", "mode", "label", "reset")
MIME = {"jpeg": "image/jpeg", "png": "image/png", "rgb": "application/x-raw-rgb"}


class UnknownSession(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Frame:
    """One encoded frame and how to read it (units per pixel for measuring on the client)."""

    data: bytes
    mime: str
    width: int
    height: int
    sequence: int = 0
    provisional: bool = False
    render_ms: float = 0.0
    units_per_px: float = 1.0
    unit: str = "px"
    session_id: str = ""


@dataclass
class Session:
    id: str
    dataset_id: str
    kind: str
    state: ViewState
    sequence: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Measurement:
    distance: float
    unit: str
    distance_px: float
    points: list[list[float]]


class RenderEngine:
    """Sessions over a :class:`DatasetRegistry`; the least recently used session is dropped
    when more than ``max_sessions`` are open."""

    def __init__(self, registry: DatasetRegistry, max_sessions: int = 64) -> None:
        self.registry = registry
        self.max_sessions = int(max_sessions)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    # ---- sessions -----------------------------------------------------------------------------
    def open(self, dataset_id: str, state: ViewState | None = None) -> Session:
        rec = self.registry.get(dataset_id)
        st = state or self.registry.load_settings(dataset_id) or self.default_state(dataset_id)
        st = copy.deepcopy(st)
        if rec.kind == "volume" and st.mode not in VOLUME_MODES:
            st.mode = "axial"
        if rec.kind != "volume":
            st.mode = "slide" if rec.kind == "slide" else "image"
        sess = Session(uuid.uuid4().hex, dataset_id, rec.kind, st.validate())
        with self._lock:
            self._sessions[sess.id] = sess
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sess

    def default_state(self, dataset_id: str) -> ViewState:
        rec = self.registry.get(dataset_id)
        if rec.kind == "volume":
            vol = self.registry.volume(dataset_id)
            lo, hi = vol.value_range()
            st = ViewState(
                mode="axial",
                focus_mm=tuple(vol.center_mm.tolist()),
                window_center=(lo + hi) / 2,
                window_width=hi - lo,
            )
            if looks_like_ct(str(vol.data.dtype), lo):  # CT: a soft-tissue window reads best
                st.window_center, st.window_width = 40.0, 400.0
            st.transfer = preset(default_preset(str(vol.data.dtype), lo), (lo, hi))
            ext = vol.extent_mm
            if ext[2] < 0.5 * min(ext[0], ext[1]):  # a thin slab: 3D views look at it from above
                st.elevation_deg = 60.0
            hints = self.registry.render_hints(dataset_id)
            if hints["window"]:
                st.window_center, st.window_width = hints["window"]
            for value, h in sorted(hints["labels"].items()):
                lab = st.label_style(value)
                lab.name = h.get("name", lab.name)
                lab.color = h.get("color", lab.color)
                lab.opacity = h.get("opacity", lab.opacity)
                lab.hidden = h.get("hidden", lab.hidden)
            return st
        lv = self.registry.tiles(dataset_id).levels[0]
        return ViewState(mode="slide" if rec.kind == "slide" else "image", focus_mm=(lv.width / 2, lv.height / 2, 0.0))

    def get(self, session_id: str) -> Session:
        with self._lock:
            sess = self._sessions.get(session_id)
            if sess is not None:
                self._sessions.move_to_end(session_id)
        if sess is None:
            raise UnknownSession(f"render: expected an open session id; got {session_id!r}")
        return sess

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def set_view(self, session_id: str, state: ViewState) -> ViewState:
        sess = self.get(session_id)
        state.validate()
        allowed = VOLUME_MODES if sess.kind == "volume" else (sess.state.mode,)
        if state.mode not in allowed:
            raise ValueError(f"render: expected mode in {allowed} for a {sess.kind} dataset; got {state.mode!r}")
        with sess.lock:
            sess.state = copy.deepcopy(state)
        return sess.state

    # ---- interactions -------------------------------------------------------------------------
    def interact(self, session_id: str, op: str, **a: float) -> ViewState:
        """Apply one gesture: pan(dx, dy), zoom(factor, x, y), rotate(dx, dy), scroll(delta),
        window(dcenter, dwidth), mode(mode), label(value, hidden, opacity), reset().

        ``dx, dy, x, y`` are viewport pixels. Raises ValueError for unknown ops or bad values.
        """
        sess = self.get(session_id)
        for k, v in a.items():
            if isinstance(v, float | int) and not isinstance(v, bool) and (not math.isfinite(v) or abs(v) > 1e6):
                raise ValueError(f"render: expected {k} finite with |{k}| <= 1e6; got {v}")
        with sess.lock:
            st = copy.deepcopy(sess.state)
            if op == "reset":
                st = self.default_state(sess.dataset_id)
                st.width, st.height = sess.state.width, sess.state.height
            elif op == "mode":
                previous, st.mode = st.mode, str(a.get("mode", ""))
                if st.mode not in (VOLUME_MODES if sess.kind == "volume" else (sess.state.mode,)):
                    raise ValueError(f"render: expected a mode valid for a {sess.kind} dataset; got {st.mode!r}")
                if st.mode == "oblique" and previous in PLANES:  # oblique starts from the patient plane shown
                    _, v, n = PLANES[previous]
                    st.normal, st.up = tuple(n.tolist()), tuple((-v).tolist())
            elif op == "label":
                lab = st.label_style(int(a["value"]))
                if "hidden" in a:
                    lab.hidden = bool(a["hidden"])
                if "opacity" in a:
                    lab.opacity = float(a["opacity"])
            elif op == "window":
                st.window_center += float(a.get("dcenter", 0.0))
                st.window_width = max(1.0, st.window_width + float(a.get("dwidth", 0.0)))
            elif op in ("pan", "zoom", "rotate", "scroll"):
                self._geometric(sess, st, op, a)
            else:
                raise ValueError(f"render: expected op in {OPS}; got {op!r}")
            sess.state = st.validate()
            return sess.state

    def _geometric(self, sess: Session, st: ViewState, op: str, a: dict) -> None:
        if sess.kind != "volume":
            ds = self._planar_downsample(sess.dataset_id, st)
            lv = self.registry.tiles(sess.dataset_id).levels[0]
            cx, cy, _ = st.focus_mm
            if op == "pan":
                cx, cy = cx - float(a.get("dx", 0)) * ds, cy - float(a.get("dy", 0)) * ds
            elif op == "zoom":
                f = float(a.get("factor", 1.0))
                if f <= 0:
                    raise ValueError(f"render: expected zoom factor > 0; got {f}")
                new_zoom = min(MAX_ZOOM, max(1 / MAX_ZOOM, st.zoom * f))
                ax = float(a.get("x", st.width / 2)) - st.width / 2
                ay = float(a.get("y", st.height / 2)) - st.height / 2
                new_ds = ds * st.zoom / new_zoom  # keep the point under the anchor fixed
                cx, cy = cx + ax * (ds - new_ds), cy + ay * (ds - new_ds)
                st.zoom = new_zoom
            st.focus_mm = (min(max(cx, 0.0), lv.width), min(max(cy, 0.0), lv.height), 0.0)
            return
        vol = self.registry.volume(sess.dataset_id)
        m = view_mapping(vol, st)
        focus = np.asarray(st.focus_mm, dtype=np.float64)
        if op == "pan":
            focus = focus - m.mm_per_px * (float(a.get("dx", 0)) * m.u + float(a.get("dy", 0)) * m.v)
        elif op == "zoom":
            f = float(a.get("factor", 1.0))
            if f <= 0:
                raise ValueError(f"render: expected zoom factor > 0; got {f}")
            new_zoom = min(MAX_ZOOM, max(1 / MAX_ZOOM, st.zoom * f))
            anchor = m.pixel_to_mm(float(a.get("x", st.width / 2)), float(a.get("y", st.height / 2)))
            focus = anchor + (focus - anchor) * (st.zoom / new_zoom)
            st.zoom = new_zoom
        elif op == "scroll":
            if st.mode in SLICE_MODES:
                k = array_axis_along(vol, m.forward) if st.mode != "oblique" else None
                step = float(min(vol.geometry.spacing)) if k is None else float(vol.geometry.spacing[k])
                focus = focus + m.forward * step * float(a.get("delta", 0))
        elif op == "rotate":
            dx, dy = float(a.get("dx", 0)), float(a.get("dy", 0))
            if st.mode in RAY_MODES:
                st.azimuth_deg = (st.azimuth_deg + 0.5 * dx) % 360.0
                st.elevation_deg = max(-89.0, min(89.0, st.elevation_deg + 0.5 * dy))
            else:  # tilt the cutting plane (switches an orthogonal view to oblique)
                n, up = m.forward, -m.v
                n = rotate(n, m.v, 0.3 * dx)
                n = rotate(n, m.u, -0.3 * dy)
                up = rotate(rotate(up, m.v, 0.3 * dx), m.u, -0.3 * dy)
                st.mode, st.normal, st.up = "oblique", tuple(n.tolist()), tuple(up.tolist())
        st.focus_mm = tuple(self._clamp_focus(vol, focus).tolist())

    @staticmethod
    def _clamp_focus(vol: Volume, focus: np.ndarray) -> np.ndarray:
        idx = vol.to_index_xyz(focus)
        z, y, x = vol.shape_zyx
        return vol.to_mm(np.clip(idx, [-0.5, -0.5, -0.5], [x - 0.5, y - 0.5, z - 0.5]))

    # ---- frames -------------------------------------------------------------------------------
    def render(self, session_id: str, interactive: bool | None = None) -> Frame:
        sess = self.get(session_id)
        with sess.lock:
            st = copy.deepcopy(sess.state)
            sess.sequence += 1
            seq = sess.sequence
        if interactive is not None:
            st.interactive = interactive
        t0 = time.perf_counter()
        if sess.kind == "volume":
            rgb, upp, unit, provisional = self._render_volume(sess.dataset_id, st)
        else:
            rgb, upp, unit, provisional = self._render_planar(sess.dataset_id, st)
        data = encode(rgb, st.format, st.quality)
        return Frame(
            data,
            MIME[st.format],
            st.width,
            st.height,
            seq,
            provisional,
            (time.perf_counter() - t0) * 1e3,
            upp,
            unit,
            session_id,
        )

    def _render_volume(self, dataset_id: str, st: ViewState):
        vol = self.registry.volume(dataset_id)
        rgb, m = render_volume(vol, st)
        unit = "mm" if vol.has_geometry else "px"
        if st.picture_in_picture:
            ov = copy.deepcopy(st)
            ov.zoom, ov.scale_bar, ov.picture_in_picture = 1.0, False, False
            ov.width, ov.height = pip_size(st.width, st.height)
            c = vol.center_mm
            focus = np.asarray(st.focus_mm)
            ov.focus_mm = tuple((c + m.forward * float((focus - c) @ m.forward)).tolist())
            ov_rgb, om = render_volume(vol, ov)
            corners = [m.pixel_to_mm(0, 0), m.pixel_to_mm(st.width, st.height)]
            px = [
                (
                    (p - om.center) @ om.u / om.mm_per_px + om.width / 2,
                    (p - om.center) @ om.v / om.mm_per_px + om.height / 2,
                )
                for p in corners
            ]
            draw_pip(rgb, ov_rgb, (px[0][0], px[0][1], px[1][0], px[1][1]))
        if st.scale_bar:
            draw_scale_bar(rgb, m.mm_per_px, unit)
        return rgb, m.mm_per_px, unit, False

    def _planar_downsample(self, dataset_id: str, st: ViewState) -> float:
        lv = self.registry.tiles(dataset_id).levels[0]
        return max(lv.width / st.width, lv.height / st.height) / st.zoom

    def _render_planar(self, dataset_id: str, st: ViewState):
        ts = self.registry.tiles(dataset_id)
        ds = self._planar_downsample(dataset_id, st)
        x0, y0 = st.focus_mm[0] - st.width / 2 * ds, st.focus_mm[1] - st.height / 2 * ds
        rgb, provisional = ts.region(x0, y0, st.width, st.height, ds, allow_provisional=st.interactive)
        rgb = np.array(rgb)  # writable copy for annotations
        mpp = ts.source.mpp
        upp, unit = (ds * mpp / 1000.0, "mm") if mpp else (ds, "px")
        if st.picture_in_picture:
            pw, ph = pip_size(st.width, st.height)
            lv = ts.levels[0]
            ods = max(lv.width / pw, lv.height / ph)
            ox, oy = lv.width / 2 - pw / 2 * ods, lv.height / 2 - ph / 2 * ods
            ov, _ = ts.region(ox, oy, pw, ph, ods)
            box = (
                (x0 - ox) / ods,
                (y0 - oy) / ods,
                (x0 + st.width * ds - ox) / ods,
                (y0 + st.height * ds - oy) / ods,
            )
            draw_pip(rgb, ov, box)
        if st.scale_bar:
            draw_scale_bar(rgb, upp * 1000.0 if unit == "mm" else upp, "µm" if unit == "mm" else "px")
        return rgb, upp, unit, provisional

    # ---- measurement --------------------------------------------------------------------------
    def measure(self, session_id: str, a: tuple[float, float], b: tuple[float, float]) -> Measurement:
        """Distance between two viewport points (pixels) of the session's current view."""
        sess = self.get(session_id)
        st = sess.state
        for p in (a, b):
            if not all(math.isfinite(v) and -st.width * 4 <= v <= st.width * 4 for v in p):
                raise ValueError(f"render: expected measurement points near the viewport; got {p}")
        dpx = math.hypot(b[0] - a[0], b[1] - a[1])
        if sess.kind == "volume":
            vol = self.registry.volume(sess.dataset_id)
            m = view_mapping(vol, st)
            pa, pb = m.pixel_to_mm(*a), m.pixel_to_mm(*b)
            d = float(np.linalg.norm(pb - pa))
            return Measurement(d, "mm" if vol.has_geometry else "px", dpx, [pa.tolist(), pb.tolist()])
        ds = self._planar_downsample(sess.dataset_id, st)
        pts = [
            [st.focus_mm[0] + (p[0] - st.width / 2) * ds, st.focus_mm[1] + (p[1] - st.height / 2) * ds, 0.0]
            for p in (a, b)
        ]
        d0 = dpx * ds  # level-0 pixels
        src = self.registry.tiles(sess.dataset_id).source
        if not src.mpp:
            return Measurement(d0, "px", dpx, pts)
        dx, dy = (b[0] - a[0]) * ds * src.mpp, (b[1] - a[1]) * ds * (src.mpp_y or src.mpp)  # µm per axis
        return Measurement(math.hypot(dx, dy) / 1000.0, "mm", dpx, pts)


__all__ = ["MODES", "Frame", "Measurement", "RenderEngine", "Session", "UnknownSession"]
