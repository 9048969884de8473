"""KittiWriterOp in a tiny graph: one 16-column file per frame, empty when nothing was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video.contracts import DETECTIONS
from clara_stream.operators.video.detections import Detections
from clara_stream.operators.video.kitti import read_kitti
from clara_stream.operators.video.kitti_op import KittiWriterOp
from clara_stream.operators.video.testing import GraphApp, ListSourceOp

from clara_stream import ports as P
from clara_stream.geometry import FrameInfo


def test_kitti_writer_one_file_per_frame(tmp_path: Path) -> None:
    labels = ("instrument", "polyp")
    dets = [
        Detections(
            np.array([[1, 2, 30, 40], [5, 6, 7, 8]], np.float32),
            np.array([0.9, 0.4], np.float32),
            np.array([0, 1], np.int32),
            labels,
        ),
        Detections(labels=labels),
    ]
    metas = [{"frame_info": FrameInfo(i, 1 / 30, i, 30)} for i in range(2)]

    def build(app: GraphApp) -> None:
        src = ListSourceOp(app, name="src", port=P.DETECTIONS, values=dets, metas=metas, contract=DETECTIONS)
        app.add_flow(src, KittiWriterOp(app, name="kitti", folder=tmp_path / "kitti"), {(P.DETECTIONS, P.DETECTIONS)})

    GraphApp(build).run()
    files = sorted(p.name for p in (tmp_path / "kitti").iterdir())
    assert files == ["000000.txt", "000001.txt"]
    lines = (tmp_path / "kitti" / "000000.txt").read_text().splitlines()
    assert [len(line.split()) for line in lines] == [16, 16]
    assert lines[0].split()[0] == "instrument" and lines[0].split()[4:8] == ["1.00", "2.00", "30.00", "40.00"]
    back = read_kitti(tmp_path / "kitti" / "000000.txt", labels)
    np.testing.assert_allclose(back.boxes, dets[0].boxes)
    np.testing.assert_allclose(back.scores, [0.9, 0.4])  # was after `and`: never ran
    assert (tmp_path / "kitti" / "000001.txt").read_text() == ""


def test_kitti_writer_needs_folder() -> None:
    with pytest.raises(ValueError, match="KittiWriterOp: expected folder"):
        GraphApp(lambda app: KittiWriterOp(app)).compose_graph()
