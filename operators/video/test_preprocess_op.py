"""PreprocessOp in a tiny graph: letterboxed CHW tensor and the letterbox geometry in metadata."""

from __future__ import annotations

import numpy as np
import pytest
from clara_stream.operators.video.contracts import FRAME_RGB
from clara_stream.operators.video.preprocess_op import PreprocessOp
from clara_stream.operators.video.testing import CollectOp, GraphApp, ListSourceOp

from clara_stream import ports as P
from clara_stream.geometry import FrameInfo


def test_preprocess_letterboxes_and_scales() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, :, 0] = 255  # pure red
    info = FrameInfo(0, 1 / 30, 0, 30)
    ops: dict = {}

    def build(app: GraphApp) -> None:
        src = ListSourceOp(
            app, name="src", port=P.FRAME, values=[frame], metas=[{"frame_info": info}], contract=FRAME_RGB
        )
        ops["pre"] = PreprocessOp(app, name="preprocess", width=320, height=192)
        ops["sink"] = CollectOp(app, name="sink", port=P.TENSOR, meta_keys=("letterbox", "frame_info"))
        app.add_flow(src, ops["pre"], {(P.FRAME, P.FRAME_IN)})
        app.add_flow(ops["pre"], ops["sink"], {(P.TENSOR, P.TENSOR)})

    GraphApp(build).run()
    (tensor,) = ops["sink"].values
    meta = ops["sink"].metas[0]
    assert tensor.shape == (3, 192, 320) and tensor.dtype == np.float32
    lb = meta["letterbox"]
    assert (lb.scale, lb.pad_x, lb.pad_y) == (0.5, 0, 6) and meta["frame_info"] == info
    assert np.allclose(tensor[:, 96, 160], [1.0, 0.0, 0.0])  # image area: red, scaled to [0, 1]
    assert np.allclose(tensor[:, 2, 160], 114 / 255)  # padding band


def test_preprocess_validates_arguments() -> None:
    with pytest.raises(ValueError, match="PreprocessOp: expected width and height >= 8"):
        GraphApp(lambda app: PreprocessOp(app, width=4, height=192)).compose_graph()
    with pytest.raises(ValueError, match="std > 0"):
        GraphApp(lambda app: PreprocessOp(app, mean=[0, 0, 0], std=[1, 0, 1])).compose_graph()
