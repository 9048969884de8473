"""DetectionPostprocessOp in a tiny graph: threshold, NMS and mapping back to frame pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video.detections import Detections, Letterbox
from clara_stream.operators.video.postprocess_op import DetectionPostprocessOp
from clara_stream.operators.video.testing import CollectOp, GraphApp, ListSourceOp

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind
from clara_stream.geometry import FrameInfo

OUTS = Contract(kind=Kind.TENSOR_MAP, domain="tensor/outputs", device=Device.HOST, meta=("letterbox", "frame_info"))


def test_postprocess_thresholds_suppresses_and_maps_to_frame(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("instrument\npolyp\n")
    boxes = np.array([[[10, 16, 50, 56], [12, 18, 52, 58], [100, 100, 140, 150], [0, 0, 5, 5]]], np.float32)
    scores = np.array([[[0.9, 0.0], [0.8, 0.0], [0.0, 0.6], [0.1, 0.2]]], np.float32)
    lb = Letterbox.fit((360, 640), (320, 192))  # scale 0.5, pad_y 6
    ops: dict = {}

    def build(app: GraphApp) -> None:
        src = ListSourceOp(
            app,
            name="src",
            port=P.LOGITS,
            values=[{"boxes": boxes, "scores": scores}],
            metas=[{"letterbox": lb, "frame_info": FrameInfo(0, 1 / 30, 0, 30)}],
            contract=OUTS,
        )
        ops["post"] = DetectionPostprocessOp(app, name="postprocess", labels=labels, score_threshold=0.5)
        ops["sink"] = CollectOp(app, name="sink", port=P.DETECTIONS)
        app.add_flow(src, ops["post"], {(P.LOGITS, P.LOGITS)})
        app.add_flow(ops["post"], ops["sink"], {(P.DETECTIONS, P.DETECTIONS)})

    GraphApp(build).run()
    (det,) = ops["sink"].values
    assert isinstance(det, Detections) and len(det) == 2
    assert det.names() == ["instrument", "polyp"]
    np.testing.assert_allclose(det.boxes[0], [20, 20, 100, 100])  # (x / 0.5, (y - 6) / 0.5)
    np.testing.assert_allclose(det.scores, [0.9, 0.6])


def test_postprocess_requires_labels_and_sane_thresholds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected labels"):
        GraphApp(lambda app: DetectionPostprocessOp(app)).compose_graph()
    with pytest.raises(FileNotFoundError, match="labels file"):
        GraphApp(lambda app: DetectionPostprocessOp(app, labels=tmp_path / "none.txt")).compose_graph()
    (tmp_path / "l.txt").write_text("a\n")
    with pytest.raises(ValueError, match="score_threshold in"):
        GraphApp(
            lambda app: DetectionPostprocessOp(app, labels=tmp_path / "l.txt", score_threshold=1.5)
        ).compose_graph()
