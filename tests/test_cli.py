"""The `clara-stream` CLI, driven through main(argv) and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clara_stream.cli import main

BROKEN_APP = '''
from clara_stream import ports as P
from clara_stream.operators.common.scale_op import ScaleOp
from clara_stream.operators.common.source_op import ArraySourceOp
from clara_stream.operators.common.stats_sink_op import StatsSinkOp
from clara_stream.runtime import Application


class BrokenApp(Application):
    def compose(self):
        src = ArraySourceOp(self, name="source", count=2)
        scale = ScaleOp(self, name="scale", factor=2)
        sink = StatsSinkOp(self, name="sink")
        self.add_flow(src, scale, {(P.FRAME, P.FRAME_IN)})
        self.add_flow(scale, sink, {(P.FRAME_OUT, "frames")})
'''


def test_run_writes_outputs_and_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello_stream", "--output", str(tmp_path), "--set", "source.count=5",
                 "--scheduler", "event", "--threads", "2"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 5
    assert str(tmp_path.resolve()) in capsys.readouterr().out


def test_bad_override_is_one_line_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello_stream", "--set", "scale.factr=2"]) == 2
    err = capsys.readouterr().err
    assert "expected an existing key in 'scale'; got 'factr'; did you mean factor?" in err
    assert "hint:" in err and "Traceback" not in err


def test_unknown_app_lists_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_app"]) == 2
    err = capsys.readouterr().err
    assert "no_such_app" in err and "hello_stream" in err


def test_operator_failure_is_one_line_then_traceback_with_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello_stream", "--set", "scale.factor=0"]) == 1
    err = capsys.readouterr().err
    assert "ValueError: ScaleOp: expected a finite, non-zero factor; got 0.0" in err and "Traceback" not in err
    assert main(["run", "hello_stream", "--set", "scale.factor=0", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_validate_lists_ports_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "hello_stream"]) == 0
    out = capsys.readouterr().out
    assert "ScaleOp" in out and "frame_in" in out and "image/intensity" in out and "graph OK" in out
    app_file = tmp_path / "broken_app.py"
    app_file.write_text(BROKEN_APP)
    assert main(["validate", str(app_file)]) == 1
    out = capsys.readouterr().out
    assert "unknown input port 'frames' on sink" in out
    assert main(["run", str(app_file)]) == 1
    assert "graph refused before run" in capsys.readouterr().err


def test_graph_writes_svg_and_dot(tmp_path: Path) -> None:
    assert main(["graph", "hello_stream", "--out", str(tmp_path / "g.dot")]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert "source -> scale" in dot and "frame → frame_in" in dot
    if subprocess.run(["which", "dot"], capture_output=True).returncode == 0:
        assert main(["graph", "hello_stream", "--out", str(tmp_path / "g.svg")]) == 0
        svg = (tmp_path / "g.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "ScaleOp" in svg
    assert main(["graph", "hello_stream", "--out", str(tmp_path / "g.gif")]) == 2


def test_sample_rejects_unknown_kind(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["sample", "mri", "--out", str(tmp_path)]) == 2
    assert "expected a kind in" in capsys.readouterr().err


def test_doctor_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--no-voice"]) == 0  # the voice rows: tests/voice/test_doctor.py
    out = capsys.readouterr().out
    assert "holoscan" in out and "gpu (cupy)" in out and "libx264" in out
    assert "[video] av" in out  # rich markup would swallow the bracketed extra
    site = Path(sys.executable).parents[1] / "lib"
    binary = next(site.glob("python3*/site-packages/pytriton/tritonserver/bin/tritonserver"), None)
    row = next(line for line in out.splitlines() if "tritonserver binary" in line)
    assert ("ok" in row) is (binary is not None and binary.is_file()), row
    assert main(["version"]) == 0
    assert "holoscan 4." in capsys.readouterr().out


def test_console_script_runs_in_a_subprocess(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("clara-stream")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "clara_stream.cli"]
    proc = subprocess.run([*cmd, "run", "hello_stream", "-o", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "summary.json").is_file()
    assert "warning" not in proc.stderr.lower()  # no engine noise on a clean run


def test_app_runs_as_a_module(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "clara_stream.apps.hello_stream", "-o", str(tmp_path), "--set",
                           "source.count=4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 4


def test_sample_video_and_ct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    av = pytest.importorskip("av")
    pydicom = pytest.importorskip("pydicom")
    assert main(["sample", "video", "--out", str(tmp_path / "v"), "--set", "frames=12", "--set", "width=160",
                 "--set", "height=96"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    with av.open(printed["video"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (160, 96)
    assert Path(printed["ground_truth"]).is_file()
    assert main(["sample", "ct", "--out", str(tmp_path / "c"), "--set", "shape=[6,32,32]"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    slices = sorted(Path(printed["dicom"]).glob("*"))
    assert len(slices) == 6
    ds = pydicom.dcmread(slices[0])
    assert ds.Modality == "CT" and (ds.Rows, ds.Columns) == (32, 32)


MARKING_APP = '''
from clara_stream import ports as P
from clara_stream.operators.common.source_op import ArraySourceOp
from clara_stream.operators.common.stats_sink_op import StatsSinkOp
from clara_stream.runtime import Application


class MarkingSink(StatsSinkOp):
    def compute(self, op_input, op_output, context):
        super().compute(op_input, op_output, context)
        if len(self.records) == 1:
            (self.output / "streaming").touch()  # the test's barrier: frames are flowing


class MarkingApp(Application):
    def compose(self):
        src = ArraySourceOp(self, name="source", count=100000000)
        sink = MarkingSink(self, name="sink", output=self.output_path)
        self.add_flow(src, sink, {(P.FRAME, P.FRAME)})
'''


@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_the_graph_and_keeps_outputs(tmp_path: Path, signame: str, code: int) -> None:
    """Ctrl-C, and SIGTERM as an orchestrator sends it before killing a pod, stop the graph cleanly."""
    import signal
    import time

    app_file = tmp_path / "marking_app.py"
    app_file.write_text(MARKING_APP)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "clara_stream.cli", "run", str(app_file), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a bound for a hung start, not a barrier
    while not (out / "streaming").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "streaming").exists() and proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in err
    summary = json.loads((out / "summary.json").read_text())  # the sink's stop() still ran
    assert 0 < summary["frames"] < 100000000


def test_error_text_in_brackets_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app_file = tmp_path / "bracket_app.py"
    failing = "        raise ValueError('Op: expected one series; got [CT 1.2.3, MR 4.5] [/tmp/x]')\n"
    app_file.write_text(BROKEN_APP.replace("        src = ArraySourceOp", failing + "        src = ArraySourceOp"))
    assert main(["run", str(app_file)]) == 1
    assert "got [CT 1.2.3, MR 4.5] [/tmp/x]" in capsys.readouterr().err


def test_debug_does_not_leak_into_later_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello_stream", "--set", "scale.factor=0", "--debug"]) == 1
    capsys.readouterr()
    assert main(["run", "hello_stream", "--set", "scale.factor=0"]) == 1
    assert "Traceback" not in capsys.readouterr().err
