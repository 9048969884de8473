"""The latency harness measures what it claims: a known injected delay, numpy-exact percentiles."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from clara_stream.bench.compare import compare, load
from clara_stream.bench.flowlog import by_path, parse_text, trim
from clara_stream.bench.harness import BenchOptions, run_bench
from clara_stream.bench.report import write_all
from clara_stream.bench.stats import summarize
from clara_stream.cli import main
from clara_stream.errors import UserError

DELAY_MS = 25.0

DELAY_APP = '''
import time
from clara_stream import ports as P
from clara_stream.operators.common.source_op import ArraySourceOp
from clara_stream.operators.common.scale_op import ScaleOp
from clara_stream.operators.common.stats_sink_op import StatsSinkOp
from clara_stream.runtime import Application, PeriodicCondition


class SlowScaleOp(ScaleOp):
    """ScaleOp plus a fixed sleep: the delay the harness must find."""

    def __init__(self, fragment, *args, delay_ms: float = 0.0, **kwargs):
        self.delay_s = float(delay_ms) / 1000
        super().__init__(fragment, *args, **kwargs)

    def compute(self, op_input, op_output, context):
        time.sleep(self.delay_s)
        super().compute(op_input, op_output, context)


class DelayApp(Application):
    def compose(self):
        # Paced slower than the delay, so no message queues behind another: shares are pure delay.
        pace = PeriodicCondition(self, recess_period=int(self.config_value("app.period_ms") * 1e6))
        src = ArraySourceOp(self, pace, name="source", **self.kwargs("source"))
        slow = SlowScaleOp(self, name="slow", **self.kwargs("slow"))
        sink = StatsSinkOp(self, name="sink")
        self.add_flow(src, slow, {(P.FRAME, P.FRAME_IN)})
        self.add_flow(slow, sink, {(P.FRAME_OUT, P.FRAME)})
'''

DELAY_YAML = f"""
app:
  frames_key: source.count
  period_ms: 45
source:
  count: 5
  height: 32
  width: 32
slow:
  factor: 2.0
  delay_ms: {DELAY_MS}
"""

LOG = """1:
(source,1000,1100) -> (mid,1150,3150) -> (sink,3200,3300)

2:
(source,2000,2050) -> (mid,3200,3700) -> (sink,3750,4000)
"""


@pytest.fixture(scope="module")
def delay_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("delay_app")
    (folder / "app.py").write_text(DELAY_APP)
    (folder / "app.yaml").write_text(DELAY_YAML)
    return folder


def test_flowlog_parsing_gives_exact_latencies() -> None:
    messages = parse_text(LOG)
    assert [m.latency_ms for m in messages] == [2.3, 2.0]
    assert messages[0].operator_ms() == {"source": 0.1, "mid": 2.05, "sink": 0.15}
    assert messages[1].operator_ms() == {"source": 0.05, "mid": 1.65, "sink": 0.3}  # queued before mid
    assert sum(messages[1].operator_ms().values()) == pytest.approx(messages[1].latency_ms)
    assert messages[1].compute_ms()["mid"] == 0.5
    assert list(by_path(messages)) == ["source,mid,sink"]
    assert trim(messages, 1, 0) == messages[1:]
    assert trim(messages, 1, 1) == messages  # too few to trim: kept
    with pytest.raises(ValueError, match="line 2"):
        parse_text("1:\n(source,1000) -> (sink,1,2)\n")


def test_summary_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    samples = rng.gamma(2.0, 3.0, size=997)
    s = summarize(samples)
    for p in (50, 90, 95, 99, 99.9):
        assert s[f"p{p:g}"] == pytest.approx(np.percentile(samples, p))
    assert s["tail"] == pytest.approx(samples.max() - np.percentile(samples, 95))
    assert s["flatness"] == pytest.approx(np.percentile(samples, 90) - np.percentile(samples, 10))
    assert s["stddev"] == pytest.approx(samples.std(ddof=1))
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


@pytest.fixture(scope="module")
def delay_results(delay_app: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    opts = BenchOptions(app=str(delay_app), out=out, frames=16, runs=2, instances=1, skip_first=3, discard_last=2)
    results = run_bench(opts)
    write_all(results, out)
    return results, out


def test_harness_finds_the_injected_delay(delay_results: tuple[dict, Path]) -> None:
    results, _ = delay_results
    assert list(results["paths"]) == ["source,slow,sink"]
    path = results["paths"]["source,slow,sink"]
    assert path["latency_ms"]["count"] == 2 * (16 - 3 - 2)
    ops = path["operators_ms"]
    # No speed is asserted: sleep() never returns early, so every figure that spans the slow stage is
    # at least DELAY_MS however loaded the box is (fails if the harness drops or mis-attributes it).
    assert ops["slow"]["min"] >= DELAY_MS
    assert path["latency_ms"]["min"] >= ops["slow"]["min"]  # the path includes the slow stage
    assert len(path["per_run"]) == 2
    assert 0 < results["throughput_fps"] <= 1000 / DELAY_MS  # one frame per slow stage at most


def test_report_files_agree_with_the_samples(delay_results: tuple[dict, Path]) -> None:
    results, out = delay_results
    with (out / "latencies.csv").open() as f:
        lat = [float(r["latency_ms"]) for r in csv.DictReader(f)]
    saved = json.loads((out / "results.json").read_text())
    for key in ("p50", "p90", "p99", "p99.9", "max", "mean"):
        expected = np.percentile(lat, float(key[1:])) if key.startswith("p") else getattr(np, key)(lat)
        assert saved["paths"]["source,slow,sink"]["latency_ms"][key] == pytest.approx(expected, abs=1e-3)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "source,slow,sink" in html
    for png in ("latency_cdf.png", "latency_over_time.png", "operator_breakdown.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_compare_ratios_and_noise_warning(delay_results: tuple[dict, Path], tmp_path: Path) -> None:
    _, out = delay_results
    a = load(out / "results.json")
    b = json.loads(json.dumps(a))
    b["paths"]["source,slow,sink"]["latency_ms"]["p50"] = a["paths"]["source,slow,sink"]["latency_ms"]["p50"] * 2
    rows = {(r.path, r.metric): r for r in compare(a, b)}
    doubled = rows[("source,slow,sink", "p50")]
    assert doubled.ratio == pytest.approx(2.0) and not doubled.within_noise
    same = rows[("source,slow,sink", "p90")]
    assert same.ratio == pytest.approx(1.0) and same.within_noise
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(UserError, match="without 'paths'"):
        load(tmp_path / "junk.json")


def test_cli_bench_and_compare(delay_app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["bench", str(delay_app), "--frames", "8", "--runs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per operator" in text and (out / "report.html").is_file()
    assert main(["bench", "compare", str(out / "results.json"), str(out / "results.json")]) == 0
    assert "B/A" in capsys.readouterr().out
    assert main(["bench", "compare", str(out / "results.json")]) == 2
    assert main(["bench", str(delay_app), "--realtime", "--out", str(tmp_path / "x")]) == 2
    assert "app.realtime_key" in capsys.readouterr().err
