"""VideoDecoderOp in a tiny graph: frames, timing metadata, bad files refused at construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video.decoder_op import VideoDecoderOp
from clara_stream.operators.video.source import VideoInputError
from clara_stream.operators.video.testing import CollectOp, GraphApp

from clara_stream import ports as P
from clara_stream.samples.video import write_sample


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("dec"), seed=5, width=160, height=96, frames=12, fps=24)["video"]


def test_decoder_emits_every_frame_with_frame_info(clip: Path) -> None:
    ops: dict = {}

    def build(app: GraphApp) -> None:
        ops["dec"] = VideoDecoderOp(app, name="decoder", path=clip)
        ops["sink"] = CollectOp(app, name="sink", port=P.FRAME, meta_keys=("frame_info", "frame_clock"))
        app.add_flow(ops["dec"], ops["sink"], {(P.FRAME, P.FRAME)})

    GraphApp(build).run()
    frames, metas = ops["sink"].values, ops["sink"].metas
    assert len(frames) == 12 and frames[0].shape == (96, 160, 3) and frames[0].dtype == np.uint8
    infos = [m["frame_info"] for m in metas]
    assert [i.index for i in infos] == list(range(12))
    assert infos[0].time_s == 0.0 and abs(infos[-1].time_s - 11 / 24) < 1e-6 and float(infos[0].rate) == 24
    assert all(b["frame_clock"] >= a["frame_clock"] for a, b in zip(metas, metas[1:], strict=False))
    assert ops["dec"].stats["emitted"] == 12


def test_decoder_loop_and_max_frames(clip: Path) -> None:
    ops: dict = {}

    def build(app: GraphApp) -> None:
        ops["dec"] = VideoDecoderOp(app, name="decoder", path=clip, loop=True, max_frames=30)
        ops["sink"] = CollectOp(app, name="sink", port=P.FRAME, meta_keys=("frame_info",))
        app.add_flow(ops["dec"], ops["sink"], {(P.FRAME, P.FRAME)})

    GraphApp(build).run()
    infos = [m["frame_info"] for m in ops["sink"].metas]
    assert len(infos) == 30
    times = [i.time_s for i in infos]
    assert all(b > a for a, b in zip(times, times[1:], strict=False)), "timestamps keep increasing across loops"
    assert np.array_equal(ops["sink"].values[12], ops["sink"].values[0])


def test_decoder_refuses_bad_files_at_start_not_when_built(tmp_path: Path) -> None:
    """Building opens nothing (``clara-stream validate`` has no side effects); start refuses the file.

    Fails if the file is probed in ``__init__`` again (compose would raise) or if start lets it through.
    """
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)

    def build_for(path: Path):  # noqa: ANN202
        def build(app: GraphApp) -> None:
            dec = VideoDecoderOp(app, name="decoder", path=path)
            app.add_flow(dec, CollectOp(app, name="sink", port=P.FRAME), {(P.FRAME, P.FRAME)})

        return build

    GraphApp(build_for(tmp_path / "missing.mp4")).compose_graph()  # built for inspection: no error, no I/O
    with pytest.raises(VideoInputError, match=r"VideoDecoderOp: expected an existing video file.*missing\.mp4"):
        GraphApp(build_for(tmp_path / "missing.mp4")).run()
    with pytest.raises(VideoInputError, match=r"expected a readable video container.*notes\.mp4"):
        GraphApp(build_for(text)).run()
    with pytest.raises(ValueError, match="drop_policy"):
        GraphApp(lambda app: VideoDecoderOp(app, name="decoder", path=tmp_path, drop_policy="x")).compose_graph()
    with pytest.raises(ValueError, match="expected rate"):
        GraphApp(lambda app: VideoDecoderOp(app, name="decoder", path=tmp_path, rate="fast")).compose_graph()
