"""The platform gRPC API against a real PlatformService: REST's operations, auth rule and field errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydicom import dcmread

from clara_stream.platform.client import PlatformClient
from clara_stream.platform.grpc import build
from clara_stream.platform.grpc.server import serve
from clara_stream.platform.service import PlatformService
from clara_stream.platform.settings import PlatformSettings

from .conftest import wait_until

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

HELLO = """\
pipeline: hello_grpc
app: {scheduler: greedy, log_level: critical}
operators:
  source: {type: ArraySourceOp, args: {count: 5, height: 16, width: 24}}
  scale: {type: ScaleOp, args: {factor: 2.0}}
  sink: {type: StatsSinkOp, args: {output: "${app.output}"}}
flows:
  - source.frame -> scale.frame_in
  - scale.frame_out -> sink.frame
"""


def test_generated_code_matches_the_rest_schemas(tmp_path: Path) -> None:
    """Fails when schemas.py changed (a REST field added) and the committed proto/pb2 were not rebuilt."""
    for fresh in build.build(tmp_path):
        assert fresh.read_text() == (build.HERE / fresh.name).read_text(), f"rebuild: python -m {build.__name__}"
    assert "optional int64 priority" in (tmp_path / build.PROTO).read_text()


@pytest.fixture
def platform(tmp_path: Path, request: pytest.FixtureRequest):  # noqa: ANN201
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hello.yaml").write_text(HELLO)
    token = getattr(request, "param", None)
    settings = PlatformSettings(data_dir=tmp_path / "data", app_roots=[apps], input_roots=[tmp_path], dicom_port=0,
                                http_port=0, poll_interval_s=0.05, api_token=token)
    svc = PlatformService(settings, dicom=False)
    svc.start()
    server, port = serve(svc)
    yield svc, f"127.0.0.1:{port}", apps / "hello.yaml", token
    server.stop(grace=None)
    svc.stop()


def test_pipeline_and_job_lifecycle_with_watch_stream(platform, tmp_path: Path) -> None:
    svc, target, yaml_path, _ = platform
    inbox = tmp_path / "in"
    inbox.mkdir()
    with PlatformClient(target) as c:
        put = c.put_pipeline({"name": "hello", "app": str(yaml_path), "overrides": ["scale.factor=3.0"]})
        assert put.id and c.pipeline("hello").overrides == ["scale.factor=3.0"]
        assert [p.name for p in c.pipelines()] == ["hello"] and c.pipelines()[0].cpu_memory_mb == 512  # REST default
        job = c.submit({"pipeline": "hello", "input": str(inbox), "priority": 7})
        assert job.priority == 7 and job.status in ("queued", "running")
        states = [j.status for j in c.watch(job.id)]
        assert states[-1] == "succeeded" and "running" in states and len(states) == len(set(states))
        assert c.job(job.id).status == "succeeded" == svc.queue.get(job.id).status
        assert [j.id for j in c.jobs(status="succeeded", pipeline="hello")] == [job.id]
        assert c.jobs(status="failed") == []
        summary = json.loads(next(Path(c.job(job.id).output_dir).rglob("summary.json")).read_text())
        assert summary["frames"] == 5 and summary["max"] == 3.0
        assert c.delete_pipeline("hello").name == "hello" and c.pipelines() == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c, p, t: c.submit({"pipeline": "hello", "input": str(t), "priority": 500}), "priority"),
        (lambda c, p, t: c.submit({"pipeline": "hello", "input": "/etc"}), "input"),
        (lambda c, p, t: c.put_pipeline({"name": "x", "app": "/etc"}), "app"),
        (lambda c, p, t: c.put_pipeline({"name": "x", "app": str(p), "max_retries": 99}), "max_retries"),
        (lambda c, p, t: c.jobs(status="exploded"), "status"),
    ],
)
def test_bad_arguments_are_invalid_argument_naming_the_field(platform, tmp_path: Path, call, field: str) -> None:
    svc, target, yaml_path, _ = platform
    with PlatformClient(target) as c:
        c.put_pipeline({"name": "hello", "app": str(yaml_path)})
        with pytest.raises(grpc.RpcError) as err:
            call(c, yaml_path, tmp_path)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(field), \
            err.value.details()
        assert svc.queue.list() == [] and [p.name for p in c.pipelines()] == ["hello"]  # nothing registered
        with pytest.raises(grpc.RpcError) as missing:
            c.job("nope")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("platform", ["s3cret-token"], indirect=True)
def test_token_required_when_configured_health_and_reflection_open(platform) -> None:
    _, target, yaml_path, token = platform
    with PlatformClient(target) as anon, pytest.raises(grpc.RpcError) as err:
        anon.pipelines()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with PlatformClient(target, token="wrong") as bad, pytest.raises(grpc.RpcError) as err:
        list(bad.watch("x"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with PlatformClient(target, token=token) as ok:
        assert ok.pipelines() == []
    with grpc.insecure_channel(target) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="clara_stream.platform.Platform"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = {s.name for a in answers for s in a.list_services_response.service}
    assert "clara_stream.platform.Platform" in names and "grpc.health.v1.Health" in names


def test_beyond_loopback_without_token_is_refused(tmp_path: Path) -> None:
    from clara_stream.platform.status import InvalidRequestError

    svc = PlatformService(PlatformSettings(data_dir=tmp_path / "d", dicom_port=0, http_port=0), dicom=False)
    with pytest.raises(InvalidRequestError, match="grpc_host: expected loopback"):
        serve(svc, host="0.0.0.0")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dicom_payload_upload_job_watch_download_seg(platform, ct_small: Path, tmp_path: Path) -> None:
    """Upload a CT series, run organ_segmentation on it, stream its states, download the SEG (checksummed).

    The SEG is read back with pydicom and must reference the uploaded series; the upload must hold the
    same bytes as the source files (hashlib over each file on both sides).
    """
    svc, target, _, _ = platform
    with PlatformClient(target, timeout_s=300) as c:
        payload = c.upload(ct_small)
        sources = sorted(p for p in ct_small.iterdir() if p.is_file())
        assert list(payload.files) == [p.name for p in sources] and payload.bytes == sum(p.stat().st_size
                                                                                       for p in sources)
        assert all(_sha(Path(payload.path) / p.name) == _sha(p) for p in sources)
        c.put_pipeline({"name": "seg", "app": "organ_segmentation"})
        job = c.submit({"pipeline": "seg", "input": payload.path, "priority": 3})
        states = [j.status for j in c.watch(job.id)]
        assert states[-1] == "succeeded", (states, c.job(job.id).error)
        seg_file = c.download("seg.dcm", tmp_path / "seg.dcm", job=job.id)
        results = c.results(job.id)
        rest = svc.results.results(job_id=job.id, limit=500)
        assert [(r.path, r.size, r.sop_uid) for r in results] == [(r.path, r.size, r.sop_uid) for r in rest]
        with pytest.raises(grpc.RpcError) as unknown:
            c.results("no-such-job")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    seg = dcmread(seg_file)
    assert any(r.sop_uid == seg.SOPInstanceUID and r.path.endswith("seg.dcm") for r in results)
    assert seg.SOPClassUID == SEG_STORAGE
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == dcmread(sources[0]).SeriesInstanceUID
    assert _sha(seg_file) == _sha(Path(svc.queue.get(job.id).output_dir) / "seg.dcm")


def _chunks(files: dict[str, bytes], *, digest: dict[str, str] | None = None, fail_after: int | None = None,
            end: bool = True, after_end: bool = False, end_with_data: bool = False, empty: bool = False):
    from clara_stream.platform.grpc import platform_pb2 as pb

    for i, (name, data) in enumerate(files.items()):
        if fail_after is not None and i == fail_after:
            raise ConnectionError("client went away mid-upload")
        yield pb.PayloadChunk(path=name, data=data[:3])
        if empty:
            yield pb.PayloadChunk(path=name)
        sha = (digest or {}).get(name, hashlib.sha256(data).hexdigest())
        yield pb.PayloadChunk(path=name, data=data[3:], sha256=sha)
    if end:
        yield pb.PayloadChunk(end=True, data=b"tail" if end_with_data else b"")
    if after_end:
        yield pb.PayloadChunk(path="late.dcm", data=b"x", sha256=hashlib.sha256(b"x").hexdigest())


@pytest.mark.parametrize(
    ("kwargs", "files", "code", "field"),
    [
        ({"fail_after": 1}, {"a.dcm": b"0123456789", "b.dcm": b"abcdefgh"}, grpc.StatusCode.CANCELLED, None),
        ({"digest": {"b.dcm": "0" * 64}}, {"a.dcm": b"0123456789", "b.dcm": b"abcdefgh"},
         grpc.StatusCode.INVALID_ARGUMENT, "sha256"),
        ({}, {"../escape.dcm": b"0123456789"}, grpc.StatusCode.INVALID_ARGUMENT, "path"),
        # Every file whole, but the stream stopped without its end chunk: what the server sees when
        # grpcio delivers a client's cancellation between two files as a plain end of stream.
        ({"end": False}, {"a.dcm": b"0123456789", "b.dcm": b"abcdefgh"}, grpc.StatusCode.INVALID_ARGUMENT, "end"),
        ({"after_end": True}, {"a.dcm": b"0123456789"}, grpc.StatusCode.INVALID_ARGUMENT, "end"),
        ({"empty": True}, {"a.dcm": b"0123456789"}, grpc.StatusCode.INVALID_ARGUMENT, "data: expected every chunk"),
        ({"end_with_data": True}, {"a.dcm": b"0123456789"}, grpc.StatusCode.INVALID_ARGUMENT, "end: expected the "
         "end chunk to carry no path, data or sha256; got data"),
    ],
)
def test_cut_short_or_bad_upload_registers_nothing(platform, kwargs, files, code, field) -> None:
    svc, target, _, _ = platform
    with PlatformClient(target) as c:
        with pytest.raises(grpc.RpcError) as err:
            c.stub.UploadPayload(_chunks(files, **kwargs), timeout=30)
        assert err.value.code() in (code, grpc.StatusCode.UNKNOWN if field is None else code)
        if field:
            assert err.value.details().startswith(field), err.value.details()
    root = Path(svc.settings.data_dir) / "payloads"

    def clean() -> bool:
        return not any(root.iterdir())
    wait_until(clean, "the partial upload folder removed")
    assert not (root.parent / "escape.dcm").exists()


def test_dicom_serve_starts_the_grpc_api_beside_rest(serve_factory) -> None:
    """`clara-stream dicom serve --grpc-port 0`: the port is in service.json; the API answers what REST stores."""
    import httpx

    sp = serve_factory(extra=["--grpc-port", "0"]).start()
    assert httpx.put(f"{sp.url}/pipelines/org", json={"name": "org", "app": "organ_segmentation"}).status_code == 200
    with PlatformClient(f"127.0.0.1:{sp.info['grpcPort']}") as c:
        assert [(p.name, p.app) for p in c.pipelines()] == [("org", "organ_segmentation")]


def test_cli_upload_submit_watch_download_through_the_client(platform, tmp_path: Path) -> None:
    import subprocess
    import sys

    _, target, yaml_path, _ = platform
    folder = tmp_path / "payload"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.bin").write_bytes(bytes(range(256)) * 9000)  # > one 1 MiB chunk: several pieces
    with PlatformClient(target) as c:
        c.put_pipeline({"name": "hello", "app": str(yaml_path)})

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "clara_stream.cli", "grpc", *args, "--target", target],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1500:]
        return done.stdout.strip()

    payload_path = cli("upload", str(folder)).split()[-1]
    assert _sha(Path(payload_path) / "sub" / "x.bin") == _sha(folder / "sub" / "x.bin")
    job = cli("submit", "hello", "--input", payload_path, "--priority", "5")
    assert cli("watch", job).splitlines()[-1] == "succeeded"
    out = Path(cli("download", job, "summary.json", "--out", str(tmp_path / "s.json")))
    assert json.loads(out.read_text())["frames"] == 5


def test_cli_errors_are_one_line_naming_the_call_and_code(platform, tmp_path: Path) -> None:
    """An unknown job or a dead port: one line naming the RPC and its status, no traceback, exit 2 (user error)."""
    import subprocess
    import sys

    from .conftest import pick_port

    _, target, _, _ = platform

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clara_stream.cli", "grpc", *args],
                              capture_output=True, text=True, timeout=300)

    missing = cli("watch", "no-such-job", "--target", target)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "grpc: WatchJob answered NOT_FOUND" in missing.stderr and "no-such-job" in missing.stderr
    dead = cli("submit", "hello", "--input", str(tmp_path), "--target", f"127.0.0.1:{pick_port()}")
    assert dead.returncode == 2 and "Traceback" not in dead.stderr
    assert "grpc: CreateJob answered UNAVAILABLE" in dead.stderr and "dicom serve --grpc-port" in dead.stderr
