"""The backend interface every inference engine implements, with shape checks and batching.

A backend is pure Python (no holoscan import) so operators, services and tests share it. Tensor
names, shapes and dtypes come from the model itself (ONNX graph, TorchScript extra file, Triton
model metadata); a dimension that the model leaves open is ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Parameters
    ----------
    name : str
        Tensor name as the model spells it.
    shape : tuple of int or None
        Including the batch dimension when the model has one; ``None`` marks a free dimension.
    dtype : numpy.dtype
        Element type.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {np.dtype(self.dtype).name}"


class InferenceBackend(ABC):
    """Run a model on host arrays.

    Subclasses set ``_inputs``/``_outputs`` from the model and implement :meth:`_run`. The public
    :meth:`infer` checks names, dtypes and shapes against the model, adds a missing batch axis,
    and splits a batch the model cannot take in one call (fixed batch dimension) into chunks.
    """

    kind: str = "base"
    _inputs: tuple[TensorSpec, ...] = ()
    _outputs: tuple[TensorSpec, ...] = ()

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @property
    def max_batch(self) -> int | None:
        """Largest batch one call accepts (``None`` = any); from the first input's batch dim."""
        if not self._inputs or not self._inputs[0].shape:
            return None
        return self._inputs[0].shape[0]

    def describe(self) -> str:
        ins = ", ".join(s.describe() for s in self._inputs)
        outs = ", ".join(s.describe() for s in self._outputs)
        return f"{self.kind}({ins}) -> ({outs})"

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one call whose inputs already match the model."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions or connections (idempotent)."""

    def __enter__(self) -> InferenceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run the model; return every output by name.

        Parameters
        ----------
        feeds : mapping of name to array, or one array when the model has one input
            Arrays may lack the leading batch axis (one item); it is then added and removed.

        Raises
        ------
        ValueError
            An input is missing or unknown, or its shape does not fit the model.
        TypeError
            An input's dtype cannot be cast safely to the model's.
        """
        if isinstance(feeds, np.ndarray) or hasattr(feeds, "__array__") and not isinstance(feeds, Mapping):
            if len(self._inputs) != 1:
                raise ValueError(
                    f"{type(self).__name__}: expected a dict of {len(self._inputs)} inputs "
                    f"({', '.join(s.name for s in self._inputs)}); got one array"
                )
            feeds = {self._inputs[0].name: np.asarray(feeds)}
        names = {s.name for s in self._inputs}
        missing, unknown = names - set(feeds), set(feeds) - names
        if missing or unknown:
            raise ValueError(
                f"{type(self).__name__}: expected inputs {sorted(names)}; got {sorted(feeds)} "
                f"[missing {sorted(missing)}, unknown {sorted(unknown)}]"
            )
        prepared: dict[str, np.ndarray] = {}
        unbatched = False
        for spec in self._inputs:
            arr = np.asarray(feeds[spec.name])
            if spec.shape and arr.ndim == len(spec.shape) - 1:
                arr, unbatched = arr[None], True
            _check_shape(type(self).__name__, spec, arr)
            prepared[spec.name] = _cast(type(self).__name__, spec, arr)
        n = next(iter(prepared.values())).shape[0] if self._inputs and self._inputs[0].shape else 1
        limit = self.max_batch
        if limit is None or n <= limit or not self._inputs[0].shape:
            out = self._run(prepared)
        else:
            parts = [self._run({k: v[i : i + limit] for k, v in prepared.items()}) for i in range(0, n, limit)]
            out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if unbatched:
            out = {k: v[0] if v.ndim and v.shape[0] == 1 else v for k, v in out.items()}
        return out


def _check_shape(owner: str, spec: TensorSpec, arr: np.ndarray) -> None:
    if not spec.shape:
        return
    ok = arr.ndim == len(spec.shape) and all(
        want is None or want == got or (i == 0 and got % want == 0)
        for i, (want, got) in enumerate(zip(spec.shape, arr.shape, strict=False))
    )
    if not ok:
        raise ValueError(f"{owner}: expected input {spec.describe()}; got shape {tuple(arr.shape)}")


def _cast(owner: str, spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    want = np.dtype(spec.dtype)
    if arr.dtype == want:
        return np.ascontiguousarray(arr)
    if not np.can_cast(arr.dtype, want, casting="same_kind"):
        raise TypeError(f"{owner}: expected input {spec.name} as {want.name}; got {arr.dtype.name}")
    return np.ascontiguousarray(arr, dtype=want)


def free_dims(shape: Sequence[object]) -> tuple[int | None, ...]:
    """Normalise a shape from a runtime (strings, -1, 0 or None for free dims) to ints/None."""
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
