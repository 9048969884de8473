"""Inference backends: names/shapes/dtypes read from the model, batching, clear errors; Triton for real."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clara_stream.inference import create_backend
from clara_stream.inference.triton_server import TritonServer, ensure_stub_site, pytriton_root, write_onnx_python_model


def _onnx(path: Path, batch: int | str = "batch") -> Path:
    """y = 2x + 1 over (batch, 3, 4) float32, plus idx = argmax over the last axis (int64)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 4])
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, [batch, 3])
    init = [
        helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["t"]),
        helper.make_node("Add", ["t", "one"], ["y"]),
        helper.make_node("ArgMax", ["x"], ["idx"], axis=2, keepdims=0),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y, idx], init), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _onnx(tmp_path_factory.mktemp("m") / "affine.onnx")


def test_onnxruntime_reads_specs_and_batches(model: Path, tmp_path: Path) -> None:
    b = create_backend("onnxruntime", model, threads=1)
    assert [(s.name, s.shape, s.dtype.name) for s in b.inputs] == [("x", (None, 3, 4), "float32")]
    assert [(s.name, s.shape, s.dtype.name) for s in b.outputs] == [
        ("y", (None, 3, 4), "float32"),
        ("idx", (None, 3), "int64"),
    ]
    x = np.random.default_rng(0).random((5, 3, 4)).astype(np.float32)
    out = b.infer({"x": x})
    np.testing.assert_allclose(out["y"], 2 * x + 1, rtol=1e-6)
    assert np.array_equal(out["idx"], x.argmax(2))
    assert b.infer(x[0])["y"].shape == (3, 4)  # one item: batch axis added and removed
    fixed = create_backend("onnxruntime", _onnx(tmp_path / "fixed.onnx", batch=2))
    assert fixed.max_batch == 2
    np.testing.assert_allclose(fixed.infer(x[:4])["y"], 2 * x[:4] + 1, rtol=1e-6)  # split into 2 calls


def test_backend_errors_are_clear(model: Path, tmp_path: Path) -> None:
    b = create_backend("onnxruntime", model)
    with pytest.raises(ValueError, match=r"expected inputs \['x'\]; got \['z'\]"):
        b.infer({"z": np.zeros((1, 3, 4), np.float32)})
    with pytest.raises(ValueError, match=r"expected input x\[\?, 3, 4\] float32; got shape \(1, 4, 3\)"):
        b.infer({"x": np.zeros((1, 4, 3), np.float32)})
    with pytest.raises(TypeError, match="expected input x as float32; got complex64"):
        b.infer({"x": np.zeros((1, 3, 4), np.complex64)})
    with pytest.raises(FileNotFoundError, match="missing"):
        create_backend("onnxruntime", tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(ValueError, match="expected a loadable ONNX model"):
        create_backend("onnxruntime", junk)
    with pytest.raises(ValueError, match="expected kind in"):
        create_backend("tensorflow", model)
    with pytest.raises(ValueError, match="expected url and model_name"):
        create_backend("triton")


def test_torchscript_backend_matches_onnx(model: Path, tmp_path: Path) -> None:
    import torch

    from clara_stream.inference.base import TensorSpec
    from clara_stream.inference.torch_backend import save_torchscript

    class Affine(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return 2 * x + 1, x.argmax(2)

    f32, i64 = np.dtype("float32"), np.dtype("int64")
    path = save_torchscript(
        torch.jit.script(Affine()),
        tmp_path / "affine.pt",
        [TensorSpec("x", (None, 3, 4), f32)],
        [TensorSpec("y", (None, 3, 4), f32), TensorSpec("idx", (None, 3), i64)],
    )
    tb = create_backend("torch", path)
    assert [s.name for s in tb.inputs] == ["x"] and [s.name for s in tb.outputs] == ["y", "idx"]
    x = np.random.default_rng(1).random((2, 3, 4)).astype(np.float32)
    ref = create_backend("onnxruntime", model).infer(x)
    got = tb.infer(x)
    np.testing.assert_allclose(got["y"], ref["y"], rtol=1e-6)
    np.testing.assert_array_equal(got["idx"], ref["idx"])  # was after `and`: never ran


@pytest.fixture(scope="module")
def triton(model: Path, tmp_path_factory: pytest.TempPathFactory,  # noqa: ANN201
           require_peers: Callable[[str], None]):
    """The real tritonserver binary on loopback free ports, serving the ONNX model via the Python backend."""
    try:
        pytriton_root()
        stub = ensure_stub_site()
    except FileNotFoundError as exc:
        require_peers(f"tritonserver not available: {exc}")
    repo = tmp_path_factory.mktemp("repo")
    write_onnx_python_model(repo, "affine", model, max_batch_size=4, stub_site=stub)
    server = TritonServer(repo).start()
    yield server
    server.stop()
    shutil.rmtree(repo, ignore_errors=True)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_backend_against_real_server(triton: TritonServer, model: Path, protocol: str) -> None:
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    b = create_backend("triton", url=url, model_name="affine", protocol=protocol)
    assert [(s.name, s.shape) for s in b.inputs] == [("x", (None, 3, 4))] and b.max_batch == 4
    assert {s.name: s.dtype.name for s in b.outputs} == {"y": "float32", "idx": "int64"}
    x = np.random.default_rng(2).random((6, 3, 4)).astype(np.float32)  # > max_batch: split into 2 requests
    got, ref = b.infer({"x": x}), create_backend("onnxruntime", model).infer({"x": x})
    np.testing.assert_array_equal(got["y"], ref["y"])
    np.testing.assert_array_equal(got["idx"], ref["idx"])
    b.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_backend_used_from_other_threads(triton: TritonServer, model: Path, protocol: str) -> None:
    """Built on this thread, used from two others (as the engine's worker does), as in the app.

    Fails if one client is shared across threads: tritonclient's HTTP client is bound to its
    creator's gevent hub ("Cannot switch to a different thread"; inside the engine, SIGSEGV).
    """
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    b = create_backend("triton", url=url, model_name="affine", protocol=protocol)
    x = np.random.default_rng(3).random((2, 3, 4)).astype(np.float32)
    results: dict[int, np.ndarray | BaseException] = {}

    def work(k: int) -> None:
        try:
            results[k] = b.infer({"x": x + k})["y"]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[k] = exc

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (1, 2):
        assert isinstance(results[k], np.ndarray), results[k]
        np.testing.assert_allclose(results[k], 2 * (x + k) + 1, rtol=1e-6)  # closed form, not the same library
    assert b.clients == 3  # the builder's + one per worker thread
    b.close()


def test_triton_errors_name_the_server_and_model(triton: TritonServer, free_port: int) -> None:
    with pytest.raises(ConnectionError, match=r"expected model 'nope'.*ready"):
        create_backend("triton", url=triton.grpc_url, model_name="nope")
    with pytest.raises(ConnectionError, match=f"expected a Triton server at grpc://127.0.0.1:{free_port}"):
        create_backend("triton", url=f"127.0.0.1:{free_port}", model_name="affine")
