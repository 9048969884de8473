"""onnxruntime backend (the default): CPU here, CUDA provider when one is available."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clara_stream.inference.base import InferenceBackend, TensorSpec, free_dims

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeBackend(InferenceBackend):
    """Run an ONNX model with onnxruntime.

    Parameters
    ----------
    model : path
        The ``.onnx`` file.
    threads : int or None
        Intra-op threads (``None``: onnxruntime's default, one per core). Pipelines that overlap
        decode and encode with inference do better with 1–2 threads here.
    providers : list of str or None
        Execution providers; default CUDA first when available, then CPU.

    Raises
    ------
    FileNotFoundError
        The model file does not exist.
    ValueError
        onnxruntime cannot load it.
    """

    kind = "onnxruntime"

    def __init__(self, model: str | Path, *, threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"OnnxRuntimeBackend: expected an ONNX model file; got missing {path}")
        opts = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ValueError(f"OnnxRuntimeBackend: expected threads >= 1; got {threads}")
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
            if threads > 1:  # pool threads sleep between calls: spinning doubled the CPU per frame beside a pipeline
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in available]
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(f"OnnxRuntimeBackend: expected a loadable ONNX model; got {exc} [{path}]") from exc
        self.path = path
        self._inputs = tuple(_spec(a) for a in self._session.get_inputs())
        self._outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._names = [s.name for s in self._outputs]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._session.run(self._names, feeds), strict=True))


def _spec(arg: object) -> TensorSpec:
    t = arg.type
    if t not in _ORT_TYPES:
        raise ValueError(f"OnnxRuntimeBackend: expected a tensor type in {sorted(_ORT_TYPES)}; got {t}")
    return TensorSpec(arg.name, free_dims(arg.shape), np.dtype(_ORT_TYPES[t]))
