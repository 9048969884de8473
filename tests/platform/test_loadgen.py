"""``clara-stream loadgen`` against a running ``dicom serve``: over REST and as DICOM sends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from clara_stream.cli import main

PROBE = str(Path(__file__).parent / "apps" / "probe")
SEED = {
    "sources": [{"name": "lg", "aeTitle": "LOADGEN", "hostIp": "127.0.0.1"}],
    "pipelines": [{"name": "probe", "app": PROBE}],
    "aes": [{"name": "load", "aeTitle": "LOADAE", "timeout": 1, "workflows": ["probe"]}],
}


@pytest.fixture
def dataset(ct_small, tmp_path) -> Path:
    root = tmp_path / "dataset"
    for case in ("case1", "case2"):
        (root / case).mkdir(parents=True)
        for p in sorted(ct_small.iterdir())[:4]:
            shutil.copy(p, root / case / p.name)
    return root


@pytest.mark.parametrize("via", ["api", "dicom"])
def test_loadgen_prints_throughput_and_percentiles(serve_factory, dataset, capsys, via):
    serve = serve_factory(SEED).start()
    rc = main(
        [
            "loadgen",
            "--pipeline",
            "probe",
            "--dataset",
            str(dataset),
            "--jobs",
            "3",
            "--rate",
            "0",
            "--order",
            "random",
            "--via",
            via,
            "--api",
            serve.url,
            "--timeout-s",
            "120",
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, captured.err
    assert "3 submitted, 3 succeeded, 0 failed" in out
    assert "throughput:" in out and "p50" in out and "p99" in out
    jobs = httpx.get(serve.url + "/jobs").json()
    assert len(jobs) == 3 and {j["status"] for j in jobs} == {"succeeded"}
    for j in jobs:
        files = json.loads((Path(j["outputDir"]) / "probe.json").read_text())["files"]
        assert len(files) == 4  # each job saw exactly one case
    if via == "dicom":
        assert {j["source"] for j in jobs} == {"dicom:LOADAE"}


def test_loadgen_bad_arguments_are_named(serve_factory, dataset, capsys):
    serve = serve_factory(SEED).start()
    rc = main(
        [
            "loadgen",
            "--pipeline",
            "nope",
            "--dataset",
            str(dataset),
            "--jobs",
            "1",
            "--via",
            "dicom",
            "--api",
            serve.url,
        ]
    )
    assert rc != 0
    assert "expected an AE whose workflows include 'nope'" in capsys.readouterr().err
    rc = main(["loadgen", "--pipeline", "probe", "--dataset", str(dataset / "missing"), "--api", serve.url])
    assert rc != 0
    assert "expected a dataset folder" in capsys.readouterr().err
