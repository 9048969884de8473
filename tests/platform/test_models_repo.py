"""Model repository: versions, catalog, Triton layout, resolution and bad input."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from clara_stream.cli.models import models_app
from clara_stream.models import ModelRepository, resolve_model


def _onnx(path, scale: float = 2.0):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, 32, 32])
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [scale])
    graph = helper.make_graph([helper.make_node("Mul", ["image", "k"], ["logits"])], "g", [x], [y], [k])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_versions_layout_and_resolution(tmp_path):
    repo = ModelRepository(tmp_path / "repo")
    v1 = repo.add("organ_seg", _onnx(tmp_path / "a.onnx", 1.0), description="UNETR-lite")
    v2 = repo.add("organ_seg", _onnx(tmp_path / "b.onnx", 3.0))
    assert (v1.version, v2.version) == (1, 2)
    assert (tmp_path / "repo/organ_seg/1/model.onnx").is_file()
    assert (tmp_path / "repo/organ_seg/2/model.onnx").is_file()
    cfg = (tmp_path / "repo/organ_seg/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in cfg and 'name: "image"' in cfg and "dims: [ -1, 1, 32, 32 ]" in cfg
    assert repo.resolve("organ_seg") == tmp_path / "repo/organ_seg/2/model.onnx"
    assert repo.resolve_uri("models://organ_seg/1") == tmp_path / "repo/organ_seg/1/model.onnx"
    assert onnx.load(repo.resolve("organ_seg", 1)).graph.initializer[0].float_data == [1.0]
    entry = repo.show("organ_seg")
    assert entry.description == "UNETR-lite" and [v.version for v in entry.versions] == [1, 2]
    assert entry.versions[0].inputs[0]["dims"] == [-1, 1, 32, 32]
    assert repo.remove("organ_seg", 1) == [1]
    assert not (tmp_path / "repo/organ_seg/1").exists()
    assert [v.version for v in ModelRepository(tmp_path / "repo").show("organ_seg").versions] == [2]
    assert repo.remove("organ_seg") == [2]
    assert repo.list() == [] and not (tmp_path / "repo/organ_seg").exists()


def test_bad_input_is_named_and_changes_nothing(tmp_path):
    repo = ModelRepository(tmp_path / "repo")
    good = _onnx(tmp_path / "m.onnx")
    repo.add("m", good)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a loadable ONNX model"):
        repo.add("m", tmp_path / "junk.onnx")
    with pytest.raises(ValueError, match="expected a file ending in"):
        repo.add("m", tmp_path / "w.bin")
    with pytest.raises(ValueError, match="expected a name"):
        repo.add("bad name", good)
    with pytest.raises(ValueError, match="expected a new version"):
        repo.add("m", good, version=1)
    with pytest.raises(FileNotFoundError, match="missing"):
        repo.add("m", tmp_path / "nope.onnx")
    with pytest.raises(LookupError, match="expected a version of m"):
        repo.resolve("m", 7)
    assert [v.version for v in repo.show("m").versions] == [1]
    repo.resolve("m").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="file changed"):
        repo.resolve("m", verify=True)


def test_cli_add_list_show_remove(tmp_path):
    runner = CliRunner()
    repo = str(tmp_path / "repo")
    model = str(_onnx(tmp_path / "m.onnx"))
    r = runner.invoke(models_app, ["add", "seg", model, "--repo", repo, "--description", "demo"])
    assert r.exit_code == 0, r.output
    assert "added seg v1" in r.output
    r = runner.invoke(models_app, ["list", "--repo", repo])
    assert "seg" in r.output and "versions 1" in r.output
    r = runner.invoke(models_app, ["show", "seg", "--repo", repo])
    assert "in  image TYPE_FP32 [-1, 1, 32, 32]" in r.output
    r = runner.invoke(models_app, ["remove", "seg", "--repo", repo])
    assert r.exit_code == 0 and "removed seg" in r.output
    r = runner.invoke(models_app, ["show", "seg", "--repo", repo])
    assert r.exit_code != 0


PY_MODEL = """
import sys
sys.path.insert(0, {site!r})
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", (x + {add}).astype(np.float32))]))
        return out
"""

PY_CONFIG = """name: "add"
backend: "python"
max_batch_size: 0
version_policy: { all {} }
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
"""


def test_tritonserver_serves_every_version_of_the_repository(tmp_path, require_peers):
    """The real tritonserver binary loads the repository as laid out (catalog.json at the root)."""
    import httpx

    from clara_stream.inference.triton_server import TritonServer, ensure_stub_site, pytriton_root

    try:
        pytriton_root()
        site = ensure_stub_site(install=False)
    except FileNotFoundError as exc:
        require_peers(f"tritonserver not available: {exc}")  # skips here, fails under CI
    repo = ModelRepository(tmp_path / "repo")
    (tmp_path / "config.pbtxt").write_text(PY_CONFIG)
    for add in (1, 2):
        src = tmp_path / f"add{add}.py"
        src.write_text(PY_MODEL.format(site=str(site), add=add))
        repo.add("add", src, config=tmp_path / "config.pbtxt")
    assert (repo.root / "catalog.json").is_file()
    server = TritonServer(repo.root).start()
    try:
        for version, add in ((1, 1), (2, 2)):
            body = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32", "data": [0.0, 1.0, 2.0]}]}
            r = httpx.post(f"http://{server.http_url}/v2/models/add/versions/{version}/infer", json=body, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["data"] == [0.0 + add, 1.0 + add, 2.0 + add]
    finally:
        server.stop()


def test_resolve_model_for_apps(tmp_path, monkeypatch):
    monkeypatch.setenv("CLARA_STREAM_MODELS", str(tmp_path / "repo"))
    ModelRepository().add("seg", _onnx(tmp_path / "a.onnx"))
    ModelRepository().add("seg", _onnx(tmp_path / "b.onnx"))
    assert resolve_model("models://seg") == tmp_path / "repo/seg/2/model.onnx"
    assert resolve_model("models://seg/1") == tmp_path / "repo/seg/1/model.onnx"
    assert resolve_model("a.onnx", base=tmp_path) == tmp_path / "a.onnx"
    with pytest.raises(LookupError, match="expected a version of seg"):
        resolve_model("models://seg/9")
    with pytest.raises(FileNotFoundError, match="missing"):
        resolve_model("nope.onnx", base=tmp_path)
