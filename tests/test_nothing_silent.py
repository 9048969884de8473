"""Mistakes a new user makes are refused or reported, never run silently to exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from clara_stream import ports as P
from clara_stream.cli import main
from clara_stream.errors import ConfigError, GraphValidationError, RunIncompleteError
from clara_stream.runtime import Application, CountCondition, Operator, Port, load_app

HERE = Path(__file__).resolve().parent


class Src(Operator):
    outputs = (Port(P.FRAME),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.emit(op_output, np.zeros(3, np.float32), P.FRAME)


class Relay(Operator):
    """Two required inputs, one output: with ``frame_in`` fed back from downstream it forms a cycle."""

    inputs = (Port(P.FRAME), Port(P.FRAME_IN))
    outputs = (Port(P.FRAME_OUT),)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.receive(op_input, P.FRAME)
        self.emit(op_output, self.receive(op_input, P.FRAME_IN), P.FRAME_OUT)


class Sink(Operator):
    inputs = (Port(P.FRAME),)

    def __init__(self, fragment: Any, *args: Any, fail: str = "", **kw: Any) -> None:
        self.fail, self.got = fail, 0
        super().__init__(fragment, *args, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.receive(op_input, P.FRAME)
        self.got += 1
        if "compute" in self.fail:
            raise ValueError("Sink: expected a good frame; got a deliberate compute failure")

    def stop(self) -> None:
        if "stop" in self.fail:
            raise OSError("Sink: expected to close its file; got a deliberate stop failure")


class Needy(Operator):
    inputs = (Port(P.FRAME),)

    def __init__(self, fragment: Any, *args: Any, path: str, name: str = "needy", **kw: Any) -> None:
        self.path = path
        super().__init__(fragment, *args, name=name, **kw)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.receive(op_input, P.FRAME)


class FailApp(Application):
    def compose(self) -> None:
        src = Src(self, CountCondition(self, 3), name="src")
        self.sink = Sink(self, name="sink", **self.kwargs("sink"))
        self.add_flow(src, self.sink, {(P.FRAME, P.FRAME)})


def test_misspelt_operator_key_in_yaml_is_refused(tmp_path: Path) -> None:
    """Fails if Operator forwards unknown keywords to Holoscan (which drops them) again."""
    cfg = yaml.safe_load((HERE.parent / "apps/hello_stream/app.yaml").read_text())
    cfg["scale"] = {"factr": 3}
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as info:
        load_app("hello_stream", config=tmp_path / "app.yaml", output=tmp_path).run()
    text = str(info.value)
    assert "ScaleOp 'scale'" in text and "unknown 'factr'" in text and "did you mean factor?" in text
    assert "'factor'" in text  # the known keys are listed
    assert not (tmp_path / "summary.json").exists()


def test_missing_required_argument_is_named() -> None:
    class NeedyApp(Application):
        def compose(self) -> None:
            src = Src(self, CountCondition(self, 1), name="src")
            self.add_flow(src, Needy(self, name="needy"), {(P.FRAME, P.FRAME)})

    with pytest.raises(ConfigError, match=r"Needy 'needy': expected required argument 'path'; got none"):
        NeedyApp().run()


def test_unknown_section_and_app_key_are_refused(tmp_path: Path) -> None:
    cfg = yaml.safe_load((HERE.parent / "apps/hello_stream/app.yaml").read_text())
    cfg["scael"] = {"factor": 3}
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(GraphValidationError, match=r"unknown section 'scael'; did you mean scale\?"):
        load_app("hello_stream", config=tmp_path / "app.yaml", output=tmp_path).run()
    with pytest.raises(ConfigError, match=r"expected an app switch from .*got 'frmaes'"):
        load_app("hello_stream", overrides=["app.frmaes=3"])
    # a switch the app's YAML declares is accepted
    assert load_app("hello_stream", overrides=["app.frames_key=source.count"]).validate() == []


def test_stop_error_fails_the_run() -> None:
    """Fails if a stop() exception is only logged by the engine (exit 0)."""
    app = FailApp({"sink": {"fail": "stop"}})
    with pytest.raises(OSError, match="deliberate stop failure"):
        app.run()
    assert app.sink.got == 3


def test_compute_error_comes_first_and_stop_error_is_kept() -> None:
    """Fails if the later stop() failure replaces the compute() one (Holoscan's own behaviour)."""
    with pytest.raises(ValueError, match="deliberate compute failure") as info:
        FailApp({"sink": {"fail": "compute,stop"}}).run()
    assert info.value.__notes__ == [
        "then: sink.stop() failed: OSError: Sink: expected to close its file; got a deliberate stop failure"]


def test_cli_reports_both_errors_in_order(tmp_path: Path) -> None:
    app_file = tmp_path / "fail_app.py"
    app_file.write_text(Path(__file__).read_text().split("def test_")[0])
    (tmp_path / "fail_app.yaml").write_text("sink:\n  fail: ''\n")
    proc = subprocess.run([sys.executable, "-m", "clara_stream.cli", "run", str(app_file), "--set",
                           "sink.fail=compute,stop"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[0] == "error: ValueError: Sink: expected a good frame; got a deliberate compute failure"
    assert "then: sink.stop() failed: OSError" in lines[1]
    assert lines[2].startswith("hint:") and len(lines) == 3  # no engine lines before or after


def test_cycle_of_required_inputs_is_refused_naming_ops_and_ports() -> None:
    class CycleApp(Application):
        def compose(self) -> None:
            src = Src(self, CountCondition(self, 3), name="src")
            relay, back = Relay(self, name="relay"), Relay(self, name="back")
            self.add_flow(src, relay, {(P.FRAME, P.FRAME)})
            self.add_flow(src, back, {(P.FRAME, P.FRAME)})
            self.add_flow(relay, back, {(P.FRAME_OUT, P.FRAME_IN)})
            self.add_flow(back, relay, {(P.FRAME_OUT, P.FRAME_IN)})

    with pytest.raises(GraphValidationError) as info:
        CycleApp().run()
    text = str(info.value)
    assert "cycle of required inputs" in text
    assert "relay.frame_out -> back.frame_in" in text and "back.frame_out -> relay.frame_in" in text


def test_optional_input_breaks_a_cycle() -> None:
    class OptRelay(Relay):
        inputs = (Port(P.FRAME), Port(P.FRAME_IN, optional=True))

    class LoopApp(Application):
        def compose(self) -> None:
            src = Src(self, CountCondition(self, 1), name="src")
            a, b = OptRelay(self, name="a"), OptRelay(self, name="b")
            for op in (a, b):
                self.add_flow(src, op, {(P.FRAME, P.FRAME)})
            self.add_flow(a, b, {(P.FRAME_OUT, P.FRAME_IN)})
            self.add_flow(b, a, {(P.FRAME_OUT, P.FRAME_IN)})

    assert not [e for e in LoopApp().validate() if "cycle" in e]


def test_run_that_processes_nothing_is_reported() -> None:
    """An input that never fills: sink.frame_in gets nothing, so data sent to sink.frame is never used."""

    class TwoIn(Sink):
        inputs = (Port(P.FRAME), Port(P.FRAME_IN))

    class Silent(Src):
        def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
            pass  # emits nothing

    class StallApp(Application):
        def compose(self) -> None:
            src = Src(self, CountCondition(self, 2), name="src")
            quiet = Silent(self, CountCondition(self, 2), name="quiet")
            self.sink = TwoIn(self, name="sink")
            self.add_flow(src, self.sink, {(P.FRAME, P.FRAME)})
            self.add_flow(quiet, self.sink, {(P.FRAME, P.FRAME_IN)})

    app = StallApp()
    with pytest.raises(RunIncompleteError) as info:
        app.run()
    assert "sink never ran: data was sent to sink.frame but sink.frame_in (from quiet.frame) never filled" in str(
        info.value)


def test_engine_log_level_is_not_forced_at_import(tmp_path: Path) -> None:
    code = "import os, clara_stream.runtime; print(os.environ.get('HOLOSCAN_LOG_LEVEL'))"
    env = {k: v for k, v in os.environ.items() if k != "HOLOSCAN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "None"


@pytest.mark.parametrize(("args", "engine_lines"), [([], False), (["--log-level", "info"], True),
                                                    (["--debug"], True), (["--set", "app.log_level=info"], True)])
def test_log_level_switches_reach_the_engine(tmp_path: Path, args: list[str], engine_lines: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HOLOSCAN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "clara_stream.cli", "run", "hello_stream", "-o", str(tmp_path),
                           "--set", "source.count=2", *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("[info]" in proc.stderr) is engine_lines


def test_holoscan_log_level_in_the_environment_wins(tmp_path: Path) -> None:
    """As Holoscan documents: HOLOSCAN_LOG_LEVEL overrides what the app asks for."""
    env = {**os.environ, "HOLOSCAN_LOG_LEVEL": "INFO"}
    proc = subprocess.run([sys.executable, "-m", "clara_stream.cli", "run", "hello_stream", "-o", str(tmp_path),
                           "--set", "source.count=2"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[info]" in proc.stderr


def test_debug_failure_shows_engine_log_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello_stream", "--set", "scale.factor=0"]) == 1
    quiet = capsys.readouterr().err
    assert len([ln for ln in quiet.splitlines() if ln.strip()]) == 2 and "Traceback" not in quiet
    assert main(["run", "hello_stream", "--set", "scale.factor=0", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err

