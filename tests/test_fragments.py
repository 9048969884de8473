"""One app as Holoscan fragments over UCX, through the seam: contracts, values and metadata intact."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clara_stream.operators.video.detections import Detections

from clara_stream import ports as P
from clara_stream.contracts import Contract, Kind
from clara_stream.errors import GraphValidationError
from clara_stream.geometry import FrameInfo, ImageGeometry
from clara_stream.runtime import Application, CountCondition, Operator, Port
from clara_stream.runtime.network import DistributedRun, reserve_port

F32 = Contract(kind=Kind.TENSOR, dtypes=("float32",), ndim=2)
U8 = Contract(kind=Kind.TENSOR, dtypes=("uint8",), ndim=2)
MAP = Contract(kind=Kind.TENSOR_MAP)
OBJ = Contract(kind=Kind.OBJECT)
# anisotropic spacing and a rotated direction: a dropped or default geometry cannot compare equal
GEOM = ImageGeometry(origin=(-12.5, 3.0, 40.0), spacing=(0.7, 0.9, 2.5),
                     direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))


class Src(Operator):
    """Per message: a 1 MiB float32 frame (above Holoscan's 128 KiB object buffer), a tensor map and
    a Detections object, each with frame_info, geometry and a clock in the metadata."""

    outputs = (Port(P.FRAME, F32), Port(P.TENSOR, MAP), Port(P.DETECTIONS, OBJ))

    def __init__(self, fragment: Any, *args: Any, **kw: Any) -> None:
        self.sent: list[tuple[Any, ...]] = []
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        i = len(self.sent)
        rng = np.random.default_rng(i)
        frame = rng.standard_normal((512, 512), dtype=np.float32)
        tmap = {"logits": rng.standard_normal((3, 7), dtype=np.float32), "ids": np.arange(5, dtype=np.int64) + i}
        det = Detections(boxes=rng.random((2, 4), dtype=np.float32), scores=np.array([0.9, 0.4], np.float32),
                         class_ids=np.array([1, 0], np.int32), labels=("polyp", "tool"))
        info = FrameInfo(pts=1001 * i, time_base=Fraction(1, 30000), index=i, rate=Fraction(30000, 1001))
        meta = {"frame_info": info, "geometry": GEOM, "frame_clock": 1234.5 + i}
        self.sent.append((frame, tmap, det, meta))
        self.emit(op_output, frame, P.FRAME, meta=meta)
        self.emit(op_output, tmap, P.TENSOR)
        self.emit(op_output, det, P.DETECTIONS)


class Sink(Operator):
    inputs = (Port(P.FRAME, F32), Port(P.TENSOR, MAP), Port(P.DETECTIONS, OBJ))

    def __init__(self, fragment: Any, *args: Any, contract: Contract = F32, **kw: Any) -> None:
        self.inputs = (Port(P.FRAME, contract), *type(self).inputs[1:])
        self.got: list[tuple[Any, ...]] = []
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        values = tuple(self.receive(op_input, p) for p in (P.FRAME, P.TENSOR, P.DETECTIONS))
        meta = {k: self.get_meta(k) for k in ("frame_info", "geometry", "frame_clock")}
        self.got.append((*values, meta))


class TwoFragments(Application):
    def __init__(self, sink: dict | None = None) -> None:
        self.sink_kw = sink or {}
        super().__init__({"app": {"fragments": True}}, name="two_fragments")

    def compose(self) -> None:
        edge, server = self.fragment("edge"), self.fragment("server")
        self.src = Src(edge, CountCondition(edge, 3), name="src")
        self.sink = Sink(server, name="sink", **self.sink_kw)
        self.add_flow(self.src, self.sink, {(P.FRAME, P.FRAME), (P.TENSOR, P.TENSOR), (P.DETECTIONS, P.DETECTIONS)})


def test_contracts_are_checked_across_a_fragment_edge() -> None:
    app = TwoFragments(sink={"contract": U8})
    with pytest.raises(GraphValidationError) as info:
        app.run()
    text = str(info.value)
    assert "edge src.frame -> sink.frame: dtype mismatch: producer emits float32, consumer expects uint8" in text
    assert app.src.sent == []


def test_arrays_tensor_maps_and_metadata_cross_unchanged() -> None:
    """Fails if tensors arrive as Holoscan's {'#numpy: tensor': …} wrapper, metadata as None, or the
    1 MiB frame goes through the 128 KiB object buffer (the send then fails)."""
    app = TwoFragments()
    app.run()
    assert len(app.sink.got) == 3
    for (frame, tmap, det, meta), (g_frame, g_map, g_det, g_meta) in zip(app.src.sent, app.sink.got):
        assert type(g_frame) is np.ndarray and g_frame.dtype == np.float32
        np.testing.assert_array_equal(g_frame, frame)
        assert set(g_map) == {"logits", "ids"}
        np.testing.assert_array_equal(np.asarray(g_map["logits"]), tmap["logits"])
        np.testing.assert_array_equal(np.asarray(g_map["ids"]), tmap["ids"])
        assert np.asarray(g_map["ids"]).dtype == np.int64
        assert isinstance(g_det, Detections) and g_det.labels == det.labels
        np.testing.assert_array_equal(g_det.boxes, det.boxes)
        assert g_meta == meta  # FrameInfo with Fractions, rotated geometry, clock


@pytest.fixture
def driver_address() -> Any:
    """A driver address whose port the test holds for the run (never freed for another process to take)."""
    with reserve_port() as held:
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clara_stream.samples import write_sample

    return write_sample("video", tmp_path_factory.mktemp("v"), frames=10, width=160, height=96)["video"]


def test_video_detection_on_two_processes_matches_one(video: Path, tmp_path: Path, driver_address: str) -> None:
    """device (decode + preprocess) and server (inference … KITTI) as two processes on loopback write
    the same KITTI files, byte for byte, as the single-process graph. Both processes start at once:
    without ports reserved per worker both workers took Holoscan's first free port (10000) and the
    driver waited forever for the second (network.py)."""
    av = pytest.importorskip("av")
    cli = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection"]
    one = subprocess.run([*cli, "-i", str(video), "-o", str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr
    address = driver_address
    server = subprocess.Popen([*cli, "-o", str(tmp_path / "two"), "--driver", "--worker", "--fragments", "server",
                               "--address", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        device = subprocess.run([*cli, "-i", str(video), "--worker", "--fragments", "device", "--address", address],
                                capture_output=True, text=True, timeout=300)
        out, err = server.communicate(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
    assert device.returncode == 0, device.stderr
    assert server.returncode == 0, err
    names = sorted(p.name for p in (tmp_path / "one/kitti").iterdir())
    assert len(names) == 10 and names == sorted(p.name for p in (tmp_path / "two/kitti").iterdir())
    for name in names:
        assert (tmp_path / "two/kitti" / name).read_bytes() == (tmp_path / "one/kitti" / name).read_bytes()
    assert any((tmp_path / "one/kitti" / n).read_text().strip() for n in names)  # boxes were found to compare
    with av.open(str(tmp_path / "two/output.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10


def test_bench_tracks_paths_across_the_fragments(video: Path, tmp_path: Path) -> None:
    """The bench worker's tracking log holds paths that start on the device and end on the server, and
    the encoder's glass-to-glass clocks (metadata set by the decoder) survive the crossing."""
    from clara_stream.bench.flowlog import by_path, parse_file
    from clara_stream.bench.worker import run_once

    log = tmp_path / "flow.log"
    facts = run_once("video_detection", log=log, config=None,
                     overrides=[f"app.input={video}", f"app.output={tmp_path / 'out'}", "app.fragments=true"])
    paths = by_path(parse_file(log))
    crossing = [p for p in paths if "device.decoder" in p and "server.encoder" in p]
    assert crossing and all(len(paths[p]) == 10 for p in crossing)
    (glass,) = facts["glass"]
    assert glass["operator"] == "encoder" and len(glass["clocks"]) == 10
    assert all(c == sorted(c) for c in glass["clocks"])  # read → emitted → received → written, per frame


def test_a_message_lost_over_a_fragment_edge_fails_the_run() -> None:
    """Holoscan can drop messages between fragments (seen under load); the sequence number our runtime
    sends with each one turns a gap into an error. Here the gap is made by hand: message 2 arrives first."""
    from clara_stream.runtime.fragment import SEQ_KEY, pack

    class Skipper(Operator):
        outputs = (Port(P.FRAME),)  # what crosses is a packed tensor map

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.emit(op_output, pack(np.zeros((2, 2), np.float32), {SEQ_KEY: 2}), P.FRAME)

    class Rx(Operator):
        inputs = (Port(P.FRAME),)

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.receive(op_input, P.FRAME)

    class GapApp(Application):
        def compose(self) -> None:
            self.add_flow(Skipper(self, CountCondition(self, 1), name="src"), Rx(self, name="rx"), {(P.FRAME, P.FRAME)})

    with pytest.raises(RuntimeError, match=r"rx'.frame: expected message 1 over the fragment edge; got message 2 "
                                           r"\(1 lost in transit\)"):
        GapApp().run()


def test_a_reserved_port_is_held_for_the_engine_alone() -> None:
    """The kernel's own rules are the oracle: while held, a plain bind to the port fails (no other
    process or bind(0) gets it), and a server that sets SO_REUSEADDR, as gRPC and UCX with
    UCX_TCP_CM_REUSEADDR=y do, binds and listens on it. Fails if the reservation is released early."""
    with reserve_port() as held:
        port = held.getsockname()[1]
        with socket.socket() as other, pytest.raises(OSError) as info:
            other.bind(("0.0.0.0", port))
        assert info.value.errno == errno.EADDRINUSE
        with socket.socket() as engine:
            engine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            engine.bind(("0.0.0.0", port))
            engine.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass


def test_each_worker_gets_a_port_of_its_own() -> None:
    """Two workers on one host (no --worker-address port) get different, held ports; Holoscan alone
    probes upward from 10000 and two workers starting together both took 10000 (the CI hang)."""
    runs = [DistributedRun(["--worker", "--fragments", "device", "--address", "127.0.0.1:45678"]) for _ in range(2)]
    try:
        addresses = [r.engine_args[r.engine_args.index("--worker-address") + 1] for r in runs]
        assert addresses[0] != addresses[1] and all(a.startswith("127.0.0.1:") for a in addresses)
        for address in addresses:
            with socket.socket() as other, pytest.raises(OSError):
                other.bind(("0.0.0.0", int(address.rsplit(":", 1)[1])))
        given = DistributedRun(["--worker", "--address", "10.1.2.3:8765", "--worker-address", "10.1.2.4:9000"])
        assert given.engine_args[-2:] == ["--worker-address", "10.1.2.4:9000"]  # the user's choice is kept
    finally:
        for r in runs:
            r.close()


_TWO_FRAGMENTS = """
import sys
sys.path.insert(0, {tests!r})
from test_fragments import TwoFragments
app = TwoFragments()
app.run()
print("received", len(app.sink.got))
"""


def test_two_apps_with_fragments_at_once_each_get_their_own_ucx_ports() -> None:
    """Two apps with fragments starting together on one host: Holoscan alone gave both the UCX ports
    10000-10002 ("Failed to listen", or "Failed to establish connection" to the other app's receiver);
    with ports reserved per run both receive all three messages."""
    script = _TWO_FRAGMENTS.format(tests=str(Path(__file__).parent))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        results = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and "received 3" in out, err[-3000:]


def test_a_worker_whose_driver_never_listens_fails_naming_the_address(video: Path, driver_address: str) -> None:
    """Bounded: the worker waits CLARA_STREAM_CONNECT_TIMEOUT_S for its driver, then one line names the
    address (Holoscan alone gave up after ten 1 s retries and the run said 'no operator ran')."""
    env = {**os.environ, "CLARA_STREAM_CONNECT_TIMEOUT_S": "2"}
    cli = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "-i", str(video), "--worker",
           "--fragments", "device", "--address", driver_address]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode not in (0, None)
    assert (f"expected the driver at {driver_address} to accept connections within 2 s; got Connection refused"
            in done.stderr), done.stderr[-3000:]


def test_a_driver_whose_other_worker_never_joins_fails_fast(tmp_path: Path, driver_address: str) -> None:
    """The driver+server process, with the device worker never started, fails after the bound naming the
    fragments and the driver's address, instead of waiting forever ('1/2 fragments scheduled')."""
    env = {**os.environ, "CLARA_STREAM_CONNECT_TIMEOUT_S": "3"}
    cli = [sys.executable, "-m", "clara_stream.cli", "run", "video_detection", "-o", str(tmp_path / "out"),
           "--driver", "--worker", "--fragments", "server", "--address", driver_address]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode not in (0, None)
    assert (f"expected fragments server to start within 3 s of joining the driver at {driver_address}; got none "
            "started" in done.stderr), done.stderr[-3000:]
