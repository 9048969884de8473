"""Pipelines created from an uploaded pipeline file, over REST and gRPC, against a real PlatformService.

Oracles: line numbers come from ``str.splitlines`` of the uploaded text (not our YAML line map),
the stored name from ``hashlib.sha256`` of the uploaded bytes, outputs from the operators' own
arithmetic (source peak 1.0 × factor) read back with ``json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient

from clara_stream.platform.api.app import create_app
from clara_stream.platform.client import PlatformClient
from clara_stream.platform.grpc.server import serve
from clara_stream.platform.pipeline_uploads import MAX_BYTES
from clara_stream.platform.service import PlatformService
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.upload_rules import UPLOAD_DIR

HELLO = """\
pipeline: hello_upload
app: {{scheduler: greedy, log_level: critical}}
{services}operators:
  source: {{type: ArraySourceOp, args: {{count: 5, height: 16, width: 24}}}}
  scale: {{type: {scale_type}, args: {{factor: {factor}}}}}
  sink: {{type: StatsSinkOp, args: {{output: "{sink_out}"}}}}
flows:
  - source.frame -> scale.frame_in
  - scale.frame_out -> {sink_in}
"""
COMMAND_SERVICE = """services:
  web: {type: command, command: ["/usr/bin/python3", "-m", "http.server", "{port}"], health: {tcp: "{host}:{port}"}}
