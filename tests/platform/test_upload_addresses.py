"""Uploaded pipelines reach loopback or the site's allowed hosts only, never listen, never bind a wildcard.

Through the real REST upload (``POST /pipelines``) of a real PlatformService, and the rule on the
pipeline file the repo ships. Oracles: the host each message names is the one written in the test's
own text; the line is found with ``str.splitlines`` of the uploaded text.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from clara_stream.pipeline import parse_pipeline
from clara_stream.platform.upload_rules import UploadRules, rule_errors

from .test_pipeline_upload import Platform, hello

ENCODER = '  encoder: {type: VideoEncoderOp, args: {path: "${app.output}/o.mp4", live_url: "%s"}}\n'
DECODER = '  decoder: {type: VideoDecoderOp, args: {path: "%s", options: %s}}\n'
SHIPPED = Path(__file__).resolve().parents[2] / "apps" / "video_detection" / "pipeline.yaml"


@pytest.fixture
def platform(tmp_path: Path):
    p = Platform(tmp_path)
    yield p
    p.close()


def with_operator(line: str) -> str:
    return hello().replace("operators:\n", "operators:\n" + line)


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


ESCAPES = {  # name -> (file text, what the message must say, the text on the line it must name)
    "live video to an outside host": (with_operator(ENCODER % "udp://203.0.113.5:1234"),
                                      "operator 'encoder' argument live_url: expected a loopback host", "encoder:"),
    "listener on every interface": (with_operator(ENCODER % "tcp://0.0.0.0:9000?listen=1"),
                                    "argument live_url: expected a host, not a wildcard bind", "encoder:"),
    "listener on loopback": (with_operator(ENCODER % "tcp://127.0.0.1:9000?listen=1"),
                             "argument live_url: expected no listener in an uploaded pipeline", "encoder:"),
    "browser page on ::": (with_operator(ENCODER % "ws://[::]:8080/live"), "expected a host, not a wildcard",
                           "encoder:"),
    "rtsp server by option": (with_operator(DECODER % ("rtsp://127.0.0.1:8554/cam", "{rtsp_flags: listen}")),
                              "argument options.rtsp_flags: expected no listener", "decoder:"),
    "name merely starting with 127.": (with_operator(ENCODER % "udp://127.0.0.1.nip.io:1234"),
                                       "(host '127.0.0.1.nip.io')", "encoder:"),
    "input from an outside camera": (with_operator(DECODER % ("rtsp://198.51.100.7:554/cam", "{}")),
                                     "argument path: expected a loopback host", "decoder:"),
    "protocol prefix hiding an address": (with_operator(DECODER % ("async:tcp://198.51.100.7:9", "{}")),
                                          "the FFmpeg protocol prefix 'async'", "decoder:"),
    "outside triton by override": (hello(), "operator 'scale' argument url: expected a loopback host", "scale:"),
    "address through an app reference": (hello().replace("log_level: critical}", "log_level: critical, "
                                                         "dest: '203.0.113.5:1'}").replace(
        "operators:\n", "operators:\n" + ENCODER % "udp://${app.dest}"), "(host '203.0.113.5')", "encoder:"),
    "file: without slashes": (with_operator(DECODER % ("file:/etc/passwd", "{}")),
                              "argument path: expected a path under the configured roots", "decoder:"),
    "network scheme without slashes": (with_operator(DECODER % ("tcp:198.51.100.7:9000", "{}")),
                                       "the FFmpeg protocol prefix 'tcp'", "decoder:"),
    "a path outside holding a loopback URL": (hello(sink_out="/tmp/out/udp://127.0.0.1:1234"),
                                              "argument output: expected a path under the configured roots",
                                              "sink:"),
    "concat: of files outside": (with_operator(DECODER % ("concat:/etc/passwd|/etc/hosts", "{}")),
                                 "the FFmpeg protocol prefix 'concat'", "decoder:"),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_each_escape_is_refused_over_rest_naming_operator_argument_and_host(platform: Platform, case: str) -> None:
    """Fails on the old rule, which let every non-file: URL through (a 200 and a stored file)."""
    text, says, on_line = ESCAPES[case]
    params = {"set": ["scale.url=203.0.113.5:8001"]} if case == "outside triton by override" else {}
    r = platform.post_yaml(text, name="escape", **params)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert says in detail and f"pipelineFile:{_line(text, on_line)}: pipeline:" in detail, detail
    with pytest.raises(grpc.RpcError) as err:  # gRPC CreatePipeline: the same function, the same answer
        platform.grpc.create_pipeline(text, name="escape", overrides=params.get("set", []))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details() == detail
    assert platform.names() == [] and platform.stored() == []


@pytest.mark.parametrize("url", ["udp://127.0.0.1:1234", "udp://localhost:1234", "udp://[::1]:1234",
                                 "udp://camera.site.example:1234", "udp://10.20.30.40:1234"])
def test_loopback_and_allowed_hosts_pass_the_rest_upload(tmp_path: Path, url: str) -> None:
    """Loopback, and hosts the site allowed (a name, an IP written another way in the setting), are stored.
    Fails if the rule refuses all URLs or ignores upload_allowed_hosts."""
    p = Platform(tmp_path, upload_allowed_hosts=["Camera.Site.Example", "10.20.30.40"])
    try:
        text = hello().replace("log_level: critical}", f"log_level: critical, notes: {{stream_url: '{url}'}}}}")
        r = p.post_yaml(text, name="ok")
        assert r.status_code == 200, r.text
        assert p.names() == ["ok"]
        r = p.post_yaml(text.replace(url.split("//")[1].rsplit(":", 1)[0], "203.0.113.9"), name="out")
        assert r.status_code == 400 and "upload_allowed_hosts ['10.20.30.40', 'camera.site.example']" in \
            r.json()["detail"], r.text
    finally:
        p.close()


def test_an_allowed_host_still_may_not_listen(tmp_path: Path) -> None:
    """The allowlist names hosts to reach; a listener there is refused all the same."""
    p = Platform(tmp_path, upload_allowed_hosts=["10.20.30.40"])
    try:
        r = p.post_yaml(with_operator(ENCODER % "tcp://10.20.30.40:9000?listen=1"), name="l")
        assert r.status_code == 400 and "expected no listener" in r.json()["detail"], r.text
    finally:
        p.close()


def test_the_shipped_pipeline_passes_and_its_addresses_are_checked(tmp_path: Path) -> None:
    """apps/video_detection/pipeline.yaml (its triton URL a service connection) passes the rule in place; the same
    file pointed at an outside Triton or an outside live receiver is refused, a loopback one passes."""
    rules = UploadRules((SHIPPED.parents[1], tmp_path), tmp_path / "pipeline-files", tmp_path / "jobs")
    spec = parse_pipeline(SHIPPED)
    assert rule_errors(spec, rules) == []
    assert rule_errors(spec, rules, ["inference.url=127.0.0.1:8001", "encoder.live_url=udp://127.0.0.1:5004"]) == []
    errors = rule_errors(spec, rules, ["inference.url=192.0.2.4:8001", "encoder.live_url=rtp://192.0.2.5:5004"])
    assert [e.split(": expected")[0].rsplit(": ", 1)[1] for e in errors] == [
        "operator 'inference' argument url", "operator 'encoder' argument live_url"], errors
    assert "(host '192.0.2.4')" in errors[0] and "(host '192.0.2.5')" in errors[1]


def test_launch_applies_the_allowlist_of_now(tmp_path: Path) -> None:
    """A file stored while its host was allowed is refused at launch once the site drops the host: fails if only
    the upload is checked, or if the launch check ignores the allowlist."""
    from clara_stream.platform.pipeline_uploads import check_job_app
    from clara_stream.platform.settings import PlatformSettings
    from clara_stream.platform.status import InvalidRequestError

    p = Platform(tmp_path, upload_allowed_hosts=["10.20.30.40"])
    try:
        text = hello().replace("log_level: critical}", "log_level: critical, notes: {stream_url: 'udp://10.20.30.40:5'}}")
        made = p.post_yaml(text, name="cam").json()
        job = tmp_path / "data" / "jobs" / "j1"
        row = {"app": made["app"], "overrides": "[]", "input_dir": str(job / "input"),
               "output_dir": str(job / "output")}
        now = dict(data_dir=tmp_path / "data", app_roots=[p.apps], input_roots=[p.inputs])
        rules = UploadRules.where(PlatformSettings(**now, upload_allowed_hosts=["10.20.30.40"]),
                                  p.svc.input_roots, tmp_path / "data", job.parent)
        assert check_job_app(row, [p.apps], rules) == job
        dropped = UploadRules.where(PlatformSettings(**now), p.svc.input_roots, tmp_path / "data", job.parent)
        with pytest.raises(InvalidRequestError, match=r"notes.stream_url: expected a loopback host .*'10.20.30.40'"):
            check_job_app(row, [p.apps], dropped)
    finally:
        p.close()


def test_a_service_connection_inside_an_address_does_not_hide_its_host(platform: Platform) -> None:
    """``udp://203.0.113.5:1234/${services.triton.url}``: the old rule skipped every string holding a service
    reference, so the outside host passed; the whole-value connection of the shipped pipeline still passes."""
    services = f"services:\n  triton: {{type: triton, model_repository: {platform.inputs}}}\n"
    text = hello(services=services).replace("operators:\n", "operators:\n" + ENCODER % (
        "udp://203.0.113.5:1234/${services.triton.url}"))
    r = platform.post_yaml(text, name="hidden")
    assert r.status_code == 400 and "argument live_url: expected a loopback host" in r.json()["detail"] and \
        "(host '203.0.113.5')" in r.json()["detail"], r.text
    assert platform.names() == [] and platform.stored() == []
    r = platform.post_yaml(hello(services=services, sink_out="${services.triton.repository}/../../../etc/x"), name="up")
    assert r.status_code == 400 and "expected no '..' after ${services.triton.repository}" in r.json()["detail"], r.text
    assert platform.names() == [] and platform.stored() == []
