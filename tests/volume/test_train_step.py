"""One training step of the organ model's training script, exported and served through the app's path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from clara_stream.apps.organ_segmentation.model import train
from clara_stream.operators.volume.segment import ModelCard

from clara_stream.inference import create_backend


def test_one_training_step_exports_a_working_model(tmp_path: Path) -> None:
    # the subset form (--labels) as used for multi_ai's kidney model: 2 organs -> 3 classes
    train.main(["--steps", "1", "--phantoms", "1", "--no-eval", "--threads", "1", "--labels", "3,4",
                "--out", str(tmp_path)])  # fmt: skip
    card = ModelCard.load(tmp_path)
    assert card.metrics["steps"] == 1 and card.labels == {1: "left kidney", 2: "right kidney"}
    assert card.num_classes == 3
    x = np.random.default_rng(0).random((1, 1, *card.roi_size), dtype=np.float32)
    onnx = create_backend("onnxruntime", tmp_path / card.files["onnx"]).infer(x)
    ts = create_backend("torch", tmp_path / card.files["torchscript"]).infer(x)
    a, b = next(iter(onnx.values())), next(iter(ts.values()))
    assert a.shape == (1, 3, *card.roi_size)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_one_prostate_training_step_exports_a_two_class_model(tmp_path: Path) -> None:
    from clara_stream.apps.prostate_mr.model import train as prostate

    prostate.main(["--steps", "1", "--phantoms", "1", "--batch", "1", "--no-eval", "--out", str(tmp_path)])
    card = ModelCard.load(tmp_path)
    assert card.metrics["steps"] == 1 and card.labels == {1: "prostate"} and card.spacing_mm == (1.5, 1.5, 3.0)
    x = np.zeros((1, 1, *card.roi_size), np.float32)
    out = next(iter(create_backend("onnxruntime", tmp_path / card.files["onnx"]).infer(x).values()))
    assert out.shape == (1, 2, *card.roi_size)


def test_one_lung_training_step_exports_both_models(tmp_path: Path) -> None:
    from clara_stream.apps.lung_ct.model import train as lung
    from clara_stream.operators.volume.classify import ClassifierCard

    lung.main(["--steps", "1", "--phantoms", "2", "--no-eval", "--out", str(tmp_path)])
    seg = ModelCard.load(tmp_path / "segmentation")
    cls = ClassifierCard.load(tmp_path / "classifier")
    assert seg.metrics["steps"] == cls.metrics["steps"] == 1 and seg.labels == {1: "lung"}
    x = np.zeros((1, 1, *cls.input_size), np.float32)
    logits = next(iter(create_backend("onnxruntime", tmp_path / "classifier" / cls.files["onnx"]).infer(x).values()))
    assert logits.shape == (1, len(cls.classes))
    assert lung.auc([0.9, 0.2, 0.6, 0.4], [True, False, True, False]) == 1.0
    assert lung.auc([0.1, 0.9, 0.5, 0.5], [True, False, True, False]) == 0.125
