"""The runtime seam on the real Holoscan engine: typed graphs, validation before run, errors, schedulers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clara_stream import arrays
from clara_stream import ports as P
from clara_stream.contracts import Contract, Kind
from clara_stream.errors import ConfigError, ContractViolation, GraphValidationError
from clara_stream.geometry import ImageGeometry
from clara_stream.runtime import Application, CountCondition, Operator, Port, load_app

F32 = Contract(kind=Kind.TENSOR, dtypes=("float32",), ndim=2, domain="image/intensity")
U8 = Contract(kind=Kind.TENSOR, dtypes=("uint8",), ndim=2, domain="image/intensity")
CT = Contract(kind=Kind.TENSOR, dtypes=("float32",), ndim=2, domain="volume/ct-hu")
NEEDS_GEOM = Contract(kind=Kind.TENSOR, dtypes=("float32",), ndim=2, meta=("geometry",))
MAP = Contract(kind=Kind.TENSOR_MAP, dtypes=("float32",))


class Src(Operator):
    outputs = (Port(P.FRAME, F32),)

    def __init__(self, fragment: Any, *args: Any, dtype: str = "float32", geometry: bool = False, **kw: Any):
        self.dtype, self.geometry, self.sent = np.dtype(dtype), geometry, []
        if geometry:
            self.outputs = (Port(P.FRAME, Contract(dtypes=("float32",), ndim=2, meta=("geometry",))),)
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = np.full((4, 4), len(self.sent), dtype=self.dtype)
        self.sent.append(frame)
        meta = {"geometry": ImageGeometry(spacing=(0.5, 0.5, 2.0))} if self.geometry else None
        self.emit(op_output, frame, P.FRAME, meta=meta)


class Sink(Operator):
    inputs = (Port(P.FRAME, F32),)

    def __init__(self, fragment: Any, *args: Any, contract: Contract = F32, fail_at: int = -1, **kw: Any):
        self.inputs = (Port(P.FRAME, contract), *type(self).inputs[1:])
        self.got: list[np.ndarray] = []
        self.meta: list[Any] = []
        self.fail_at = fail_at
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        value = self.receive(op_input, P.FRAME)
        if len(self.got) == self.fail_at:
            raise ValueError(f"Sink: expected frame {self.fail_at} to be fine; got a deliberate failure")
        self.got.append(value)
        self.meta.append(self.get_meta("geometry"))


class TwoInputSink(Sink):
    inputs = (Port(P.FRAME, F32), Port(P.suffixed(P.MASK, "prior"), F32))


class WiredApp(Application):
    """Src → Sink with knobs to break the wiring."""

    def __init__(self, *, src: dict | None = None, sink: dict | None = None, pairs: Any = "default",
                 sink_cls: type = Sink, count: int = 3, config: dict | None = None) -> None:
        self.src_kw, self.sink_kw, self.pairs, self.sink_cls, self.count = src or {}, sink or {}, pairs, sink_cls, count
        super().__init__(config or {}, name="wired")

    def compose(self) -> None:
        self.src = Src(self, CountCondition(self, self.count), name="src", **self.src_kw)
        self.sink = self.sink_cls(self, name="sink", **self.sink_kw)
        pairs = {(P.FRAME, P.FRAME)} if self.pairs == "default" else self.pairs
        self.add_flow(self.src, self.sink, pairs)


def test_typed_graph_runs_and_data_is_not_copied() -> None:
    app = WiredApp()
    app.run()
    assert len(app.sink.got) == 3
    for sent, got in zip(app.src.sent, app.sink.got):
        assert arrays.shares_memory(sent, got)  # zero-copy through the engine


def test_metadata_travels_with_the_data() -> None:
    app = WiredApp(src={"geometry": True}, sink={"contract": NEEDS_GEOM})
    app.run()
    assert all(isinstance(m, ImageGeometry) and m.spacing == (0.5, 0.5, 2.0) for m in app.sink.meta)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sink": {"contract": U8}}, "dtype mismatch: producer emits float32, consumer expects uint8"),
        ({"sink": {"contract": CT}}, "domain mismatch: producer emits image/intensity, consumer expects volume/ct-hu"),
        ({"sink": {"contract": NEEDS_GEOM}}, "missing metadata ['geometry']"),
        ({"pairs": {(P.FRAME, "frames")}}, "unknown input port 'frames' on sink"),
        ({"sink_cls": TwoInputSink}, "sink.mask_prior: required input is not connected"),
    ],
)
def test_miswired_graph_is_refused_before_run(kwargs: dict, needle: str) -> None:
    app = WiredApp(**kwargs)
    with pytest.raises(GraphValidationError) as info:
        app.run()
    message = str(info.value)
    assert needle in message
    if "mismatch" in needle:  # both ends and both contracts named
        assert "src.frame -> sink.frame" in message and "producer src.frame:" in message
        assert "consumer sink.frame:" in message
    assert app.src.sent == []  # nothing ran


def test_runtime_contract_check_catches_a_lying_operator() -> None:
    app = WiredApp(src={"dtype": "float64"}, config={"app": {"check_contracts": True}})
    with pytest.raises(ContractViolation, match="expected dtype float32; got float64"):
        app.run()


def test_operator_errors_reraise_unchanged() -> None:
    app = WiredApp(sink={"fail_at": 1})
    with pytest.raises(ValueError, match="deliberate failure"):
        app.run()
    assert len(app.sink.got) == 1


@pytest.mark.parametrize("scheduler", ["greedy", "event", "multithread"])
def test_hello_stream_on_each_scheduler(tmp_path: Path, scheduler: str) -> None:
    app = load_app("hello_stream", output=tmp_path, overrides=["scale.factor=3", "source.count=12"],
                   extra=[f"app.scheduler={scheduler}", "app.threads=2"])
    app.run()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["last_index"] == 11
    assert summary["max"] == pytest.approx(3.0, rel=1e-3)  # the blob peaks at 1.0, scaled by 3
    times = [r["time_s"] for r in summary["records"]]
    assert times == sorted(times) and times[1] == pytest.approx(1 / 30)


def test_tensor_maps_arrive_as_arrays_sharing_memory() -> None:
    class MapSrc(Operator):
        outputs = (Port(P.TENSOR, MAP),)

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.sent = {"a": np.ones((3, 3), np.float32), "b": np.zeros(5, np.float32)}
            self.emit(op_output, self.sent, P.TENSOR)

    class MapSink(Operator):
        inputs = (Port(P.TENSOR, MAP),)

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.got = self.receive(op_input, P.TENSOR)

    class MapApp(Application):
        def compose(self) -> None:
            self.s, self.r = MapSrc(self, CountCondition(self, 1), name="s"), MapSink(self, name="r")
            self.add_flow(self.s, self.r, {(P.TENSOR, P.TENSOR)})

    app = MapApp()
    app.run()
    assert set(app.r.got) == {"a", "b"} and isinstance(app.r.got["a"], np.ndarray)
    assert arrays.shares_memory(app.r.got["a"], app.s.sent["a"])


def test_operator_arguments_validated_at_construction() -> None:
    with pytest.raises(ValueError, match="ScaleOp: expected a finite, non-zero factor; got 0.0"):
        load_app("hello_stream", overrides=["scale.factor=0"]).run()
    with pytest.raises(ConfigError, match="did you mean factor"):
        load_app("hello_stream", overrides=["scale.factr=2"])
    with pytest.raises(ConfigError, match="app.scheduler"):
        load_app("hello_stream", extra=["app.scheduler=fastest"])


def test_optional_input_does_not_stall() -> None:
    class OptSink(Sink):
        inputs = (Port(P.FRAME, F32), Port(P.suffixed(P.MASK, "prior"), F32, optional=True))

    app = WiredApp(sink_cls=OptSink)
    app.run()
    assert len(app.sink.got) == 3


def test_unconnected_output_is_refused_unless_optional() -> None:
    class TwoOutSrc(Src):
        outputs = (Port(P.FRAME, F32), Port(P.REPORT, Contract(kind=Kind.OBJECT)))

    class OptOutSrc(Src):
        outputs = (Port(P.FRAME, F32), Port(P.REPORT, Contract(kind=Kind.OBJECT), optional=True))

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            super().compute(op_input, op_output, context)
            self.emit(op_output, {"sent": len(self.sent)}, P.REPORT)  # goes nowhere, never stalls

    class SrcApp(WiredApp):
        def compose(self) -> None:
            self.src = self.src_cls(self, CountCondition(self, 3), name="src")
            self.sink = Sink(self, name="sink")
            self.add_flow(self.src, self.sink, {(P.FRAME, P.FRAME)})

    SrcApp.src_cls = TwoOutSrc
    with pytest.raises(GraphValidationError, match="src.report: output is not connected"):
        SrcApp().run()
    SrcApp.src_cls = OptOutSrc
    app = SrcApp()
    app.run()
    assert len(app.sink.got) == 3


def test_read_only_arrays_travel_without_copies() -> None:
    class RoSrc(Operator):
        outputs = (Port(P.TENSOR, MAP), Port(P.FRAME, F32))

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.sent = np.frombuffer(np.ones(16, np.float32).tobytes(), np.float32).reshape(4, 4)  # read-only
            assert not self.sent.flags.writeable
            self.emit(op_output, {"a": self.sent}, P.TENSOR)
            self.emit(op_output, self.sent, P.FRAME)

    class RoSink(Operator):
        inputs = (Port(P.TENSOR, MAP), Port(P.FRAME, F32))

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.got = (self.receive(op_input, P.TENSOR), self.receive(op_input, P.FRAME))

    class RoApp(Application):
        def compose(self) -> None:
            self.s, self.r = RoSrc(self, CountCondition(self, 1), name="s"), RoSink(self, name="r")
            self.add_flow(self.s, self.r, {(P.TENSOR, P.TENSOR), (P.FRAME, P.FRAME)})

    app = RoApp()
    app.run()
    got_map, got_frame = app.r.got
    assert arrays.shares_memory(got_map["a"], app.s.sent) and arrays.shares_memory(got_frame, app.s.sent)


@pytest.mark.parametrize(("value", "meta", "needle"), [
    (np.zeros((4, 4, 1), np.float32), {"geometry": 1}, "expected ndim=2; got shape (4, 4, 1)"),
    (np.zeros((4, 4), np.float32), None, "missing ['geometry']"),
    ([[0.0] * 4] * 4, {"geometry": 1}, "expected an array; got list"),
])
def test_runtime_checks_catch_ndim_metadata_and_non_arrays(value: Any, meta: Any, needle: str) -> None:
    """Fails if the per-message fast path lets a wrong ndim, a missing metadata key or a list through."""
    class Liar(Operator):
        outputs = (Port(P.FRAME, NEEDS_GEOM),)

        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            self.emit(op_output, value, P.FRAME, meta=meta)

    class LiarApp(Application):
        def compose(self) -> None:
            src = Liar(self, CountCondition(self, 1), name="liar")
            self.add_flow(src, Sink(self, name="sink", contract=NEEDS_GEOM), {(P.FRAME, P.FRAME)})

    with pytest.raises(ContractViolation, match=re.escape(needle)):
        LiarApp({"app": {"check_contracts": True}}).run()
