"""Framework overhead: the same 3-operator chain in raw Holoscan and in clara-stream operators.

tx → mid → rx, where tx emits a preallocated array, mid forwards it and rx receives it. Both
graphs run in the same process, interleaved, for a small ndarray and a 512² float32 array, under
the Greedy and EventBased schedulers. Prints wall and CPU (process time, all threads) µs/message for both,
the ratio (clara / raw; target ≤ 1.10) and the spread of the repeats (min–max of per-run
µs/message). On a loaded machine the CPU-time ratio is the trustworthy one: wall time also
counts other processes' turns on the cores.

    python benchmarks/framework_overhead.py [--messages 4000] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from typing import Any

import numpy as np

from clara_stream import ports as P
from clara_stream.contracts import Contract, Kind
from clara_stream.runtime import Application, CountCondition, Operator, Port, run_with_stack
from clara_stream.runtime.raw import EventBasedScheduler, GreedyScheduler, RawApplication, RawOperator

ANY_TENSOR = Contract(kind=Kind.TENSOR)


class RawTx(RawOperator):
    def __init__(self, fragment: Any, *args: Any, data: np.ndarray, **kw: Any) -> None:
        self.data = data
        super().__init__(fragment, *args, **kw)

    def setup(self, spec: Any) -> None:
        spec.output("out")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_output.emit(self.data, "out")


class RawMid(RawOperator):
    def setup(self, spec: Any) -> None:
        spec.input("in")
        spec.output("out")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_output.emit(op_input.receive("in"), "out")


class RawRx(RawOperator):
    def setup(self, spec: Any) -> None:
        spec.input("in")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_input.receive("in")


class CsTx(Operator):
    outputs = (Port(P.TENSOR, ANY_TENSOR),)

    def __init__(self, fragment: Any, *args: Any, data: np.ndarray, **kw: Any) -> None:
        self.data = data
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.emit(op_output, self.data, P.TENSOR)


class CsMid(Operator):
    inputs = (Port(P.TENSOR_IN, ANY_TENSOR),)
    outputs = (Port(P.TENSOR_OUT, ANY_TENSOR),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.emit(op_output, self.receive(op_input, P.TENSOR_IN), P.TENSOR_OUT)


class CsRx(Operator):
    inputs = (Port(P.TENSOR, ANY_TENSOR),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.receive(op_input, P.TENSOR)


def _scheduler(app: Any, kind: str) -> Any:
    if kind == "event":
        return EventBasedScheduler(app, name="event", worker_thread_number=2)
    return GreedyScheduler(app, name="greedy")


class RawChain(RawApplication):
    def __init__(self, data: np.ndarray, n: int, kind: str) -> None:
        super().__init__(["bench"])
        self.data, self.n, self.kind = data, n, kind

    def compose(self) -> None:
        tx = RawTx(self, CountCondition(self, self.n), name="tx", data=self.data)
        mid, rx = RawMid(self, name="mid"), RawRx(self, name="rx")
        self.add_flow(tx, mid, {("out", "in")})
        self.add_flow(mid, rx, {("out", "in")})
        self.scheduler(_scheduler(self, self.kind))


class CsChain(Application):
    def __init__(self, data: np.ndarray, n: int, kind: str) -> None:
        super().__init__({"app": {"scheduler": kind, "threads": 2, "log_level": "error"}}, name="bench")
        self.data, self.n = data, n

    def compose(self) -> None:
        tx = CsTx(self, CountCondition(self, self.n), name="tx", data=self.data)
        mid, rx = CsMid(self, name="mid"), CsRx(self, name="rx")
        self.add_flow(tx, mid, {(P.TENSOR, P.TENSOR_IN)})
        self.add_flow(mid, rx, {(P.TENSOR_OUT, P.TENSOR)})


def _time_raw(data: np.ndarray, n: int, kind: str) -> tuple[float, float]:
    app = RawChain(data, n, kind)
    wall, cpu = time.perf_counter(), time.process_time()
    run_with_stack(app.run)
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _time_cs(data: np.ndarray, n: int, kind: str) -> tuple[float, float]:
    app = CsChain(data, n, kind)
    wall, cpu = time.perf_counter(), time.process_time()
    app.run()  # includes our validation pass, as a user would pay it
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values)
    return {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)), "min": float(v.min()),
            "max": float(v.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=str, default=None, help="write results here")
    args = parser.parse_args(argv)
    payloads = {"small (16 float32)": np.zeros(16, np.float32), "512² float32": np.zeros((512, 512), np.float32)}
    rows = []
    print(f"{'case':34s} {'raw µs/msg':>11s} {'clara µs/msg':>13s} {'ratio':>7s}   spread raw | clara (min–max)")
    for kind in ("greedy", "event"):
        for label, data in payloads.items():
            _time_raw(data, 200, kind), _time_cs(data, 200, kind)  # warm-up: imports, allocator pools
            raw, cs = [], []
            for i in range(args.repeats):  # interleave, alternating order, so drift hits both equally
                if i % 2:
                    cs.append(_time_cs(data, args.messages, kind))
                    raw.append(_time_raw(data, args.messages, kind))
                else:
                    raw.append(_time_raw(data, args.messages, kind))
                    cs.append(_time_cs(data, args.messages, kind))
            case = f"{kind} / {label}"
            for col, what in ((0, "wall"), (1, "CPU")):
                rv, cv = [x[col] for x in raw], [x[col] for x in cs]
                r, c = statistics.median(rv), statistics.median(cv)
                rs, csx = _stats(rv), _stats(cv)
                print(f"{case + ' ' + what:34s} {r:11.1f} {c:13.1f} {c / r:7.3f}   {rs['min']:.0f}–{rs['max']:.0f} | "
                      f"{csx['min']:.0f}–{csx['max']:.0f}")
                rows.append({"case": case, "metric": f"{what} µs/message (median of {args.repeats} runs)",
                             "value": c, "anchor": "raw Holoscan", "anchor_value": r, "ratio": c / r,
                             "spread": {"clara": csx, "raw": rs}})
    worst = max(row["ratio"] for row in rows if row["metric"].startswith("CPU"))
    print(f"worst CPU-time ratio {worst:.3f} (target ≤ 1.10); wall ratios move with the machine's load")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "framework_overhead", "date": date.today().isoformat(),
                       "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
