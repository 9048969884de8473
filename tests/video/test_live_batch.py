"""Multi-stream batching on real loopback streams, and the live queue and clock by closed form."""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import pytest
from clara_stream.operators.video.batcher import FrameBatcher
from clara_stream.operators.video.evaluate import evaluate_kitti
from clara_stream.operators.video.live import LiveSource
from clara_stream.operators.video.live_queue import DroppingQueue, StreamClock
from clara_stream.operators.video.source import VideoSource
from clara_stream.operators.video.testing_streams import FFMPEG, FFPROBE, free_port, probe_stream, send_tcp, stop

from clara_stream.runtime import load_app
from clara_stream.samples.video import write_sample


@pytest.fixture(scope="module")
def ff(peer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return {"ffmpeg": peer(FFMPEG, ["-version"], "ffmpeg version"), "ffprobe": peer(FFPROBE, ["-version"], "ffprobe")}


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Path]]:
    """Two different scenes (held-out seeds), 320×180 and 256×144: sizes differ on purpose."""
    d = tmp_path_factory.mktemp("two")
    return [write_sample(d / "a", seed=5, width=320, height=180, frames=40, fps=25),
            write_sample(d / "b", seed=6, width=256, height=144, frames=40, fps=25)]


def test_two_live_streams_batched_keep_each_streams_detections(ff: dict, two_clips: list, tmp_path: Path) -> None:
    """Two streams, one batched model call per tick, outputs split back per source.

    Fails if items are mixed between sources (each stream's KITTI is scored against its own
    ground truth, and against the other's it must score far worse), if boxes are mapped with
    the wrong letterbox (the two sizes differ), or if the model is called per frame.
    """
    ports = [free_port(), free_port()]
    senders = [send_tcp(ff["ffmpeg"], c["video"], p) for c, p in zip(two_clips, ports, strict=True)]
    try:
        app = load_app("video_detection_multi", input="\n".join(f"tcp://127.0.0.1:{p}" for p in ports),
                       output=tmp_path / "out", overrides=["batcher.queue_size=64", "batcher.max_batches=40",
                                                           "batcher.timeout_s=10.0"])  # a stall splits no tick
        app.run()
    finally:
        for s in senders:
            stop(s)
    s = app.summary
    assert [st["frames"] for st in s["streams"]] == [40, 40] and [st["dropped"] for st in s["streams"]] == [0, 0]
    assert s["inference_calls"] == s["batches"] == 40  # 80 frames, 40 calls: batches of two
    for k, clip in enumerate(two_clips):
        own = evaluate_kitti(tmp_path / "out" / f"stream_{k}" / "kitti", clip["ground_truth"], iou_threshold=0.5)
        other = evaluate_kitti(tmp_path / "out" / f"stream_{k}" / "kitti", two_clips[1 - k]["ground_truth"],
                               iou_threshold=0.5)
        assert own.recall >= 0.75 and own.precision >= 0.9, (k, own)
        assert other.recall < own.recall / 2, (k, other)
        probed = probe_stream(ff["ffprobe"], tmp_path / "out" / f"stream_{k}" / "output.mp4")
        assert int(probed["nb_read_frames"]) == 40 and probed["r_frame_rate"] == "25/1"
        assert (int(probed["width"]), int(probed["height"])) == ((320, 180), (256, 144))[k]


