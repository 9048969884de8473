"""Inference backends: one interface over onnxruntime (default), TorchScript and Triton.

Pure library code (no holoscan import): the InferenceOp, services, benchmarks and tests all call
:func:`create_backend`. Backends take and return host numpy arrays keyed by the model's tensor
names; names, shapes and dtypes are read from the model.
"""

from __future__ import annotations

from pathlib import Path

from clara_stream.inference.base import InferenceBackend, TensorSpec

KINDS: tuple[str, ...] = ("onnxruntime", "torch", "triton")

__all__ = ["KINDS", "InferenceBackend", "TensorSpec", "create_backend"]


def create_backend(
    kind: str = "onnxruntime",
    model: str | Path | None = None,
    *,
    url: str | None = None,
    model_name: str | None = None,
    model_version: str = "",
    protocol: str = "grpc",
    threads: int | None = None,
) -> InferenceBackend:
    """Open a model with the chosen engine.

    Parameters
    ----------
    kind : {"onnxruntime", "torch", "triton"}
        ``onnxruntime`` runs an ``.onnx`` file in process; ``torch`` a TorchScript file; ``triton``
        sends requests to a Triton server at ``url``.
    model : path, optional
        Model file (local kinds). For ``triton``, its stem is the default ``model_name``.
    url, model_name, model_version, protocol
        Triton only: ``host:port``, the model in the server's repository, its version (``""`` =
        server policy) and ``grpc`` or ``http``.
    threads : int, optional
        Intra-op threads for the local kinds.

    Raises
    ------
    ValueError
        Unknown kind, or a required argument missing for it.
    FileNotFoundError
        The model file does not exist (local kinds).
    """
    if kind in ("onnxruntime", "onnx", "ort"):
        if model is None:
            raise ValueError("create_backend: expected model=<path to .onnx> for kind 'onnxruntime'; got None")
        from clara_stream.inference.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, threads=threads)
    if kind in ("torch", "torchscript"):
        if model is None:
            raise ValueError("create_backend: expected model=<path to TorchScript .pt> for kind 'torch'; got None")
        from clara_stream.inference.torch_backend import TorchBackend

        return TorchBackend(model, threads=threads)
    if kind == "triton":
        name = model_name or (Path(model).stem if model is not None else None)
        if not url or not name:
            raise ValueError(
                f"create_backend: expected url and model_name for kind 'triton'; got url={url!r}, model_name={name!r}"
            )
        from clara_stream.inference.triton_backend import TritonBackend

        return TritonBackend(url=url, model_name=name, model_version=model_version, protocol=protocol)
    raise ValueError(f"create_backend: expected kind in {KINDS}; got {kind!r}")
