"""Conversions between protocol messages (``clara_stream.render.v1``) and library values."""

from __future__ import annotations

from typing import Any

from clara_stream.render.engine import Frame, Measurement
from clara_stream.render.hints import unit_color
from clara_stream.render.proto import render_pb2 as pb
from clara_stream.render.state import LabelStyle, TransferPoint, ViewState, default_label_color

MODE_TO_PB = {
    "axial": pb.VIEW_MODE_AXIAL,
    "coronal": pb.VIEW_MODE_CORONAL,
    "sagittal": pb.VIEW_MODE_SAGITTAL,
    "oblique": pb.VIEW_MODE_OBLIQUE,
    "mip": pb.VIEW_MODE_MIP,
    "composite": pb.VIEW_MODE_COMPOSITE,
    "image": pb.VIEW_MODE_IMAGE,
    "slide": pb.VIEW_MODE_SLIDE,
}
PB_TO_MODE = {v: k for k, v in MODE_TO_PB.items()}
FORMAT_TO_PB = {"jpeg": pb.IMAGE_FORMAT_JPEG, "png": pb.IMAGE_FORMAT_PNG, "rgb": pb.IMAGE_FORMAT_RGB}
PB_TO_FORMAT = {pb.IMAGE_FORMAT_UNSPECIFIED: "jpeg", **{v: k for k, v in FORMAT_TO_PB.items()}}
KIND_TO_PB = {
    "volume": pb.DATASET_KIND_VOLUME,
    "slide": pb.DATASET_KIND_SLIDE,
    "image": pb.DATASET_KIND_IMAGE,
}


def vec3(v) -> pb.Vec3:
    return pb.Vec3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def tuple3(v: pb.Vec3) -> tuple[float, float, float]:
    return (v.x, v.y, v.z)


def color(c) -> pb.Color:
    return pb.Color(r=float(c[0]), g=float(c[1]), b=float(c[2]))


def mode_from_pb(value: int) -> str:
    if value not in PB_TO_MODE:
        raise ValueError(f"render: expected a ViewMode other than UNSPECIFIED; got {value}")
    return PB_TO_MODE[value]


def format_from_pb(value: int) -> str:
    if value not in PB_TO_FORMAT:
        raise ValueError(f"render: expected an ImageFormat; got {value}")
    return PB_TO_FORMAT[value]


def view_to_pb(st: ViewState) -> pb.ViewState:
    return pb.ViewState(
        mode=MODE_TO_PB[st.mode],
        width=st.width,
        height=st.height,
        camera=pb.Camera(
            focus_mm=vec3(st.focus_mm),
            zoom=st.zoom,
            azimuth_deg=st.azimuth_deg,
            elevation_deg=st.elevation_deg,
        ),
        plane=pb.Plane(normal=vec3(st.normal), up=vec3(st.up)),
        window=pb.Window(center=st.window_center, width=st.window_width),
        transfer=[pb.TransferPoint(value=p.value, color=color(p.color), opacity=p.opacity) for p in st.transfer],
        labels=[
            pb.LabelStyle(value=s.value, color=color(s.color), opacity=s.opacity, hidden=s.hidden, name=s.name)
            for s in st.labels
        ],
        show_mask=st.show_mask,
        mask_opacity=st.mask_opacity,
        scale_bar=st.scale_bar,
        picture_in_picture=st.picture_in_picture,
        format=FORMAT_TO_PB[st.format],
        quality=st.quality,
        interactive=st.interactive,
    )


def view_from_pb(m: pb.ViewState) -> ViewState:
    """Library view state from a message; unset camera/plane/format fields take defaults."""
    d = ViewState()
    st = ViewState(
        mode=mode_from_pb(m.mode),
        width=m.width or d.width,
        height=m.height or d.height,
        focus_mm=tuple3(m.camera.focus_mm) if m.HasField("camera") else d.focus_mm,
        zoom=m.camera.zoom if m.HasField("camera") and m.camera.zoom else d.zoom,
        azimuth_deg=m.camera.azimuth_deg,
        elevation_deg=m.camera.elevation_deg,
        normal=tuple3(m.plane.normal) if m.HasField("plane") else d.normal,
        up=tuple3(m.plane.up) if m.HasField("plane") else d.up,
        window_center=m.window.center if m.HasField("window") else d.window_center,
        window_width=m.window.width if m.HasField("window") else d.window_width,
        transfer=[TransferPoint(p.value, (p.color.r, p.color.g, p.color.b), p.opacity) for p in m.transfer],
        labels=[LabelStyle(s.value, (s.color.r, s.color.g, s.color.b), s.opacity, s.hidden, s.name) for s in m.labels],
        show_mask=m.show_mask,
        mask_opacity=m.mask_opacity,
        scale_bar=m.scale_bar,
        picture_in_picture=m.picture_in_picture,
        format=format_from_pb(m.format),
        quality=m.quality or d.quality,
        interactive=m.interactive,
    )
    return st.validate()


def frame_to_pb(f: Frame) -> pb.Frame:
    return pb.Frame(
        data=f.data,
        mime=f.mime,
        width=f.width,
        height=f.height,
        sequence=f.sequence,
        provisional=f.provisional,
        render_ms=f.render_ms,
        units_per_px=f.units_per_px,
        unit=f.unit,
        session_id=f.session_id,
    )


def measurement_to_pb(m: Measurement) -> pb.Measurement:
    return pb.Measurement(
        distance=m.distance, unit=m.unit, distance_px=m.distance_px, a=vec3(m.points[0]), b=vec3(m.points[1])
    )


def info_to_pb(d: dict[str, Any]) -> pb.DatasetInfo:
    """DatasetInfo from a registry record dict or :meth:`DatasetRegistry.info` dict."""
    msg = pb.DatasetInfo(
        id=d["id"],
        name=d["name"],
        kind=KIND_TO_PB[d["kind"]],
        format=d["format"],
        path=d["path"],
        mask_path=d.get("mask_path", ""),
        series_uid=d.get("series_uid", ""),
    )
    if "geometry" in d:
        g = d["geometry"]
        msg.geometry.CopyFrom(
            pb.Geometry(
                shape_zyx=d["shape_zyx"],
                origin_mm=vec3(g["origin"]),
                spacing_mm=vec3(g["spacing"]),
                direction=g["direction"],
                has_geometry=d["has_geometry"],
            )
        )
        msg.dtype = d["dtype"]
        msg.value_range.extend(d["value_range"])
        msg.center_mm.CopyFrom(vec3(d["center_mm"]))
    for lv in d.get("levels", []):
        msg.levels.append(pb.Level(width=lv["width"], height=lv["height"], downsample=lv["downsample"]))
    msg.tile_size = int(d.get("tile_size", 0))
    msg.mpp = float(d.get("mpp", 0.0) or 0.0)
    names = d.get("labels") or {}
    for v in d.get("label_values", []):
        meta = names.get(str(v), {}) if isinstance(names, dict) else {}
        msg.labels.append(
            pb.LabelInfo(
                value=v,
                name=str(meta.get("name", "")),
                color=color(unit_color(meta.get("color", default_label_color(v)))),
            )
        )
    return msg
