"""Intents → render commands, and their execution on a live render session over gRPC.

A command is a list of messages in the web viewer's JSON protocol (``{"type": "zoom", "factor":
1.5}``, ``{"type": "label", "value": 2, "hidden": true}`` …), so the viewer can send it over its own
WebSocket unchanged, and :func:`execute` can run it through :class:`clara_stream.render.client.
RenderClient` (voice → render client → core; no render library or operator is imported).
``measure_mode`` is the one viewer-only message (the ruler is a viewer tool; the Measure RPC takes
the two points the user taps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]
ZOOM = {None: 1.5, "small": 1.2, "big": 2.0}
PAN_PX = {None: 80.0, "small": 30.0, "big": 200.0}
ROTATE_PX = {None: 60.0, "small": 20.0, "big": 150.0}
OPACITY = {None: 0.5, "small": 0.7, "big": 0.15}
MAX_SLICES = 500


def build(command: str, slots: dict[str, Any], labels: Sequence[tuple[int, str]] = ()) -> list[Message]:
    """Viewer-protocol messages for ``command`` with filled ``slots`` (see :mod:`.slots`).

    Raises
    ------
    ValueError
        If a slot the command needs is missing (the dialog manager checks required slots first).
    """
    deg = slots.get("degree")
    n = slots.get("amount")
    if command in ("zoom_in", "zoom_out"):
        f = float(n) if n and 1.0 < float(n) <= 10.0 else ZOOM[deg]
        return [{"type": "zoom", "factor": f if command == "zoom_in" else 1.0 / f}]
    if command in ("pan", "rotate"):
        step = (PAN_PX if command == "pan" else ROTATE_PX)[deg]
        d = slots.get("direction") or ("right" if command == "rotate" else None)
        if d is None:
            raise ValueError("commands: expected a direction (left, right, up, down) for pan; got none")
        dx, dy = {"left": (-step, 0.0), "right": (step, 0.0), "up": (0.0, -step), "down": (0.0, step)}[d]
        return [{"type": command, "dx": dx, "dy": dy}]
    if command in ("next_slice", "previous_slice"):
        k = int(min(max(float(n), 1.0), MAX_SLICES)) if n else 1
        return [{"type": "scroll", "delta": k if command == "next_slice" else -k}]
    if command == "set_view":
        return [{"type": "mode", "mode": _need(slots, "view")}]
    if command == "window_preset":
        _, center, width = _need(slots, "preset")
        return [{"type": "set", "window_center": center, "window_width": width}]
    if command in ("hide_label", "show_label", "show_only"):
        chosen = {v for v, _ in _need(slots, "label")}
        if command == "show_only":
            return [{"type": "label", "value": v, "hidden": v not in chosen} for v, _ in labels]
        return [{"type": "label", "value": v, "hidden": command == "hide_label"} for v in sorted(chosen)]
    if command == "label_opacity":
        o = float(n) / 100.0 if n is not None and 0 <= float(n) <= 100 else OPACITY[deg]
        if slots.get("more_opaque"):
            o = 1.0
        return [{"type": "label", "value": v, "opacity": o} for v, _ in _need(slots, "label")]
    if command == "measure":
        return [{"type": "measure_mode", "on": slots.get("state") is not False}]
    if command == "scale_bar":
        return [{"type": "toggle", "name": "scale_bar", "value": slots.get("state") is not False}]
    if command == "reset":
        return [{"type": "reset"}]
    return []  # confirm / cancel: handled by the dialog manager


def _need(slots: dict[str, Any], name: str) -> Any:
    if not slots.get(name):
        raise ValueError(f"commands: expected slot {name!r}; got none")
    return slots[name]


def execute(client, session_id: str, messages: Sequence[Message]):
    """Run ``messages`` on render session ``session_id``; return the final ``SessionState``.

    ``client`` is a :class:`clara_stream.render.client.RenderClient`. Viewer-only messages
    (``measure_mode``) are skipped here. gRPC errors propagate (``grpc.RpcError``).
    """
    state = None
    for m in messages:
        t = m["type"]
        if t in ("pan", "rotate"):
            state = client.interact(session_id, **{t: (m["dx"], m["dy"])}).state
        elif t == "zoom":
            state = client.interact(session_id, zoom=m["factor"]).state
        elif t == "scroll":
            state = client.interact(session_id, scroll=m["delta"]).state
        elif t == "mode":
            state = client.interact(session_id, mode=m["mode"]).state
        elif t == "label":
            state = client.interact(session_id, label=(m["value"], m.get("hidden"), m.get("opacity"))).state
        elif t == "reset":
            state = client.interact(session_id, reset=True).state
        elif t in ("set", "toggle"):
            view = client.state(session_id).view
            if t == "set":
                view.window.center, view.window.width = m["window_center"], m["window_width"]
            else:
                setattr(view, m["name"], bool(m["value"]))
            state = client.set_view(session_id, view)
        elif t != "measure_mode":
            raise ValueError(f"commands: expected a render message type; got {t!r}")
    return state if state is not None else client.state(session_id)
