"""Every installed app composes into a valid typed graph, with port names from the vocabulary, and
validating or drawing it touches nothing: no input, no server, no file written."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from clara_stream.cli import main
from clara_stream.ports import is_canonical
from clara_stream.runtime import list_apps, load_app
from clara_stream.samples import write_sample


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("samples")
    video = write_sample("video", root / "video", frames=6, width=160, height=96)
    ct = write_sample("ct", root / "ct", shape=(8, 32, 32))
    return {"video": video["video"], "dicom": ct["dicom"], "mhd": ct["labels"]}


INPUT_KIND = {"video_detection": "video", "organ_segmentation": "dicom", "series_selection": "dicom",
              "multi_ai": "dicom", "volume_crop": "mhd"}


def test_reference_apps_are_installed() -> None:
    assert {"hello_stream", *INPUT_KIND} <= set(list_apps())


@pytest.mark.parametrize("name", list_apps())
def test_app_graph_is_valid(name: str, inputs: dict[str, Path], tmp_path: Path) -> None:
    kind = INPUT_KIND.get(name)
    app = load_app(name, input=inputs[kind] if kind else None, output=tmp_path)
    assert app.validate() == []
    assert app.operators, f"{name} composed no operators"
    ports = [(op.name, p.name) for op in app.operators for p in (*op.inputs, *op.outputs)]
    assert [f"{o}.{p}" for o, p in ports if not is_canonical(p)] == []
    typed = [op.name for op in app.operators if not (op.inputs or op.outputs)]
    assert typed == [], f"operators without declared ports: {typed}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: nothing listens there


@pytest.mark.parametrize("name", list_apps())
def test_validate_and_graph_have_no_side_effects(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --input, no --output, Triton (where the app infers) pointed at a port nobody listens on:
    fails if an operator opens inputs, contacts a server or creates folders in __init__/setup."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    sections = load_app(name).config_dict
    triton = ["--set", "inference.backend=triton", "--set", f"inference.url=127.0.0.1:{_closed_port()}"]
    triton += ["--set", "inference.model_name=m"] if "model_name" in sections.get("inference", {}) else []
    extra = triton if {"backend", "url"} <= set(sections.get("inference", {})) else []  # apps that offer Triton
    assert main(["validate", name, *extra]) == 0
    assert main(["graph", name, "--out", str(tmp_path / "g.dot"), *extra]) == 0
    assert (tmp_path / "g.dot").is_file()
    assert sorted(cwd.rglob("*")) == [] and sorted(tmp.rglob("*")) == []
