"""``clara-stream jobs`` and ``clara-stream dicom echo|send`` against a running ``dicom serve``."""

from __future__ import annotations

from pathlib import Path

import httpx

from clara_stream.cli import main

from .conftest import wait_until

PROBE = str(Path(__file__).parent / "apps" / "probe")
SEED = {
    "sources": [{"name": "cli", "aeTitle": "CLISCU", "hostIp": "127.0.0.1"}],
    "pipelines": [{"name": "probe", "app": PROBE}],
    "aes": [{"name": "inbox", "aeTitle": "INBOX", "timeout": 1, "workflows": []}],
}


def test_jobs_and_dicom_commands(serve_factory, ct_small, tmp_path, capsys):
    serve = serve_factory(SEED, extra=["--input-root", str(ct_small)]).start()  # REST inputs are confined
    api = ["--api", serve.url]
    assert main(["jobs", "submit", "probe", str(ct_small), "--priority", "3", *api]) == 0
    job_id = capsys.readouterr().out.strip()
    wait_until(lambda: httpx.get(f"{serve.url}/jobs/{job_id}").json()["status"] == "succeeded", "job succeeded")
    assert main(["jobs", "list", *api]) == 0
    out = capsys.readouterr().out
    assert job_id in out and "succeeded" in out and "p3" in out
    assert main(["jobs", "show", job_id, *api]) == 0
    assert "status: succeeded" in capsys.readouterr().out
    assert main(["jobs", "cancel", job_id, *api]) != 0
    assert "expected queued or running" in capsys.readouterr().err
    assert main(["jobs", "submit", "probe", str(tmp_path / "missing"), *api]) != 0
    assert "input: expected an existing folder" in capsys.readouterr().err

    port = str(serve.dicom_port)
    assert main(["dicom", "echo", "127.0.0.1", port, "--aec", "INBOX", "--aet", "CLISCU"]) == 0
    assert main(["dicom", "echo", "127.0.0.1", port, "--aec", "INBOX", "--aet", "STRANGER"]) != 0
    assert "expected an association with INBOX" in capsys.readouterr().err  # refused (RJ, or cut under load)
    assert main(["dicom", "send", str(ct_small), "127.0.0.1", port, "--aec", "INBOX", "--aet", "CLISCU"]) == 0
    assert "sent 16 of 16" in capsys.readouterr().out
    assert len(list((serve.data_dir / "store" / "INBOX").rglob("*.dcm"))) == 16
