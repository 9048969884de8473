"""Pure video library: decode/encode round trip, colour conversion, letterbox, NMS, KITTI, pacing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clara_stream.operators.video.colour import frame_to_rgb, rgb_to_i420
from clara_stream.operators.video.detections import Detections, Letterbox, iou_matrix, nms, postprocess
from clara_stream.operators.video.evaluate import match_frame
from clara_stream.operators.video.kitti import kitti_lines, read_kitti, write_kitti
from clara_stream.operators.video.preprocess import letterbox_image
from clara_stream.operators.video.sink import VideoSink
from clara_stream.operators.video.source import Pacer, VideoSource, probe

from clara_stream.samples.video import load_ground_truth, render_scene


def test_sample_ground_truth_matches_video(clip: dict[str, Path]) -> None:
    info = probe(clip["video"])
    gt = load_ground_truth(clip["ground_truth"])
    assert (info.codec, info.width, info.height, info.frames, info.rate) == ("h264", 640, 360, 90, 30)
    assert gt["frames"] == len(gt["boxes"]) == 90 and gt["classes"] == ["instrument", "polyp"]
    boxes = np.array([o["box"] for f in gt["boxes"] for o in f])
    assert len(boxes) > 90 and (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 360).all()
    # deterministic: the same seed renders the same pixels and boxes
    a, b = next(render_scene(seed=3)), next(render_scene(seed=3))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_colour_conversion_matches_pyav_swscale(clip: dict[str, Path]) -> None:
    with av.open(str(clip["video"])) as c:
        frame = next(c.decode(video=0))
        ours, ref = frame_to_rgb(frame), frame.to_ndarray(format="rgb24")
    assert ours.shape == ref.shape == (360, 640, 3)
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 2.0
    back = rgb_to_i420(ours)
    assert back.shape == (540, 640)
    with pytest.raises(ValueError, match="even height and width"):
        rgb_to_i420(np.zeros((5, 8, 3), np.uint8))


def test_source_to_sink_round_trip_keeps_count_rate_and_duration(clip: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "copy.mp4"
    with VideoSource(clip["video"], queue_size=4) as src, VideoSink(out, preset="ultrafast") as sink:
        infos = []
        for f in src:
            sink.write(f.rgb, f.info)
            infos.append(f.info)
    assert [i.index for i in infos] == list(range(90))
    a, b = probe(clip["video"]), probe(out)
    assert (b.frames, b.rate, b.width, b.height) == (a.frames, a.rate, a.width, a.height)
    assert abs(b.duration_s - a.duration_s) < 1e-3


def test_raw_h264_bitstream_decodes(clip: dict[str, Path], tmp_path: Path) -> None:
    raw = tmp_path / "clip.h264"
    with av.open(str(clip["video"])) as src, av.open(str(raw), "w", format="h264") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        for pkt in src.demux(s_in):
            if pkt.dts is not None:
                pkt.stream = s_out
                dst.mux(pkt)
    frames = list(VideoSource(raw))
    assert len(frames) == 90
    times = [f.info.time_s for f in frames]
    assert all(t1 > t0 for t0, t1 in zip(times, times[1:], strict=False))


def test_fragmented_sink_is_playable_and_streamable(tmp_path: Path) -> None:
    out = tmp_path / "frag.mp4"
    with VideoSink(out, preset="ultrafast", fragmented=True, gop=5) as sink:
        for i in range(15):
            sink.write(np.full((48, 64, 3), i * 10, np.uint8), _info(i))
    data = out.read_bytes()
    assert data.count(b"moof") >= 3 and b"mvex" in data
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15


def _info(i: int):  # noqa: ANN202
    from clara_stream.geometry import FrameInfo

    return FrameInfo(i, Fraction(1, 30), i, Fraction(30))


def test_sink_rejects_bad_frames(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8 RGB; got \(5, 6\) .*x\.mp4"):
        sink.write(np.zeros((5, 6), np.uint8), _info(0))
    sink.write(np.zeros((8, 8, 3), np.uint8), _info(0))
    with pytest.raises(ValueError, match="expected frames of"):
        sink.write(np.zeros((16, 16, 3), np.uint8), _info(1))
    assert sink.close() == 1 and sink.padded is None


def test_letterbox_round_trip_and_image() -> None:
    lb = Letterbox.fit((720, 1280), (320, 192))
    assert lb.scale == 0.25 and lb.resized_wh == (320, 180) and (lb.pad_x, lb.pad_y) == (0, 6)
    boxes = np.array([[100, 50, 300, 400], [0, 0, 1280, 720]], np.float32)
    np.testing.assert_allclose(lb.to_frame(lb.to_model(boxes)), boxes, atol=1e-3)
    img, lb2 = letterbox_image(np.zeros((480, 640, 3), np.uint8), (320, 192))
    assert img.shape == (192, 320, 3) and lb2.pad_x == 32 and img[100, 10, 0] == 114 and img[100, 160, 0] == 0


def test_letterbox_downscale_is_the_block_mean() -> None:
    """720p → 320×180 (a 4× downscale, as the app's model input): each pixel is the mean of its 4×4
    block (numpy, the oracle) to within one grey level, on noise with a bright off-centre square.

    Fails if the image is resampled by point or bilinear sampling (aliasing on noise: errors of
    tens of levels), if an axis is swapped, or if the halving steps misplace the image.
    """
    rgb = np.random.default_rng(5).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    rgb[100:180, 900:1020] = 250
    img, lb = letterbox_image(rgb, (320, 192))
    oracle = rgb.reshape(180, 4, 320, 4, 3).astype(float).mean(axis=(1, 3))
    got = img[int(lb.pad_y) : int(lb.pad_y) + 180].astype(float)
    assert (lb.pad_y, img.shape) == (6, (192, 320, 3)) and np.abs(got - oracle).max() <= 1.0


def test_nms_and_postprocess() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.5).tolist() == [1, 2]
    assert iou_matrix(boxes[:1], boxes[:1])[0, 0] == pytest.approx(1.0)
    lb = Letterbox(1.0, 0, 0, 100, 100)
    scores = np.array([[0.9, 0.1], [0.8, 0.85], [0.1, 0.2]], np.float32)
    det = postprocess(boxes, scores, lb, ("a", "b"), score_threshold=0.5, iou_threshold=0.5)
    assert det.names() == ["a", "b"] and det.scores.tolist() == pytest.approx([0.9, 0.85])  # NMS is per class
    with pytest.raises(ValueError, match="one per label"):
        postprocess(boxes, scores, lb, ("a",))


def test_kitti_lines_and_matching(tmp_path: Path) -> None:
    det = Detections(np.array([[10, 20, 30, 40]], np.float32), np.array([0.5], np.float32), np.array([1]), ("x", "y"))
    (line,) = kitti_lines(det)
    cols = line.split()
    assert len(cols) == 16 and cols[0] == "y" and cols[15] == "0.5000" and cols[1:4] == ["0.0", "0", "0.0"]
    path = write_kitti(tmp_path, 7, det)
    assert path.name == "000007.txt" and len(read_kitti(path, ("x", "y"))) == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("y 0 0 0 1 2 3\n")
    with pytest.raises(ValueError, match="expected 16 columns; got 7"):
        read_kitti(bad)
    s = match_frame(det.boxes, det.scores, [1], np.array([[11, 21, 31, 41], [0, 0, 5, 5]]), [1, 0])
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)


def test_pacer_paces_and_drops_late_frames() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(drop_policy="drop_late", late_tolerance_s=0.02, clock=lambda: now[0], sleep=sleep)
    assert pacer.admit(0.0) and pacer.admit(0.05)
    assert slept == [pytest.approx(0.05)]  # waited for the second frame's presentation time
    now[0] += 0.1  # the consumer fell behind: the frame due at 0.1 s is 50 ms late
    assert not pacer.admit(0.1) and pacer.dropped == 1
    keep = Pacer(drop_policy="none", late_tolerance_s=0.0, clock=lambda: now[0], sleep=sleep)
    keep.admit(0.0)
    now[0] += 0.05
    assert keep.admit(0.01) and keep.dropped == 0  # released late, nothing lost
    assert keep.admit(0.02) and slept[-1] == pytest.approx(0.01)  # the timeline slid: paced from there
    with pytest.raises(ValueError, match="drop_policy"):
        Pacer(drop_policy="newest")


def test_pacer_wait_and_late_with_a_fake_clock() -> None:
    """wait() sleeps to the due time and returns lateness; late() drops only under drop_late.

    Fails if a late packet is slept on, if lateness is misreported, or if "none" drops frames.
    """
    now = [10.0]

    def sleep(s: float) -> None:
        now[0] += s

    p = Pacer(drop_policy="drop_late", late_tolerance_s=0.03, clock=lambda: now[0], sleep=sleep)
    assert p.wait(0.0) == 0.0 and p.wait(0.1) == 0.0 and now[0] == pytest.approx(10.1)
    now[0] += 0.15  # held by a full queue
    assert p.wait(0.2) == pytest.approx(0.05) and p.late(0.05) and p.dropped == 1
    assert not p.late(0.01) and p.released == 1
    keep = Pacer(drop_policy="none", late_tolerance_s=0.03, clock=lambda: now[0], sleep=sleep)
    keep.wait(0.0)
    now[0] += 0.2
    assert keep.wait(0.1) == pytest.approx(0.1) and not keep.late(0.1) and keep.dropped == 0
    t = now[0]
    keep.wait(0.2)  # the timeline slid by 0.1 s: the next packet is due 0.1 s from the slide
    assert now[0] == pytest.approx(t + 0.1)


def test_paced_source_reads_packets_at_their_decode_time(small_clip: dict[str, Path], peer) -> None:  # noqa: ANN001
    """Realtime: the decode thread asks the pacer for every packet's decode time, in file order.

    Fails if frames are paced after a read-ahead (the glass clock would start early) or if a
    frame the pacer calls late is still delivered. Oracle: the packets' dts read with ffprobe.
    """
    import json
    import subprocess

    ffprobe = str(peer("/usr/bin/ffprobe", ["-version"], "ffprobe version"))
    out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=dts_time", "-of", "json", str(small_clip["video"])],
                         capture_output=True, text=True, check=True)
    dts = [float(p["dts_time"]) for p in json.loads(out.stdout)["packets"]]

    class Recorder(Pacer):
        def __init__(self) -> None:
            super().__init__(drop_policy="drop_late")
            self.asked: list[float] = []

        def wait(self, media_time_s: float) -> float:
            self.asked.append(media_time_s)
            return 1.0 if len(self.asked) % 5 == 0 else 0.0  # every 5th packet "arrives" 1 s late

    rec = Recorder()
    with VideoSource(small_clip["video"], pacer=rec) as src:
        frames = list(src)
    np.testing.assert_allclose(rec.asked, np.array(dts) - dts[0], atol=1e-6)
    assert rec.dropped == len(dts) // 5 and len(frames) == len(dts) - rec.dropped
