"""SegmentationInferenceOp: 3D segmentation with MONAI sliding-window inference on any backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.contracts import LABELS, VOLUME
from clara_stream.operators.volume.segment import ModelCard, segment

from clara_stream import ports as P
from clara_stream.inference import create_backend
from clara_stream.runtime import Operator, Port

_BACKENDS = ("torch", "onnxruntime", "triton")


class SegmentationInferenceOp(Operator):
    """Resample to the model's spacing, MONAI layout (channel-first, RAS), sliding window, labels back.

    The conversions to MONAI's conventions happen only inside this operator (library:
    :mod:`clara_stream.operators.volume.segment`); input and output stay (z, y, x) LPS.

    Ports
    -----
    volume : (z, y, x) host array in HU, metadata ``geometry``
    mask : uint8 (z, y, x) labels on the input's grid, same ``geometry``

    Parameters
    ----------
    model : path
        Folder with ``model.json`` (spacing, HU window, ROI, labels, files) and the weights, or a
        MONAI Bundle folder (``configs/metadata.json``, ``configs/inference.json``,
        ``models/model.ts`` / ``model.onnx``): spacing, intensity window and range, ROI size and
        label names then come from the bundle (:mod:`clara_stream.operators.volume.bundle`).
    backend : {"onnxruntime", "torch", "triton"}
        ``torch`` runs the TorchScript file, ``onnxruntime`` the ONNX file (both via
        ``clara_stream.inference.create_backend``), ``triton`` a model served at ``url``.
    url, model_name : str
        Triton only: ``host:port`` and the served model name.
    overlap : float in [0, 1)
        Sliding-window overlap (default 0.25).
    sw_batch_size : int
        Windows per backend call (default 1).
    threads : int, optional
        Intra-op threads of the local backends.
    """

    inputs = (Port(P.VOLUME, VOLUME),)
    outputs = (Port(P.MASK, LABELS),)

    def __init__(self, fragment: Any, *args: Any, model: Any = None, backend: str = "onnxruntime",
                 url: str | None = None, model_name: str | None = None, overlap: float = 0.25,
                 sw_batch_size: int = 1, threads: int | None = None, name: str = "inference",
                 **kwargs: Any) -> None:  # fmt: skip
        if backend not in _BACKENDS:
            raise ValueError(f"SegmentationInferenceOp: expected backend in {_BACKENDS}; got {backend!r}")
        if model is None:
            raise ValueError("SegmentationInferenceOp: expected model=<model.json folder or MONAI Bundle>; got None")
        if not 0 <= float(overlap) < 1 or int(sw_batch_size) < 1:
            raise ValueError(f"SegmentationInferenceOp: expected 0 <= overlap < 1 and sw_batch_size >= 1; "
                             f"got {overlap}, {sw_batch_size}")  # fmt: skip
        self.card = ModelCard.load(model)
        folder = Path(model) if Path(model).is_dir() else Path(model).parent
        if backend == "triton":
            self._backend_args: tuple[str, dict[str, Any]] = (
                "triton", dict(url=url, model_name=model_name or "organ_segmentation"))
        else:
            key = "torchscript" if backend == "torch" else "onnx"
            if key not in self.card.files:
                raise ValueError(f"SegmentationInferenceOp: expected a {key} file for backend {backend!r} in "
                                 f"{model}; got {sorted(self.card.files.values())}")  # fmt: skip
            self._backend_args = (backend, dict(model=folder / self.card.files[key], threads=threads))
        self.backend: Any = None  # created in start(): validate loads no model and contacts no server
        self.overlap, self.sw_batch_size = float(overlap), int(sw_batch_size)
        super().__init__(fragment, *args, name=name, **kwargs)

    def _predict(self, x: Any) -> Any:
        import torch

        logits = next(iter(self.backend.infer(x.numpy()).values()))
        return torch.from_numpy(logits if logits.flags.writeable else logits.copy())  # Triton's are read-only

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        vol = self.receive(op_input, P.VOLUME)
        geom = self.get_meta(P.GEOMETRY)
        labels = segment(vol, geom, self.card, self._predict, overlap=self.overlap, sw_batch_size=self.sw_batch_size)
        self.emit(op_output, labels, P.MASK, meta={P.GEOMETRY: geom})

    def start(self) -> None:
        kind, options = self._backend_args
        if kind == "triton":
            self.backend = create_backend(kind, **options)
        else:
            self.backend = create_backend(kind, options["model"], threads=options["threads"])

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.close()
