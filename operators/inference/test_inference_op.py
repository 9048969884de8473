"""InferenceOp in a tiny graph over a small ONNX model: names and shapes from the model, outputs by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clara_stream.operators.inference.inference_op import InferenceOp
from clara_stream.operators.video.testing import CollectOp, GraphApp, ListSourceOp

from clara_stream import ports as P


def _affine_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 1])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
    ]
    graph = helper.make_graph(nodes, "affine", [x], [y, s], initializer=[two, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_inference_op_runs_model_on_each_tensor(tmp_path: Path) -> None:
    model = _affine_onnx(tmp_path / "affine.onnx")
    values = [np.arange(4, dtype=np.float32) + i for i in range(3)] + [np.ones((2, 4), np.float32)]
    ops: dict = {}

    def build(app: GraphApp) -> None:
        src = ListSourceOp(app, name="src", port=P.TENSOR, values=values, metas=[{"tag": i} for i in range(4)])
        ops["inf"] = InferenceOp(app, name="inference", model=model, threads=1)
        ops["sink"] = CollectOp(app, name="sink", port=P.LOGITS, meta_keys=("tag",))
        app.add_flow(src, ops["inf"], {(P.TENSOR, P.TENSOR)})
        app.add_flow(ops["inf"], ops["sink"], {(P.LOGITS, P.LOGITS)})

    GraphApp(build).run()
    outs = ops["sink"].values
    assert [o["y"].shape for o in outs] == [(4,), (4,), (4,), (2, 4)]  # batch axis added and removed again
    np.testing.assert_allclose(outs[1]["y"], 2 * values[1])
    np.testing.assert_allclose(outs[3]["s"], [[4.0], [4.0]])
    assert [m["tag"] for m in ops["sink"].metas] == [0, 1, 2, 3]  # metadata passes through
    assert [s.name for s in ops["inf"].backend.inputs] == ["x"]


def test_inference_op_validates_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="InferenceOp: expected backend in"):
        GraphApp(lambda app: InferenceOp(app, backend="tensorrt", model=tmp_path / "m.onnx")).compose_graph()
    with pytest.raises(FileNotFoundError, match="missing"):
        GraphApp(lambda app: InferenceOp(app, model=tmp_path / "m.onnx")).compose_graph()
    model = _affine_onnx(tmp_path / "affine.onnx")
    with pytest.raises(ValueError, match="input_name in"):
        GraphApp(lambda app: InferenceOp(app, model=model, input_name="nope")).compose_graph()
