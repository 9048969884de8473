"""TorchScript backend: names and shapes travel inside the model file as ``io.json``.

:func:`save_torchscript` writes a module with that extra file; models saved elsewhere still
load, with inputs named from ``forward``'s arguments and shapes unknown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clara_stream.inference.base import InferenceBackend, TensorSpec

IO_FILE = "io.json"


def save_torchscript(
    module: object, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> Path:
    """Script/trace ``module`` is assumed done; save it with an ``io.json`` describing its tensors."""
    import torch

    io = {
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": np.dtype(s.dtype).name} for s in inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": np.dtype(s.dtype).name} for s in outputs],
    }
    torch.jit.save(module, str(path), _extra_files={IO_FILE: json.dumps(io)})
    return Path(path)


class TorchBackend(InferenceBackend):
    """Run a TorchScript module on CPU (or CUDA when available).

    Parameters
    ----------
    model : path
        A ``torch.jit.save`` file.
    threads : int or None
        ``torch.set_num_threads`` for this process when given.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a TorchScript archive.
    """

    kind = "torch"

    def __init__(self, model: str | Path, *, threads: int | None = None):
        import torch

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"TorchBackend: expected a TorchScript file; got missing {path}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        extra = {IO_FILE: ""}
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._module = torch.jit.load(str(path), map_location=self._device, _extra_files=extra).eval()
        except Exception as exc:  # torch raises RuntimeError/ValueError variants
            raise ValueError(f"TorchBackend: expected a TorchScript archive; got {exc} [{path}]") from exc
        self.path = path
        if extra[IO_FILE]:
            io = json.loads(extra[IO_FILE])
            self._inputs = tuple(_spec(d) for d in io["inputs"])
            self._outputs = tuple(_spec(d) for d in io["outputs"])
        else:
            args = [a.name for a in self._module.forward.schema.arguments[1:]]
            self._inputs = tuple(TensorSpec(a, (), np.dtype(np.float32)) for a in args)
            self._outputs = (TensorSpec("output_0", (), np.dtype(np.float32)),)
        self._torch = torch

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(feeds[s.name]).to(self._device) for s in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        if isinstance(out, dict):
            return {k: v.detach().cpu().numpy() for k, v in out.items()}
        outs = out if isinstance(out, (tuple, list)) else (out,)
        names = [s.name for s in self._outputs]
        if len(names) != len(outs):
            names = [f"output_{i}" for i in range(len(outs))]
        return {n: o.detach().cpu().numpy() for n, o in zip(names, outs, strict=True)}


def _spec(d: dict) -> TensorSpec:
    return TensorSpec(str(d["name"]), tuple(None if v is None else int(v) for v in d["shape"]), np.dtype(d["dtype"]))
