"""InferenceOp: run any model through a pluggable backend (onnxruntime, TorchScript, Triton)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clara_stream import ports as P
from clara_stream.contracts import Contract, Device, Kind
from clara_stream.inference import KINDS, InferenceBackend, create_backend
from clara_stream.runtime import Operator, Port

TENSOR_ANY = Contract(kind=Kind.ANY, device=Device.ANY, description="one array, or a dict of arrays by input name")
OUTPUTS = Contract(
    kind=Kind.TENSOR_MAP,
    device=Device.HOST,
    domain="tensor/outputs",
    description="every model output by tensor name (host arrays)",
)


class InferenceOp(Operator):
    """Feed each received tensor (or dict of tensors) to a model and emit all its outputs.

    Ports
    -----
    tensor : an array for a one-input model, or a dict ``{input name: array}``; host or device
        (device arrays are copied to host for the CPU backends). A leading batch axis is optional:
        a single item gets one added and removed again.
    logits : dict ``{output name: host array}``; all received metadata passes on

    Parameters
    ----------
    backend : {"onnxruntime", "torch", "triton"}
        Engine (default onnxruntime).
    model : path, optional
        Model file (onnxruntime, torch). For triton the default model name is its stem.
    url, model_name, model_version, protocol
        Triton only: ``host:port``, model name/version on the server, ``grpc`` or ``http``.
    threads : int, optional
        Intra-op threads (local backends).
    input_name : str, optional
        For a multi-input model fed a single array: which input it is.

    Raises
    ------
    ValueError, FileNotFoundError, ConnectionError
        At construction: unknown backend, missing model, unreachable Triton server.

    Notes
    -----
    The backend is opened in ``__init__`` (so a bad model or server fails before the graph runs)
    and closed in ``stop``. Model input/output names, shapes and dtypes come from the model
    (``self.backend.inputs`` / ``outputs``); batches larger than the model takes are split.
    """

    inputs = (Port(P.TENSOR, TENSOR_ANY),)
    outputs = (Port(P.LOGITS, OUTPUTS),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        backend: str = "onnxruntime",
        model: str | Path | None = None,
        url: str | None = None,
        model_name: str | None = None,
        model_version: str = "",
        protocol: str = "grpc",
        threads: int | None = None,
        input_name: str | None = None,
        name: str = "inference",
        **kwargs: Any,
    ) -> None:
        if backend not in KINDS:
            raise ValueError(f"InferenceOp: expected backend in {KINDS}; got {backend!r}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"InferenceOp: expected threads >= 1; got {threads}")
        options = dict(url=url, model_name=model_name, model_version=str(model_version), protocol=protocol,
                       threads=int(threads) if threads is not None else None)
        self._backend_args = (backend, model, options)
        self._input_name = input_name
        self.backend: InferenceBackend | None = None
        if backend != "triton":  # a local model is checked now; a Triton server is contacted by start()
            self._connect()
        self.calls = 0
        super().__init__(fragment, *args, name=name, **kwargs)

    def _connect(self) -> None:
        kind, model, options = self._backend_args
        self.backend = create_backend(kind, model, **options)
        names = [s.name for s in self.backend.inputs]
        if self._input_name is not None and self._input_name not in names:
            raise ValueError(f"InferenceOp: expected input_name in {names}; got {self._input_name!r}")
        self.input_name = self._input_name or (names[0] if len(names) == 1 else None)

    def start(self) -> None:
        if self.backend is None:
            self._connect()

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        value = self.receive(op_input, P.TENSOR)
        if isinstance(value, dict):
            feeds = {k: _host(v) for k, v in value.items()}
        else:
            if self.input_name is None:
                raise ValueError(
                    f"InferenceOp: expected a dict of inputs {[s.name for s in self.backend.inputs]} "
                    f"(or input_name=...); got one array"
                )
            feeds = {self.input_name: _host(value)}
        outputs = self.backend.infer(feeds)
        self.calls += 1
        self.emit(op_output, outputs, P.LOGITS)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.close()


def _host(value: Any) -> np.ndarray:
    if hasattr(value, "__cuda_array_interface__"):
        return value.get()  # cupy → numpy (one counted device-to-host copy)
    return np.asarray(value)
