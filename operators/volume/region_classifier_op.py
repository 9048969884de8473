"""RegionClassifierOp: class probabilities of the segmented region of a volume (e.g. COVID-like lungs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.classify import ClassifierCard, classify
from clara_stream.operators.volume.contracts import LABELS, VOLUME

from clara_stream import ports as P
from clara_stream.arrays import to_host
from clara_stream.contracts import Contract, Kind
from clara_stream.inference import create_backend
from clara_stream.runtime import Operator, Port

#: Class name → probability (sums to 1), for one volume.
PROBABILITIES = Contract(kind=Kind.OBJECT, domain="report/class-probabilities", pytype=dict,
                         description="{class name: softmax probability}")  # fmt: skip


class RegionClassifierOp(Operator):
    """Classify the region ``mask > 0`` of ``volume`` with an ONNX classifier (Clara Deploy's second operator).

    Ports
    -----
    volume : (z, y, x) HU, metadata ``geometry``
    mask : uint8 (z, y, x) region labels on the same grid (the segmentation's output)
    report : {class name: probability}

    Parameters
    ----------
    model : path
        Folder with ``classifier.json`` and its ONNX file (required).
    threads : int, optional
        onnxruntime intra-op threads.

    Raises
    ------
    ValueError
        At run time for an empty or misshapen mask (named), so a failed segmentation is not classified.
    """

    inputs = (Port(P.VOLUME, VOLUME), Port(P.MASK, LABELS))
    outputs = (Port(P.REPORT, PROBABILITIES),)

    def __init__(self, fragment: Any, *args: Any, model: Any = None, threads: int | None = None,
                 name: str = "classifier", **kwargs: Any) -> None:  # fmt: skip
        if model is None:
            raise ValueError("RegionClassifierOp: expected model=<folder with classifier.json>; got None")
        self.card = ClassifierCard.load(model)
        folder = Path(model) if Path(model).is_dir() else Path(model).parent
        if "onnx" not in self.card.files:
            raise ValueError(f"RegionClassifierOp: expected an onnx file in {folder}; got {self.card.files}")
        self.model_path, self.threads, self.backend = folder / self.card.files["onnx"], threads, None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        self.backend = create_backend("onnxruntime", self.model_path, threads=self.threads)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        volume = to_host(self.receive(op_input, P.VOLUME))
        mask = to_host(self.receive(op_input, P.MASK))
        geometry = self.get_meta(P.GEOMETRY)
        probs = classify(volume, mask, geometry, self.card, lambda x: next(iter(self.backend.infer(x).values())))
        self.emit(op_output, probs, P.REPORT)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.close()