"""


def hello(*, services: str = "", scale_type: str = "ScaleOp", factor: str = "2.0", sink_out: str = "${app.output}",
          sink_in: str = "sink.frame") -> str:
    return HELLO.format(services=services, scale_type=scale_type, factor=factor, sink_out=sink_out, sink_in=sink_in)


class Platform:
    """One PlatformService with REST (in-process ASGI client) and the real gRPC server beside it."""

    def __init__(self, tmp: Path, **settings) -> None:
        self.tmp, self.inputs, self.apps = tmp, tmp / "inputs", tmp / "apps"
        self.inputs.mkdir(exist_ok=True)
        self.apps.mkdir(exist_ok=True)
        self.svc = PlatformService(PlatformSettings(
            data_dir=tmp / "data", app_roots=[self.apps], input_roots=[self.inputs], dicom_port=0, http_port=0,
            poll_interval_s=0.05, **settings), dicom=False)
        self.rest = TestClient(base_url="http://127.0.0.1", app=create_app(self.svc))
        self.rest.__enter__()  # starts the service (lifespan)
        self.server, port = serve(self.svc)
        self.target = f"127.0.0.1:{port}"
        token = settings.get("api_token")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.grpc = PlatformClient(self.target, token=token)

    @property
    def uploads(self) -> Path:
        return self.tmp / "data" / UPLOAD_DIR

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.uploads.iterdir() if p.is_file()) if self.uploads.exists() else []

    def names(self) -> list[str]:
        return [p["name"] for p in self.rest.get("/pipelines", headers=self.headers).json()]

    def post_yaml(self, text: str | bytes, **params):
        return self.rest.post("/pipelines", content=text, params=params,
                              headers={**self.headers, "Content-Type": "application/yaml"})

    def close(self) -> None:
        self.grpc.close()
        self.server.stop(grace=None)
        self.rest.__exit__(None, None, None)


@pytest.fixture
def platform(tmp_path: Path):
    p = Platform(tmp_path)
    yield p
    p.close()


def _line(text: str, needle: str) -> int:
    """1-based line of ``needle`` in ``text`` (independent of the service's YAML line map)."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def _summary(job_output: str) -> dict:
    return json.loads(next(Path(job_output).rglob("summary.json")).read_text())


def test_uploaded_file_is_stored_by_content_and_runs_to_its_output_over_grpc_and_rest(platform: Platform) -> None:
    """Fails if the stored file is not the uploaded bytes under their sha256, if REST and gRPC store the same
    file twice, or if the job does not run the stored file (the override and factor reach the output)."""
    text = hello()
    made = platform.grpc.create_pipeline(text, name="by_grpc")
    r = platform.post_yaml(text, name="by_rest", set=["scale.factor=3.0"])
    assert r.status_code == 200, r.text
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert platform.stored() == [f"{digest}.yaml"]  # one file for both: content-addressed
    stored = platform.uploads / f"{digest}.yaml"
    assert stored.read_bytes() == text.encode() and made.app == str(stored) == r.json()["app"]
    by_json = platform.rest.post("/pipelines", json={"pipelineFile": text}, headers=platform.headers)
    assert by_json.status_code == 200 and by_json.json()["name"] == "hello_upload"  # the file's pipeline: name
    assert sorted(platform.names()) == ["by_grpc", "by_rest", "hello_upload"]

    inbox = platform.inputs / "in"
    inbox.mkdir()
    job = platform.grpc.submit({"pipeline": "by_grpc", "input": str(inbox)})
    assert [j.status for j in platform.grpc.watch(job.id)][-1] == "succeeded", platform.grpc.job(job.id).error
    summary = _summary(platform.grpc.job(job.id).output_dir)
    assert (summary["frames"], summary["max"]) == (5, 2.0)  # the source's peak 1.0 × the file's factor
    rest_job = platform.rest.post("/jobs", json={"pipeline": "by_rest", "input": str(inbox)},
                                  headers=platform.headers).json()
    states = [j.status for j in platform.grpc.watch(rest_job["id"])]
    assert states[-1] == "succeeded"
    assert _summary(rest_job["outputDir"])["max"] == 3.0  # the registration's override reached the run


def _refusals(tmp: Path) -> dict[str, tuple[str, str, str | None]]:
    """name -> (file text, what the message must say, the text on the line it must name)."""
    outside = tmp / "outside"
    return {
        "command service": (hello(services=COMMAND_SERVICE), "expected a service type the platform starts safely",
                            "web: {type: command"),
        "path out by ..": (hello(sink_out=f"{tmp}/inputs/../outside/x"), "expected a path under the configured roots",
                           "sink:"),
        "relative path out by ..": (hello(sink_out="../../../../x"), "resolves to", "sink:"),
        "absolute path in a nested app value": (hello().replace("log_level: critical}", "notes: {keep: /etc/x}}"),
                                                "app.notes.keep: expected a path under", "app:"),
        "distributed fragments": (hello().replace("log_level: critical}", "fragments: true}"),
                                  "app.fragments: expected false", "app:"),
        "path out by symlink": (hello(sink_out=f"{tmp}/inputs/link/x"), f"resolves to {outside}/x", "sink:"),
        "model repository out": (hello(services="services:\n  triton: {type: triton, model_repository: /etc}\n"),
                                 "service 'triton' model_repository: expected a path under", "triton:"),
        "import path as type": (hello(scale_type="clara_stream.operators.common.scale_op.ScaleOp"),
                                "expected a registered operator type", "scale:"),
        "unknown type": (hello(scale_type="ScaleOpp"), "did you mean ScaleOp", "scale:"),
        "bad port pair": (hello(sink_in="sink.frames"), "expected an input port of sink", "sink.frames"),
        "bad argument": (hello(factor='"abc"'), "could not convert string to float", "scale:"),
        "cycle": (hello(sink_in="sink.frame\n  - scale.frame_out -> scale.frame_in"), "expected an acyclic graph",
                  None),
        "oversized": (hello() + "#" * MAX_BYTES, f"expected at most {MAX_BYTES} bytes; got "
                      f"{len(hello()) + MAX_BYTES}", None),
        "not YAML": ("pipeline: [unclosed\noperators: {a: 1\n", "pipelineFile: expected a YAML pipeline file", None),
        "not a mapping": ("- just\n- a list\n", "expected a mapping", None),
    }


@pytest.mark.parametrize("case", list(_refusals(Path("/x"))))
def test_each_refusal_names_the_problem_and_registers_nothing_same_over_rest_and_grpc(platform: Platform,
                                                                                       case: str) -> None:
    """REST 400 and gRPC INVALID_ARGUMENT with the same message naming line and rule; the list of pipelines
    and the stored files are unchanged. Fails if any check is dropped (the file would be accepted)."""
    (platform.tmp / "outside").mkdir()
    (platform.inputs / "link").symlink_to(platform.tmp / "outside")
    text, says, on_line = _refusals(platform.tmp)[case]
    assert platform.grpc.create_pipeline(hello(), name="keep").name == "keep"
    before, files = platform.names(), platform.stored()

    r = platform.post_yaml(text, name="bad")
    assert r.status_code == 400, r.text
    with pytest.raises(grpc.RpcError) as err:
        platform.grpc.create_pipeline(text, name="bad")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == r.json()["detail"]  # the same answer on both transports
    detail = r.json()["detail"]
    assert says in detail, detail
    if on_line is not None:
        assert f"pipelineFile:{_line(text, on_line)}: pipeline:" in detail, detail
    assert str(platform.uploads) not in detail and ".incoming" not in detail  # names the field, not our temp path
    assert platform.names() == before == ["keep"] and platform.stored() == files
    assert list((platform.uploads / ".incoming").iterdir()) == []


def test_command_services_accepted_only_with_the_opt_in(tmp_path: Path) -> None:
    """--allow-pipeline-commands (allow_pipeline_commands) turns the command refusal off, nothing else."""
    p = Platform(tmp_path, allow_pipeline_commands=True)
    try:
        r = p.post_yaml(hello(services=COMMAND_SERVICE), name="with_web")
        assert r.status_code == 200, r.text
        r = p.post_yaml(hello(services=COMMAND_SERVICE, sink_out="/etc/x"), name="out")
        assert r.status_code == 400 and "expected a path under the configured roots" in r.json()["detail"]
        assert p.names() == ["with_web"]
    finally:
        p.close()


def test_relative_paths_run_in_the_jobs_folder(platform: Platform) -> None:
    """A relative output is accepted and lands in the job's own folder (the app runs there), not in the
    service's working folder. Fails if the job runs in the service's folder."""
    made = platform.grpc.create_pipeline(hello(sink_out="rel_out"), name="rel")
    inbox = platform.inputs / "in"
    inbox.mkdir()
    job = platform.grpc.submit({"pipeline": made.name, "input": str(inbox)})
    assert [j.status for j in platform.grpc.watch(job.id)][-1] == "succeeded", platform.grpc.job(job.id).error
    folder = Path(platform.grpc.job(job.id).output_dir).parent
    assert json.loads((folder / "rel_out" / "summary.json").read_text())["frames"] == 5
    assert not (Path.cwd() / "rel_out").exists()


def test_paths_are_checked_again_at_launch(platform: Platform) -> None:
    """A folder under a root that becomes a symlink out after the upload: the job is refused at launch and
    nothing is written outside. Fails if only the upload is checked."""
    dest, outside = platform.inputs / "dest", platform.tmp / "outside"
    dest.mkdir()
    outside.mkdir()
    made = platform.grpc.create_pipeline(hello(sink_out=f"{dest}/run"), name="to_dest")
    dest.rmdir()
    dest.symlink_to(outside)
    inbox = platform.inputs / "in"
    inbox.mkdir()
    job = platform.grpc.submit({"pipeline": made.name, "input": str(inbox)})
    final = [j for j in platform.grpc.watch(job.id)][-1]
    assert final.status == "failed" and "refused to start" in final.error, final.error
    assert "expected a path under the configured roots" in final.error and f"resolves to {outside}/run" in final.error
    assert list(outside.iterdir()) == []


def test_put_naming_a_stored_file_gets_the_rule_for_its_overrides(platform: Platform) -> None:
    """PUT /pipelines (and gRPC PutPipeline) with app = a stored upload and an override pointing out: refused."""
    made = platform.grpc.create_pipeline(hello(), name="ok")
    body = {"name": "sneak", "app": made.app, "overrides": ["sink.output=/etc/clara"]}
    r = platform.rest.put("/pipelines/sneak", json=body, headers=platform.headers)
    assert r.status_code == 400 and "operator 'sink' argument output: expected a path under" in r.json()["detail"]
    with pytest.raises(grpc.RpcError) as err:
        platform.grpc.put_pipeline(body)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details() == r.json()["detail"]
    for app in (str(platform.uploads), str(platform.uploads / ".incoming")):  # the folder itself is no app
        r = platform.rest.put("/pipelines/sneak", json={"name": "sneak", "app": app}, headers=platform.headers)
        assert r.status_code == 400 and r.json()["detail"].startswith("app: expected a stored pipeline file"), r.text
    assert platform.names() == ["ok"]


def test_token_required_for_uploads_when_configured(tmp_path: Path) -> None:
    """The same rule as every other route: no token, no upload (and nothing stored)."""
    p = Platform(tmp_path, api_token="s3cret-token")
    try:
        r = p.rest.post("/pipelines", content=hello(), headers={"Content-Type": "application/yaml"})
        assert r.status_code == 401
        with PlatformClient(p.target) as anon, pytest.raises(grpc.RpcError) as err:
            anon.create_pipeline(hello(), name="anon")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert p.stored() == [] and p.names() == []
        assert p.grpc.create_pipeline(hello(), name="ok").name == "ok"
    finally:
        p.close()


def test_cli_pipelines_create_file_uploads_to_a_remote_service(serve_factory, tmp_path: Path) -> None:
    """`clara-stream pipelines create --file x.yaml --api URL` against `dicom serve` (the file is sent, not named)."""
    sp = serve_factory().start()
    local = tmp_path / "mine.yaml"
    local.write_text(hello())
    env = {**os.environ, "CLARA_STREAM_API_TOKEN": ""}
    done = subprocess.run([sys.executable, "-m", "clara_stream.cli", "pipelines", "create", "from_cli", "--file",
                           str(local), "--api", sp.url], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-1500:]
    import httpx

    got = httpx.get(f"{sp.url}/pipelines/{done.stdout.strip()}").json()
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert got["name"] == "from_cli" and got["app"] == str(sp.data_dir / UPLOAD_DIR / f"{digest}.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(hello(services=COMMAND_SERVICE))
    done = subprocess.run([sys.executable, "-m", "clara_stream.cli", "pipelines", "create", "--file", str(bad),
                           "--api", sp.url], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0 and "answered 400" in done.stderr and "starts safely" in done.stderr
    assert [p["name"] for p in httpx.get(f"{sp.url}/pipelines").json()] == ["from_cli"]


def test_a_celery_worker_applies_the_same_rule_at_launch(platform: Platform) -> None:
    """The worker's launch check, the service's data folder as its shared root: the stored file passes with the
    job's own folders, an override pointing out is refused, a copy outside the shared folder is no app."""
    from clara_stream.platform.pipeline_uploads import check_shared_job_app
    from clara_stream.platform.status import InvalidRequestError

    made = platform.grpc.create_pipeline(hello(), name="w")
    shared = [platform.tmp / "data"]
    worker = PlatformSettings(data_dir=platform.tmp / "worker-local")
    job = shared[0] / "jobs" / "j1"
    row = {"app": made.app, "overrides": "[]", "input_dir": str(job / "input"), "output_dir": str(job / "output")}
    check_shared_job_app(row, worker, shared)
    with pytest.raises(InvalidRequestError, match="argument output: expected a path under"):
        check_shared_job_app({**row, "overrides": json.dumps(["sink.output=/etc/clara"])}, worker, shared)
    copy = platform.tmp / Path(made.app).name
    copy.write_bytes(Path(made.app).read_bytes())
    with pytest.raises(InvalidRequestError, match="app: expected an installed app"):
        check_shared_job_app({**row, "app": str(copy)}, worker, shared)


def test_cli_grpc_create_pipeline_sends_the_file(platform: Platform, tmp_path: Path) -> None:
    """`clara-stream grpc create-pipeline FILE`: registered from the content; a refused file exits non-zero
    with the service's message and registers nothing."""
    local = tmp_path / "g.yaml"
    local.write_text(hello(factor="5.0"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clara_stream.cli", "grpc", "create-pipeline", *args,
                               "--target", platform.target], capture_output=True, text=True, timeout=120)

    done = cli(str(local), "--name", "via_grpc_cli")
    assert done.returncode == 0, done.stderr[-1500:]
    assert platform.grpc.pipeline(done.stdout.strip()).app == str(
        platform.uploads / f"{hashlib.sha256(local.read_bytes()).hexdigest()}.yaml")
    local.write_text(hello(sink_in="sink.frames"))
    done = cli(str(local), "--name", "bad")
    assert done.returncode != 0 and "expected an input port of sink" in done.stderr
    assert platform.names() == ["via_grpc_cli"]


def test_the_rule_reads_references_as_the_pipeline_does() -> None:
    """upload_rules keeps its own copy of the ${…} pattern (importing the pipeline package loads holoscan into
    the service): fails if the two drift, so a reference form the runtime fills could not slip past the rule."""
    from clara_stream.pipeline.spec import REF
    from clara_stream.platform import upload_rules

    assert upload_rules._REF.pattern == REF.pattern
