"""Declarative pipeline files on the real Holoscan engine: wiring equals the Python app's, services
bracket the operators, and every malformed file is refused with file, line and rule before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.pipeline import ServiceError, load_pipeline, parse_pipeline
from clara_stream.runtime import load_app

HELLO = """\
pipeline: hello_yaml
app: {{scheduler: greedy, log_level: critical}}
{services}operators:
  source:
    type: ArraySourceOp
    args: {{count: 7, height: 24, width: 40}}
  scale:
    type: ScaleOp
    args: {{factor: 3.0}}
  sink:
    type: StatsSinkOp
    args: {{output: "{sink_out}"}}
flows:
  - source.frame -> scale.frame_in
  - scale.frame_out -> sink.frame
"""


def _write(tmp: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def _records(folder: Path) -> list[dict]:
    return json.loads((folder / "summary.json").read_text())["records"]


def test_yaml_pipeline_matches_python_app_and_takes_overrides(tmp_path: Path) -> None:
    """Same operators and args as hello_stream in Python: identical per-frame stats; --set reaches an operator.

    Catches args not reaching operators (factor stays 1.0), a flow wired to the wrong port, or overrides ignored.
    """
    path = _write(tmp_path, HELLO.format(services="", sink_out="${app.output}"))
    load_pipeline(path, output=tmp_path / "yaml").run()
    ref = load_app("hello_stream", output=tmp_path / "py",
                   overrides=["source.count=7", "source.height=24", "source.width=40", "scale.factor=3.0"])
    ref.run()
    assert _records(tmp_path / "yaml") == _records(tmp_path / "py")
    load_pipeline(path, output=tmp_path / "x5", overrides=["scale.factor=5.0"]).run()
    for a, b in zip(_records(tmp_path / "py"), _records(tmp_path / "x5"), strict=True):
        assert b["mean"] == pytest.approx(a["mean"] * 5.0 / 3.0, rel=1e-6)


SERVER = ('{python}', '-c', 'import http.server, os, sys; open("svc.pid", "w").write(str(os.getpid())); '
          'http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)'
          '.serve_forever()', '{port}')


def _service(health: str, timeout: float, command: tuple[str, ...] = SERVER) -> str:
    cmd = ", ".join(json.dumps(c) for c in command)
    return (f"services:\n  web:\n    type: command\n    command: [{cmd}]\n    health: {{http: \"{health}\"}}\n"
            f"    timeout_s: {timeout}\n    connection: {{url: \"http://{{host}}:{{port}}/\"}}\n")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_service_is_healthy_before_operators_injected_and_stopped_after(tmp_path: Path) -> None:
    """The service's port reaches the sink's args; the server process is gone once the run returns."""
    text = HELLO.format(services=_service("http://{host}:{port}/", 30), sink_out="${here}/out-${services.web.port}")
    app = load_pipeline(_write(tmp_path, text))
    port = app.services[0].port
    app.run()
    assert len(_records(tmp_path / f"out-{port}")) == 7
    pid = int((tmp_path / "svc.pid").read_text())
    assert pid == app.services[0].last_pid and _gone(pid)


def test_service_never_healthy_is_refused_within_its_bound_and_no_operator_runs(tmp_path: Path) -> None:
    """Health never answers (wrong path on a closed port): ServiceError with file:line, process stopped, no output."""
    sleeper = ("{python}", "-c", "import os, time; open('svc.pid', 'w').write(str(os.getpid())); time.sleep(600)")
    text = HELLO.format(services=_service("http://{host}:{port}/", 1.5, sleeper), sink_out="${here}/out")
    path = _write(tmp_path, text)
    with pytest.raises(ServiceError) as err:
        load_pipeline(path).run()
    assert f"{path}:4:" in str(err.value) and "expected healthy within 1.5 s" in str(err.value)
    assert _gone(int((tmp_path / "svc.pid").read_text()))
    assert not (tmp_path / "out").exists()


MARKER_SERVICE = ('services:\n  web:\n    type: command\n    command: ["{python}", "-c", '
                  '"open(\'STARTED\', \'w\')"]\n    health: {tcp: "{host}:{port}"}\n')

BAD = {
    "unknown type": (("type: ScaleOp", "type: ScaelOp"), 13, "expected a registered operator type; got 'ScaelOp'; "
                     "did you mean ScaleOp"),
    "bad argument value": (("factor: 3.0", "factor: 0"), 14, "ScaleOp: expected a finite, non-zero factor; got 0"),
    "unknown argument": (("factor: 3.0", "fator: 3.0"), 14, "fator"),
    "unknown port": (("scale.frame_out -> sink.frame", "scale.frame_out -> sink.frames"), 20,
                     "flow scale.frame_out -> sink.frames: expected an input port of sink (StatsSinkOp: ['frame']); "
                     "got 'frames'"),
    "unknown operator": (("scale.frame_out -> sink.frame", "scale.frame_out -> sinc.frame"), 20,
                         "expected an operator defined under operators: ['scale', 'sink', 'source']; got 'sinc'"),
    "port used twice": (("  - scale.frame_out -> sink.frame", "  - scale.frame_out -> sink.frame\n"
                         "  - source.frame -> sink.frame"), 21, "used twice (also by scale.frame_out -> sink.frame"),
    "cycle": (("  - scale.frame_out -> sink.frame", "  - scale.frame_out -> sink.frame\n"
               "  - scale.frame_out -> scale.frame_in"), 21, "expected an acyclic graph; got a cycle"),
    "duplicate key": (("  scale:\n", "  scale:\n    type: ScaleOp\n  scale:\n"), 14,
                      "expected unique keys; got 'scale'"),
    "bad reference": (('output: "{sink_out}"', 'output: "${{services.db.url}}"'), 17,
                      "expected references ${here}, ${app.KEY} or one of ['services.web.port']; "
                      "got ${services.db.url}"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_file_refused_with_file_line_rule_before_anything_starts(tmp_path: Path, case: str) -> None:
    (old, new), line, rule = BAD[case]
    text = HELLO.replace(old, new).format(services=MARKER_SERVICE, sink_out="${here}/out")
    path = _write(tmp_path, text)
    with pytest.raises((GraphValidationError, ConfigError)) as err:
        load_pipeline(path).run()
    message = str(err.value)
    assert f"{path}:{line}:" in message and rule in message, message
    assert not (tmp_path / "STARTED").exists() and not (tmp_path / "out").exists()


def test_cli_validate_and_run_accept_a_pipeline_file(tmp_path: Path) -> None:
    path = _write(tmp_path, HELLO.format(services="", sink_out="${app.output}"))
    cli = [sys.executable, "-m", "clara_stream.cli"]
    ok = subprocess.run([*cli, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "graph OK" in ok.stdout, ok.stderr
    done = subprocess.run([*cli, "run", str(path), "-o", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and len(_records(tmp_path / "o")) == 7, done.stderr
    bad = _write(tmp_path, HELLO.replace("type: ScaleOp", "type: NoSuchOp").format(services="", sink_out="x"), "b.yaml")
    refused = subprocess.run([*cli, "run", str(bad)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and f"{bad}:8:" in refused.stderr and "NoSuchOp" in refused.stderr


def test_reference_pipeline_parses_with_its_triton_service() -> None:
    spec = parse_pipeline(Path(__file__).resolve().parents[2] / "apps" / "video_detection" / "pipeline.yaml")
    assert spec.services["triton"].type == "triton" and spec.operators["inference"].args["backend"] == "triton"