def test_a_stalled_stream_is_left_out_of_the_tick_after_the_timeout(ff: dict, two_clips: list) -> None:
    """SIGSTOP one sender: batches go on with the other alone, the stalled one listed as missing."""
    ports = [free_port(), free_port()]
    senders = [send_tcp(ff["ffmpeg"], c["video"], p, loop=True) for c, p in zip(two_clips, ports, strict=True)]
    sources = [LiveSource(f"tcp://127.0.0.1:{p}", queue_size=4, timeout_s=10).open() for p in ports]
    try:
        batcher = FrameBatcher(sources, timeout_s=0.2)
        assert max(len(batcher.next()) for _ in range(5)) == 2  # both streams flowing: batches of two
        os.kill(senders[1].pid, signal.SIGSTOP)
        for _ in range(10):  # drain what stream 1 had queued; its ticks then time out
            batcher.next()
        solo = [batcher.next() for _ in range(5)]
        os.kill(senders[1].pid, signal.SIGCONT)
    finally:
        for src in sources:
            src.close()
        for s in senders:
            os.kill(s.pid, signal.SIGCONT)
            stop(s)
    assert all([i.source for i in b.items] == [0] and b.missing == (1,) for b in solo)
    assert batcher.missed[1] >= 5


def test_batcher_ends_sources_independently(small_clip: dict, clip: dict) -> None:
    """Files of 40 and 90 frames: 90 ticks, the first 40 with both, the rest with the longer one only."""
    sources = [VideoSource(small_clip["video"]).start(), VideoSource(clip["video"]).start()]
    try:
        batcher = FrameBatcher(sources, timeout_s=1.0)
        sizes = []
        while (b := batcher.next()) is not None:
            sizes.append([i.source for i in b.items])
            assert [i.info.index for i in b.items] == [len(sizes) - 1] * len(b.items)  # same tick, same frame
    finally:
        for s in sources:
            s.close()
    assert sizes == [[0, 1]] * 40 + [[1]] * 50


def test_dropping_queue_policies_by_hand() -> None:
    """Closed form: 7 puts into a queue of 3. Fails if the policies are swapped or drops uncounted."""
    old, new = DroppingQueue(3, "drop_oldest"), DroppingQueue(3, "drop_newest")
    for i in range(7):
        old.put(i), new.put(i)
    assert [old.get(0) for _ in range(3)] == [4, 5, 6] and old.dropped == 4
    assert [new.get(0) for _ in range(3)] == [0, 1, 2] and new.dropped == 4
    assert old.high_water == new.high_water == 3
    with pytest.raises(TimeoutError):
        old.get(0)
    with pytest.raises(ValueError, match="expected drop_policy in"):
        DroppingQueue(3, "block")


def test_stream_clock_charges_buffering_to_the_frame() -> None:
    """Arrivals (s) for stream times 0, .04, .08, .12: the least-delayed packet fixes the offset.

    Frame 0 arrived 50 ms late relative to frame 1's path: once frame 1 is seen, later frames are
    stamped from its offset, so a frame held 30 ms in a buffer (frame 3) is charged 30 ms.
    """
    clock = StreamClock()
    sent = [clock.sent_at(t, a) for t, a in [(0.0, 10.05), (0.04, 10.04), (0.08, 10.08), (0.12, 10.15)]]
    assert sent[0] == pytest.approx(10.05) and sent[1] == pytest.approx(10.04)
    assert sent[2] == pytest.approx(10.08) and sent[3] == pytest.approx(10.12)  # 10.15 − 10.12: 30 ms charged
    clock.reset()
    assert clock.sent_at(5.0, 20.0) == pytest.approx(20.0)


