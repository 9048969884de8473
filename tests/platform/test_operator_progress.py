"""The per-operator progress recorder (clara_stream.runtime.progress) in real app runs.

Oracles: the configured message count and each operator's own timing of its compute body (written
by the flow app itself), numpy's percentiles, and ``clara-stream graph``'s own JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clara_stream.runtime import progress

FLOW = str(Path(__file__).parent / "apps" / "flow")


def run_flow(tmp: Path, *sets: str, file: Path | None = None) -> tuple[subprocess.CompletedProcess, dict | None, Path]:
    out, file = tmp / "out", file or tmp / "operators.json"
    env = dict(os.environ, **{progress.ENV: str(file)})
    cmd = [sys.executable, "-m", "clara_stream.cli", "run", FLOW, "--output", str(out)]
    for item in sets:
        cmd += ["--set", item]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return done, json.loads(file.read_text()) if file.exists() else None, out


def test_counts_times_and_graph_of_a_real_run(tmp_path):
    """Fails if computes are miscounted, a time is taken outside the compute (or in s, not ms), the
    percentile picks the wrong rank, or the graph is not `clara-stream graph`'s."""
    done, snap, out = run_flow(tmp_path, "src.count=7", "src.sleep_s=0.004")
    assert done.returncode == 0, done.stderr
    assert snap["final"] is True and snap["pid"] != os.getpid()
    rows = {r["name"]: r for r in snap["operators"]}
    assert list(rows) == ["src", "mid", "sink"]
    for name, row in rows.items():
        own = json.loads((out / f"{name}.json").read_text())["seconds"]
        assert row["state"] == "done" and row["error"] is None
        assert row["messages"] == len(own) == 7
        # the recorder times the whole compute, the app its body inside it: never less, never far more
        assert sum(own) * 1e3 <= row["time_ms"] <= sum(own) * 1e3 + 7 * 50
        for q in (50, 95):
            ref = np.percentile(own, q) * 1e3
            assert ref <= row[f"p{q}_ms"] <= ref + 50
    assert rows["src"]["p50_ms"] >= 4.0  # it slept 4 ms per message: milliseconds, not seconds
    graph = tmp_path / "graph.json"
    subprocess.run([sys.executable, "-m", "clara_stream.cli", "graph", FLOW, "--out", str(graph)],
                   check=True, capture_output=True, timeout=300)
    assert snap["graph"] == json.loads(graph.read_text())
    assert [(e["src"], e["dst"]) for e in snap["graph"]["edges"]] == [("src", "mid"), ("mid", "sink")]


def test_failing_operator_is_failed_with_its_error(tmp_path):
    """Fails if a failure is not recorded, its text is lost, or upstream operators are marked failed too."""
    done, snap, out = run_flow(tmp_path, "src.count=6", "sink.fail_at=3")
    assert done.returncode != 0
    rows = {r["name"]: r for r in snap["operators"]}
    assert rows["sink"]["state"] == "failed"
    assert rows["sink"]["error"] == ("compute() failed: ValueError: FlowSinkOp: expected <b>a value</b> below 6; "
                                     "got a deliberate failure")
    assert rows["sink"]["messages"] == len(json.loads((out / "sink.json").read_text())["seconds"]) == 2
    assert rows["src"]["state"] == rows["mid"]["state"] == "done"
    assert rows["src"]["error"] is None


def test_percentiles_are_numpy_s_and_memory_is_bounded():
    """Exact below the reservoir size, close above it, never more than RESERVOIR samples kept."""
    rng = np.random.default_rng(7)
    small = rng.lognormal(-6, 1.0, 301)
    stats = progress.OpStats("a", "A")
    for v in small:
        stats.add(float(v))
    row = stats.row()
    assert row["p50_ms"] == pytest.approx(np.percentile(small, 50) * 1e3, rel=1e-12)
    assert row["p95_ms"] == pytest.approx(np.percentile(small, 95) * 1e3, rel=1e-12)
    assert row["time_ms"] == pytest.approx(small.sum() * 1e3, rel=1e-9)
    big = rng.lognormal(-6, 1.0, 40_000)
    stats = progress.OpStats("b", "B")
    for v in big:
        stats.add(float(v))
    assert len(stats.samples) == progress.RESERVOIR and stats.messages == 40_000
    for q in (50, 95):  # a uniform sample of 2048: the estimate's rank is within a few percent
        lo, hi = np.percentile(big, [q - 3, min(q + 3, 99.9)])
        assert lo <= stats.row()[f"p{q}_ms"] / 1e3 <= hi


def test_write_is_whole_or_nothing(tmp_path, monkeypatch):
    """The file is replaced by a complete temporary file in the same folder (a poller never reads half).
    Fails if the JSON is written in place."""
    class App:
        app_name, operators, edges = "x", [], []

    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append((Path(src).parent, json.loads(Path(src).read_text())["app"], Path(dst)))
        real(src, dst)

    monkeypatch.setattr(progress.os, "replace", replace)
    app = App()
    rec = progress.Recorder(tmp_path / "ops.json", app)
    rec.write(final=True)
    assert seen == [(tmp_path, "x", tmp_path / "ops.json")]
    assert [p.name for p in tmp_path.iterdir()] == ["ops.json"]


def test_without_the_variable_no_recorder_exists(monkeypatch):
    """Fails if the hook creates a recorder (or a file) when the platform did not ask for one."""
    monkeypatch.delenv(progress.ENV, raising=False)
    from clara_stream.runtime import load_app

    app = load_app(FLOW, output="/nonexistent-never-written")
    app.compose_graph()
    assert [op._progress for op in app.operators] == [None, None, None]
    assert not hasattr(app, "_progress_recorder")


def test_an_unwritable_progress_file_changes_nothing_about_the_run(tmp_path):
    """Fails if the recorder's OSError fails a good run or replaces the operator's own error."""
    bad = tmp_path / "no-such-folder" / "operators.json"
    done, snap, _ = run_flow(tmp_path, "src.count=3", file=bad)
    assert done.returncode == 0 and snap is None, done.stderr
    done, snap, _ = run_flow(tmp_path, "src.count=3", "sink.fail_at=2", file=bad)
    assert done.returncode == 1 and snap is None
    assert "ValueError: FlowSinkOp: expected <b>a value</b> below 4; got a deliberate failure" in done.stderr
