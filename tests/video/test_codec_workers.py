"""Codec workers (``stream_worker``): each source decoded, drawn and encoded in a process of its own,
frames handed to the batched model through shared memory. Oracles: ffmpeg's own rgb24 decode of
the clip, ffprobe's frame count, the KITTI text read by hand."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.video.detections import Detections
from clara_stream.operators.video.source import SUPPORTED_CODECS
from clara_stream.operators.video.stream_worker import CodecWorkerError, CodecWorkers
from clara_stream.operators.video.testing_streams import FFMPEG, FFPROBE, free_port, probe_stream

from clara_stream.runtime import load_app


@pytest.fixture(scope="module")
def ff(peer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return {"ffmpeg": peer(FFMPEG, ["-version"], "ffmpeg version"), "ffprobe": peer(FFPROBE, ["-version"], "ffprobe")}


def _workers(video: Path, out: Path, *, slots: int, **file: object) -> CodecWorkers:
    w = CodecWorkers(slots=slots)
    w.set_sources([str(video)], live={}, file={"codecs": SUPPORTED_CODECS, "queue_size": 4, "loop": False,
                                               "decode_threads": 1, **file})
    w.set_outputs([{"opencv_threads": 1, "stream": {
        "folder": str(out), "index": 0, "url": None, "tune": "zerolatency", "token": None,
        "opts": {"preset": "ultrafast", "crf": 23, "encode_threads": 1, "owner": "test[0]"}}}])
    return w


def _ffmpeg_rgb(ffmpeg: Path, video: Path, frames: int, shape: tuple[int, int]) -> np.ndarray:
    raw = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(video), "-frames:v", str(frames), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(frames, *shape, 3)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_frames_come_through_shared_slots_in_order_bounded_by_the_detections(ff: dict, small_clip: dict,
                                                                           tmp_path: Path) -> None:
    """Three slots: three frames arrive, read-only, equal to ffmpeg's own decode; a fourth waits until
    detections for the oldest come back; frames in flight are not overwritten; the detections sent
    are the ones drawn into KITTI; the MP4 holds every frame rendered; the segment is gone after.

    Fails if slots are mixed or reused while in flight, if the worker runs ahead of the model
    (unbounded memory), if detections are paired with the wrong frame, or if shared memory leaks.
    """
    video, (h, w) = small_clip["video"], (180, 320)
    ref = _ffmpeg_rgb(ff["ffmpeg"], video, 6, (h, w))
    pool = _workers(video, tmp_path, slots=3)
    (worker,) = pool.start()
    frames = [worker.read(timeout_s=60) for _ in range(3)]
    assert [f.info.index for f in frames] == [0, 1, 2]
    assert all(f.rgb.shape == (h, w, 3) and not f.rgb.flags.writeable for f in frames)
    for k, f in enumerate(frames):  # the frame itself, not a neighbour: ffmpeg's decode is nearest
        assert _diff(f.rgb, ref[k]) < 3 and _diff(f.rgb, ref[k]) < min(_diff(f.rgb, ref[j]) for j in range(6) if j != k)
    with pytest.raises(queue.Empty):
        worker.read(timeout_s=0.5)  # three in flight: the worker waits for detections, it does not read ahead
    box = Detections(boxes=np.array([[10, 20, 61, 93]], np.float32), scores=np.array([0.9], np.float32),
                     class_ids=np.array([0], np.int32), labels=("tool",))
    worker.submit(0, box)
    fourth = worker.read(timeout_s=60)
    assert fourth.info.index == 3 and _diff(fourth.rgb, ref[3]) < 3
    assert _diff(frames[1].rgb, ref[1]) < 3 and _diff(frames[2].rgb, ref[2]) < 3  # still in flight: untouched
    name = worker._shm.name  # type: ignore[union-attr]
    for k in (1, 2, 3):
        worker.submit(k, Detections())
    pool.close()
    kitti = tmp_path / "stream_0" / "kitti"
    assert sorted(p.name for p in kitti.iterdir()) == [f"{i:06d}.txt" for i in range(4)]
    fields = (kitti / "000000.txt").read_text().split()
    assert fields[0] == "tool" and [float(x) for x in fields[4:8]] == [10.0, 20.0, 61.0, 93.0]
    assert (kitti / "000001.txt").read_text().strip() == ""
    assert int(probe_stream(ff["ffprobe"], tmp_path / "stream_0" / "output.mp4")["nb_read_frames"]) == 4
    assert pool.results[0]["frames"] == 4 and pool.results[0]["kitti_files"] == 4
    assert not Path("/dev/shm", name.lstrip("/")).exists()


def test_detections_for_the_wrong_frame_are_refused_by_name(small_clip: dict, tmp_path: Path) -> None:
    """The oldest frame in flight is 0: detections said to be for frame 5 are an error naming both."""
    pool = _workers(small_clip["video"], tmp_path, slots=2)
    (worker,) = pool.start()
    worker.read(timeout_s=60)
    worker.submit(5, Detections())
    with pytest.raises(ValueError, match="expected detections for frame 0; got them for frame 5"):
        pool.close()


def test_a_bad_source_fails_the_run_before_any_output_naming_it(bad_files: dict, small_clip: dict,
                                                               tmp_path: Path) -> None:
    """A missing file, then an unreachable stream, beside a good clip: the worker's own error (its
    type kept across the process boundary), naming the stream and the address, raised before any
    frame is written for either stream."""
    from clara_stream.operators.video.live import LiveInputError
    from clara_stream.operators.video.probe import VideoInputError

    port = free_port()
    cases = [(str(bad_files["missing"]), VideoInputError, r"BatchSourceOp\[1\]: .*missing\.mp4"),
             (f"tcp://127.0.0.1:{port}", LiveInputError,
              rf"BatchSourceOp\[1\]: expected a reachable live video stream; got .*\[tcp://127.0.0.1:{port}\]")]
    for k, (bad, kind, why) in enumerate(cases):
        out = tmp_path / f"out{k}"
        app = load_app("video_detection_multi", input=f"{small_clip['video']}\n{bad}", output=out,
                       overrides=["batcher.retries=0", "batcher.timeout_stream_s=2"])
        with pytest.raises(kind, match=why):
            app.run()
        assert not list(out.rglob("*.mp4")) and not list(out.rglob("*.txt")), bad


def test_a_killed_worker_fails_the_run_naming_its_stream_and_the_other_stream_is_finished(
        ff: dict, small_clip: dict, tmp_path: Path) -> None:
    """kill -9 of stream 1's worker mid-run: the run fails naming BatchSourceOp[1], and stream 0's
    MP4 is finalised with one frame per KITTI file written (its worker was stopped in order)."""
    out = tmp_path / "out"
    app = load_app("video_detection_multi", input=f"{small_clip['video']}\n{small_clip['video']}", output=out,
                   overrides=["batcher.loop=true", "batcher.max_batches=100000"])
    killed: list[int] = []

    def kill_when_running() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pool = getattr(app, "parts", {}).get("batcher")
            kitti = out / "stream_0" / "kitti"
            if pool is not None and pool.workers.workers[1:] and kitti.is_dir() and len(list(kitti.iterdir())) >= 5:
                segments.extend(s.name for w in pool.workers.workers for s in [*w._old, w._shm] if s is not None)
                pid = pool.workers.workers[1].process.pid
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    segments: list[str] = []  # the workers' own: other processes on the box make /dev/shm entries too
    t = threading.Thread(target=kill_when_running, daemon=True)
    t.start()
    with pytest.raises(CodecWorkerError, match=r"BatchSourceOp\[1\]: expected its codec worker running; got it gone"):
        app.run()
    t.join()
    assert killed
    written = len(list((out / "stream_0" / "kitti").glob("*.txt")))
    assert written >= 5
    assert int(probe_stream(ff["ffprobe"], out / "stream_0" / "output.mp4")["nb_read_frames"]) == written
    assert len(segments) == 2 and not [n for n in segments if Path("/dev/shm", n.lstrip("/")).exists()]  # the dead
    # worker's segment too: unlinked by the app
    workers = app.parts["batcher"].workers.workers
    assert all(w.process.exitcode is not None for w in workers)  # none left running


def test_a_resolution_change_gets_new_slots_and_the_sink_names_the_change(ff: dict, tmp_path: Path) -> None:
    """A stream whose size changes (320×240, then 256×144): the worker waits for its slots back, maps
    a new segment and the frames of the new size arrive intact (ffmpeg's decode); the MP4 cannot
    change size, so the sink's error names both sizes. Fails if the old slots were reused for
    bigger frames, or if frames of the new size were refused by the transport instead."""
    from fractions import Fraction

    parts = []
    for size in ("320x240", "256x144"):
        parts.append(tmp_path / f"{size}.h264")
        subprocess.run([str(ff["ffmpeg"]), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                        "-frames:v", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-f", "h264",
                        str(parts[-1])], check=True)
    video = tmp_path / "both.h264"
    video.write_bytes(b"".join(p.read_bytes() for p in parts))
    ref = _ffmpeg_rgb(ff["ffmpeg"], parts[1], 1, (144, 256))[0]
    pool = _workers(video, tmp_path / "out", slots=2, rate=Fraction(25))
    (worker,) = pool.start()
    for i in range(5):
        f = worker.read(timeout_s=60)
        assert f.rgb.shape == (240, 320, 3)
        worker.submit(i, Detections())
    changed = worker.read(timeout_s=60)
    assert changed.info.index == 5 and changed.rgb.shape == (144, 256, 3) and _diff(changed.rgb, ref) < 3
    worker.submit(5, Detections())
    with pytest.raises(ValueError, match=r"expected frames of \(240, 320\); got \(144, 256\)"):
        pool.close()


def test_the_only_scheduler_thread_is_never_held_by_a_source_waiting_for_detections(small_clip: dict,
                                                                                    tmp_path: Path) -> None:
    """One slot per source and one scheduler thread: a source's next frame needs the outputs to run
    first. Fails (hangs, then times out) if the batcher waits for a frame without end: it did, with
    the event and the multithread scheduler on one thread."""
    clip = str(small_clip["video"])
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection_multi", "--input", clip,
           "--input", clip, "--output", str(tmp_path / "out"), "--set", "app.threads=1",
           "--set", "batcher.slots=1", "--set", "batcher.max_batches=20", "--set", "batcher.loop=true"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for k in range(2):
        assert len(list((tmp_path / "out" / f"stream_{k}" / "kitti").glob("*.txt"))) == 20


def test_a_live_stream_in_a_worker_reconnects_and_its_account_reaches_the_summary(ff: dict, small_clip: dict,
                                                                                    tmp_path: Path) -> None:
    """Two live TCP streams, each in its codec worker; stream 1's sender is killed mid-run and
    started again. The worker's source reconnects on its own and frames go on; the reconnection
    (and the drop count) reach latency.json from the worker. Fails if the worker's final account
    is not brought back, or if a lost stream inside a worker ends the run."""
    import json

    from clara_stream.operators.video.testing_streams import send_tcp, stop

    ports = [free_port(), free_port()]
    senders = [send_tcp(ff["ffmpeg"], small_clip["video"], p, loop=True) for p in ports]
    out = tmp_path / "out"
    app = load_app("video_detection_multi", input="\n".join(f"tcp://127.0.0.1:{p}" for p in ports), output=out,
                   overrides=["batcher.max_batches=150", "batcher.retries=50", "batcher.backoff_s=0.05",
                              "batcher.timeout_stream_s=10"])  # the kill ends the stream at once; a stall of 2 s
    # on a loaded box made a second reconnect (stream 0's too)
    at_kill: list[int] = []

    def kill_and_restart() -> None:
        kitti = out / "stream_1" / "kitti"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (kitti.is_dir() and len(list(kitti.iterdir())) >= 15):
            time.sleep(0.05)
        at_kill.append(len(list(kitti.iterdir())))
        os.kill(senders[1].pid, signal.SIGKILL)
        senders[1].wait(timeout=10)
        senders[1] = send_tcp(ff["ffmpeg"], small_clip["video"], ports[1], loop=True)

    t = threading.Thread(target=kill_and_restart, daemon=True)
    t.start()
    try:
        app.run()
    finally:
        t.join(timeout=30)
        for s in senders:
            stop(s)
    streams = json.loads((out / "latency.json").read_text())["streams"]
    events = streams[1]["reconnects"]
    assert len(events) == 1 and events[0]["recovered"] is True, events
    assert streams[0]["reconnects"] == [] and isinstance(streams[1]["dropped"], int)
    assert streams[1]["frames"] > at_kill[0] + 10  # frames after the reconnection were drawn and encoded