@pytest.mark.parametrize("processes", ["true", "false"])
def test_cli_takes_repeated_inputs_for_the_multi_source_app(small_clip: dict, clip: dict, tmp_path: Path,
                                                            processes: str) -> None:
    """`--input A --input B`: two streams, outputs per source; fails if the CLI keeps only one.
    Both ways of running the streams' codecs: worker processes (the default) and threads."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection_multi", "--input",
           str(small_clip["video"]), "--input", str(clip["video"]), "--output", str(tmp_path / "out"),
           "--set", f"batcher.processes={processes}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for k, frames in enumerate([40, 90]):
        kitti = sorted((tmp_path / "out" / f"stream_{k}" / "kitti").glob("*.txt"))
        assert [p.name for p in kitti] == [f"{i:06d}.txt" for i in range(frames)]
    # not the batch count: a loaded box may split a tick at batcher.timeout_s (a count would time the box)
    assert "video_detection_multi: 2 streams," in done.stdout


def test_slowed_model_in_the_graph_drops_counted_frames_and_stays_near_live(ff: dict, small_clip: dict) -> None:
    """Live decoder → a 'model' slowed to 0.12 s/frame (vs 25 fps) → sink, on the real engine.

    Fails if the live queue blocks the sender's clock (no drops: latency would grow by 0.08 s per
    frame), if drops go uncounted, or if the queue grows past its size: every frame the slow
    stage gets is at most queue_size + 2 frames behind the newest one decoded.
    """
    import time

    from clara_stream.operators.video.decoder_op import VideoDecoderOp
    from clara_stream.operators.video.testing import CollectOp, GraphApp

    from clara_stream import ports as P
    from clara_stream.contracts import ANY
    from clara_stream.runtime import Operator, Port

    class SlowModelOp(Operator):
        inputs, outputs = (Port(P.FRAME_IN, ANY),), (Port(P.FRAME_OUT, ANY),)

        def __init__(self, fragment, *args, decoder=None, **kwargs):  # type: ignore[no-untyped-def]
            self.decoder, self.lag = decoder, []
            super().__init__(fragment, *args, **kwargs)

        def compute(self, op_input, op_output, context):  # type: ignore[no-untyped-def]
            frame = self.receive(op_input, P.FRAME_IN)
            self.lag.append(self.decoder.source.decoded - 1 - self.get_meta(P.FRAME_INFO).index)
            time.sleep(0.12)  # the injected model delay
            self.emit(op_output, frame, P.FRAME_OUT)

    port, ops = free_port(), {}
    sender = send_tcp(ff["ffmpeg"], small_clip["video"], port, loop=True)

    def build(app: GraphApp) -> None:
        ops["dec"] = VideoDecoderOp(app, name="decoder", path=f"tcp://127.0.0.1:{port}", queue_size=3,
                                    max_frames=15)
        ops["slow"] = SlowModelOp(app, name="slow", decoder=ops["dec"])
        ops["sink"] = CollectOp(app, name="sink", port=P.FRAME)
        app.add_flow(ops["dec"], ops["slow"], {(P.FRAME, P.FRAME_IN)})
        app.add_flow(ops["slow"], ops["sink"], {(P.FRAME_OUT, P.FRAME)})

    try:
        GraphApp(build).run()
    finally:
        stop(sender)
    st = ops["dec"].stats
    assert len(ops["sink"].values) == 15 and st["dropped"] > 0 and st["queue_high_water"] <= 3
    assert st["decoded"] >= st["dropped"] + 15  # each frame decoded was emitted, dropped, or still queued
    assert max(ops["slow"].lag[3:]) <= 3 + 2, ops["slow"].lag  # bounded: the queue, plus one in each port


def test_stream_output_draws_writes_kitti_and_feeds_sinks_in_order_and_reraises(tmp_path: Path) -> None:
    """One source's outputs off the graph thread (StreamOutput): per frame the boxes drawn on the
    pixels the sinks get, its KITTI file, in submit order; a sink failure comes back to the producer.

    Fails if the worker drops or reorders frames, writes KITTI for the wrong index, hands the sinks
    the undrawn frame, or swallows a sink's error (the run would end "successfully" short).
    """
    import numpy as np
    from clara_stream.operators.video.detections import Detections
    from clara_stream.operators.video.kitti import read_kitti
    from clara_stream.operators.video.stream_output import StreamOutput

    from clara_stream.geometry import FrameInfo

    class Sink:
        def __init__(self, fail_at: int = -1) -> None:
            self.got: list[tuple[int, np.ndarray]] = []
            self.fail_at = fail_at

        def write(self, rgb: np.ndarray, info: FrameInfo, read_at: float) -> None:
            if info.index == self.fail_at:
                raise OSError(28, "No space left on device")
            self.got.append((info.index, rgb.copy()))

    det = Detections(np.array([[10.0, 12.0, 50.0, 40.0]], np.float32), np.array([0.9], np.float32),
                     np.array([0], np.int32), ("tool",))
    sinks = [Sink(), Sink()]
    out = StreamOutput(tmp_path / "k", sinks, queue_size=2)
    blank = np.zeros((72, 96, 3), np.uint8)
    blank.flags.writeable = False  # a decoded frame may be read-only: the worker draws on a copy
    for i in range(7):
        out.submit(blank, FrameInfo(i, Fraction(1, 25), i, Fraction(25)), 0.0, det)
    out.close()
    for sink in sinks:
        assert [i for i, _ in sink.got] == list(range(7))
        # the box's left edge (x=10, rows 12..40) is drawn, its inside below the label is not; input stays blank
        assert all(rgb[32:39, 10].any() and not rgb[32:39, 30].any() for _, rgb in sink.got)
    assert not blank.any() and out.kitti_files == 7
    assert [p.name for p in sorted((tmp_path / "k").glob("*.txt"))] == [f"{i:06d}.txt" for i in range(7)]
    np.testing.assert_allclose(read_kitti(tmp_path / "k" / "000003.txt", ["tool"]).boxes, det.boxes, atol=0.01)

    bad = StreamOutput(tmp_path / "k2", [Sink(fail_at=2)], queue_size=1)
    with pytest.raises(OSError, match="No space left"):
        for i in range(50):  # the failure reaches submit() once the worker has hit it, or close()
            bad.submit(blank, FrameInfo(i, Fraction(1, 25), i, Fraction(25)), 0.0, det)
        bad.close()


def test_batch_outputs_stop_closes_every_stream_when_one_fails_with_an_unexpected_error(tmp_path: Path) -> None:
    """Stream 1's output raises an IndexError (not OSError: a bad box, a cv2.error): stop() still
    stops every stream's worker, finalises every MP4 and restores OpenCV's threads, then raises
    the failure naming the stream.

    Fails if stop() gives up at the failing stream (the other workers left blocked in queue.get(),
    their MP4s never finalised), or the error does not say which stream it came from.
    """
    import threading

    import av
    import cv2
    import numpy as np
    from clara_stream.operators.video.batch_output_op import BatchOutputOp
    from clara_stream.operators.video.detections import Detections

    from clara_stream.geometry import FrameInfo
    from clara_stream.runtime import Application

    class BadLive:
        closed = False

        def write(self, rgb: np.ndarray, info: FrameInfo, read_at: float | None = None) -> None:
            raise IndexError("list index out of range")

        def close(self) -> None:
            self.closed = True

    cv2_before = cv2.getNumThreads()
    op = BatchOutputOp(Application(), folder=tmp_path, streams=3, opencv_threads=1)
    bad = BadLive()
    op.live = [None, bad, None]  # stream 1's live output fails; 0 and 2 have none
    op.start()
    det = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), ("tool",))
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(6):
        for k in (0, 2):
            op.workers[k].submit(frame, FrameInfo(i, Fraction(1, 25), i, Fraction(25)), 0.0, det)
    op.workers[1].submit(frame, FrameInfo(0, Fraction(1, 25), 0, Fraction(25)), 0.0, det)
    with pytest.raises(RuntimeError, match=r"BatchOutputOp\[1\]: expected .*got IndexError\(.list index out of range"):
        op.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("BatchOutputOp[")]
    assert bad.closed and cv2.getNumThreads() == cv2_before
    for k, frames in ((0, 6), (1, 1), (2, 6)):  # finalised: the MP4 opens and every frame decodes
        with av.open(str(tmp_path / f"stream_{k}" / "output.mp4")) as mp4:
            assert sum(1 for _ in mp4.decode(video=0)) == frames, k
