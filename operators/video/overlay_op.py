"""OverlayOp: draw labelled boxes, optional fill and a frame clock on each frame (nvdsosd-like)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.video.contracts import DETECTIONS, FRAME_RGB
from clara_stream.operators.video.overlay import clock_text, draw_clock, draw_detections

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class OverlayOp(Operator):
    """Pair each frame with its detections and draw them on it (in place).

    Ports
    -----
    frame : uint8 (H, W, 3) RGB host array, metadata ``frame_info``; a deep queue (``frame_queue``)
        holds frames while their detections are computed, so decode runs ahead of inference
    detections : Detections for the same frame (both inputs arrive in order, one per frame)
    overlay : the annotated uint8 (H, W, 3) RGB frame, metadata passed on

    Parameters
    ----------
    thickness : int
        Box line width in pixels (>= 1).
    font_scale : float
        OpenCV Hershey font scale (> 0).
    fill_alpha : float in [0, 1)
        Blend of the class colour inside each box (0 = outline only).
    show_score : bool
        Append the confidence to the label.
    clock : bool
        Draw ``mm:ss.mmm  #index`` from the frame's timestamp at the top-left.
    """

    inputs = (Port(P.FRAME, FRAME_RGB, queue_size=8), Port(P.DETECTIONS, DETECTIONS))
    outputs = (Port(P.OVERLAY, FRAME_RGB),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        thickness: int = 2,
        font_scale: float = 0.5,
        fill_alpha: float = 0.0,
        show_score: bool = True,
        clock: bool = True,
        name: str = "overlay",
        **kwargs: Any,
    ) -> None:
        if int(thickness) < 1 or float(font_scale) <= 0 or not 0 <= float(fill_alpha) < 1:
            raise ValueError(
                f"OverlayOp: expected thickness >= 1, font_scale > 0, 0 <= fill_alpha < 1; "
                f"got {thickness}, {font_scale}, {fill_alpha}"
            )
        self.thickness, self.font_scale, self.fill_alpha = int(thickness), float(font_scale), float(fill_alpha)
        self.show_score, self.clock = bool(show_score), bool(clock)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = self.receive(op_input, P.FRAME)
        det = self.receive(op_input, P.DETECTIONS)
        if not frame.flags.writeable:
            frame = frame.copy()
        draw_detections(
            frame,
            det,
            thickness=self.thickness,
            font_scale=self.font_scale,
            fill_alpha=self.fill_alpha,
            show_score=self.show_score,
        )
        info = self.get_meta(P.FRAME_INFO)
        if self.clock and info is not None:
            draw_clock(frame, clock_text(info.time_s, info.index))
        self.emit(op_output, frame, P.OVERLAY)
