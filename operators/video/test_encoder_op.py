"""VideoEncoderOp in a tiny graph: H.264 MP4 with the frames' count, rate and timestamps."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clara_stream.operators.video.contracts import FRAME_RGB
from clara_stream.operators.video.encoder_op import VideoEncoderOp
from clara_stream.operators.video.testing import GraphApp, ListSourceOp

from clara_stream import ports as P
from clara_stream.geometry import FrameInfo


@pytest.mark.parametrize("fragmented", [False, True])
def test_encoder_writes_h264_with_source_timing(tmp_path: Path, fragmented: bool) -> None:
    rate = Fraction(25)
    frames = [np.full((64, 96, 3), 10 * i, np.uint8) for i in range(20)]
    metas = [{"frame_info": FrameInfo(i * 512, Fraction(1, 12800), i, rate)} for i in range(20)]
    out = tmp_path / "out.mp4"
    ops: dict = {}

    def build(app: GraphApp) -> None:
        src = ListSourceOp(app, name="src", port=P.FRAME, values=frames, metas=metas, contract=FRAME_RGB)
        ops["enc"] = VideoEncoderOp(app, name="encoder", path=out, preset="ultrafast", fragmented=fragmented)
        app.add_flow(src, ops["enc"], {(P.FRAME, P.FRAME)})

    GraphApp(build).run()
    assert ops["enc"].stats["frames"] == 20 and ops["enc"].stats["latency"]["frames"] == 20
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.average_rate == rate
        decoded = list(c.decode(s))
    assert len(decoded) == 20
    assert abs(float(decoded[-1].pts * decoded[-1].time_base) - 19 / 25) < 1e-3
    assert abs(float(decoded[7].to_ndarray(format="gray").mean()) - 70) < 4
    assert (b"moof" in out.read_bytes()) == fragmented


def test_encoder_validates_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VideoEncoderOp: expected path"):
        GraphApp(lambda app: VideoEncoderOp(app)).compose_graph()
    with pytest.raises(ValueError, match="preset"):
        GraphApp(lambda app: VideoEncoderOp(app, path=tmp_path / "o.mp4", preset="warp")).compose_graph()
