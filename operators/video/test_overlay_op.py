"""OverlayOp in a tiny graph: boxes drawn in the class colour, pixels outside untouched."""

from __future__ import annotations

import numpy as np
import pytest
from clara_stream.operators.video.contracts import DETECTIONS, FRAME_RGB
from clara_stream.operators.video.detections import Detections
from clara_stream.operators.video.overlay import PALETTE
from clara_stream.operators.video.overlay_op import OverlayOp
from clara_stream.operators.video.testing import CollectOp, GraphApp, ListSourceOp

from clara_stream import ports as P
from clara_stream.geometry import FrameInfo


def test_overlay_draws_box_outline_and_clock() -> None:
    frame = np.full((120, 200, 3), 40, np.uint8)
    det = Detections(
        np.array([[50, 40, 150, 100]], np.float32),
        np.array([0.87], np.float32),
        np.array([1], np.int32),
        ("instrument", "polyp"),
    )
    meta = {"frame_info": FrameInfo(3, 1 / 30, 3, 30)}
    ops: dict = {}

    def build(app: GraphApp) -> None:
        frames = ListSourceOp(app, name="frames", port=P.FRAME, values=[frame.copy()], metas=[meta], contract=FRAME_RGB)
        dets = ListSourceOp(app, name="dets", port=P.DETECTIONS, values=[det], metas=[meta], contract=DETECTIONS)
        ops["ov"] = OverlayOp(app, name="overlay", thickness=2, clock=True)
        ops["sink"] = CollectOp(app, name="sink", port=P.OVERLAY)
        app.add_flow(frames, ops["ov"], {(P.FRAME, P.FRAME)})
        app.add_flow(dets, ops["ov"], {(P.DETECTIONS, P.DETECTIONS)})
        app.add_flow(ops["ov"], ops["sink"], {(P.OVERLAY, P.OVERLAY)})

    GraphApp(build).run()
    (out,) = ops["sink"].values
    colour = np.array(PALETTE[1], np.uint8)
    assert (out[70, 150] == colour).all() and (out[100, 100] == colour).all()  # right and bottom edges
    assert (out[70, 100] == 40).all()  # inside the box: untouched (no fill)
    assert (out[115, 195] == 40).all()  # far corner: untouched
    assert (out[0:15, 0:60] != 40).any()  # the clock band at the top-left


def test_overlay_validates_arguments() -> None:
    with pytest.raises(ValueError, match="OverlayOp: expected thickness >= 1"):
        GraphApp(lambda app: OverlayOp(app, thickness=0)).compose_graph()
