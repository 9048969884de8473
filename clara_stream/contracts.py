"""Port contracts: what a port carries, checked on every edge before a graph runs.

A contract states kind, dtype(s), shape pattern or ndim, layout, domain, device and metadata
keys. :func:`edge_problems` compares a producer's output contract with a consumer's input
contract; :func:`value_problems` checks one emitted value (the run-time switch). Pure code: no
holoscan import, so services and tests use it directly.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clara_stream.ports import META_KEYS


class Kind(str, enum.Enum):
    """What travels on the port."""

    TENSOR = "tensor"  # one array: numpy, cupy, or anything with DLPack / array interfaces
    TENSOR_MAP = "tensor_map"  # dict[str, array]
    OBJECT = "object"  # any Python object (optionally of ``pytype``)
    ANY = "any"  # consumer side only: accepts every kind


class Device(str, enum.Enum):
    """Where array data lives."""

    HOST = "host"
    DEVICE = "device"
    ANY = "any"


ShapeItem = int | str  # an int must match exactly; a symbol ("H") matches any size; "..." any run


@dataclass(frozen=True)
class Contract:
    """The type of a port.

    Parameters
    ----------
    kind : Kind
        Tensor, tensor map or Python object.
    dtypes : tuple of str, optional
        numpy dtype names allowed (``None``: any).
    shape : tuple of int or str, optional
        Shape pattern; ints match exactly, symbols match any size, ``"..."`` any number of axes.
    ndim : int, optional
        Number of axes (implied by ``shape`` when it has no ``"..."``).
    layout : str, optional
        Axis names such as ``HWC``, ``CHW``, ``ZYX``.
    domain : str, optional
        Meaning of the values: ``video/rgb``, ``volume/ct-hu``, ``mask/labels``… A consumer's
        ``video/*`` accepts any ``video/...``.
    device : Device
        Host, device, or either.
    meta : tuple of str
        Metadata keys the port carries (outputs) or needs (inputs).
    pytype : type or tuple of types, optional
        For ``Kind.OBJECT``: the Python type(s) carried.
    description : str
        One line for ``clara-stream validate``.
    """

    kind: Kind = Kind.TENSOR
    dtypes: tuple[str, ...] | None = None
    shape: tuple[ShapeItem, ...] | None = None
    ndim: int | None = None
    layout: str | None = None
    domain: str | None = None
    device: Device = Device.ANY
    meta: tuple[str, ...] = ()
    pytype: type | tuple[type, ...] | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "device", Device(self.device))
        if self.dtypes is not None:
            import numpy as np

            object.__setattr__(self, "dtypes", tuple(np.dtype(d).name for d in self.dtypes))
        object.__setattr__(self, "meta", tuple(self.meta))
        unknown = [k for k in self.meta if k not in META_KEYS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(META_KEYS), n=2)
            raise ValueError(f"Contract: expected metadata keys from clara_stream.ports.META_KEYS; got {unknown[0]!r}"
                             + (f"; did you mean {', '.join(close)}?" if close else ""))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            if "..." not in self.shape:
                if self.ndim is not None and self.ndim != len(self.shape):
                    raise ValueError(
                        f"Contract: expected ndim equal to len(shape); got ndim={self.ndim}, shape={self.shape}"
                    )
                object.__setattr__(self, "ndim", len(self.shape))
        if self.layout is not None and self.ndim is not None and len(self.layout) != self.ndim:
            raise ValueError(f"Contract: expected layout of {self.ndim} axes; got {self.layout!r}")

    def describe(self) -> str:
        """A compact one-line form used in error messages and ``validate``."""
        parts = [self.kind.value]
        if self.dtypes:
            parts.append("|".join(self.dtypes))
        if self.shape is not None:
            parts.append("(" + ",".join(str(s) for s in self.shape) + ")")
        elif self.ndim is not None:
            parts.append(f"ndim={self.ndim}")
        if self.layout:
            parts.append(self.layout)
        if self.domain:
            parts.append(self.domain)
        if self.device is not Device.ANY:
            parts.append(self.device.value)
        if self.pytype is not None:
            types = self.pytype if isinstance(self.pytype, tuple) else (self.pytype,)
            parts.append("|".join(t.__name__ for t in types))
        if self.meta:
            parts.append("meta=" + ",".join(self.meta))
        return " ".join(parts)


ANY = Contract(kind=Kind.ANY)


def domain_matches(produced: str | None, accepted: str | None) -> bool:
    """True when a producer's domain is acceptable to a consumer's domain pattern."""
    if accepted is None or accepted in ("*", "*/*"):
        return True
    if produced is None:
        return False
    if accepted.endswith("/*"):
        return produced == accepted[:-2] or produced.startswith(accepted[:-1])
    return produced == accepted


def _shape_compatible(produced: tuple[ShapeItem, ...], accepted: tuple[ShapeItem, ...]) -> bool:
    if "..." in produced or "..." in accepted:
        return True
    if len(produced) != len(accepted):
        return False
    return all(not (isinstance(p, int) and isinstance(a, int) and p != a) for p, a in zip(produced, accepted))


def edge_problems(out: Contract, inp: Contract) -> list[str]:
    """List every way an output contract fails to satisfy an input contract (empty: compatible).

    Required metadata is not checked here: it may come from any operator upstream, so the graph
    validator checks it over paths.
    """
    problems: list[str] = []
    if inp.kind is not Kind.ANY and out.kind is not Kind.ANY and out.kind is not inp.kind:
        problems.append(f"kind mismatch: producer emits {out.kind.value}, consumer expects {inp.kind.value}")
    if inp.dtypes is not None:
        if out.dtypes is None:
            problems.append(f"dtype mismatch: producer dtype is unspecified, consumer expects {'|'.join(inp.dtypes)}")
        elif not set(out.dtypes) <= set(inp.dtypes):
            problems.append(
                f"dtype mismatch: producer emits {'|'.join(out.dtypes)}, consumer expects {'|'.join(inp.dtypes)}"
            )
    if out.ndim is not None and inp.ndim is not None and out.ndim != inp.ndim:
        problems.append(f"ndim mismatch: producer emits ndim={out.ndim}, consumer expects ndim={inp.ndim}")
    elif out.shape is not None and inp.shape is not None and not _shape_compatible(out.shape, inp.shape):
        problems.append(f"shape mismatch: producer emits {out.shape}, consumer expects {inp.shape}")
    if out.layout and inp.layout and out.layout != inp.layout:
        problems.append(f"layout mismatch: producer emits {out.layout}, consumer expects {inp.layout}")
    if not domain_matches(out.domain, inp.domain):
        problems.append(f"domain mismatch: producer emits {out.domain or 'unspecified'}, consumer expects {inp.domain}")
    if Device.ANY not in (out.device, inp.device) and out.device is not inp.device:
        problems.append(f"device mismatch: producer emits on {out.device.value}, consumer expects {inp.device.value}")
    if inp.pytype is not None and out.pytype is not None:
        outs = out.pytype if isinstance(out.pytype, tuple) else (out.pytype,)
        ins = inp.pytype if isinstance(inp.pytype, tuple) else (inp.pytype,)
        if not all(issubclass(o, ins) for o in outs):
            problems.append(
                f"type mismatch: producer emits {'|'.join(t.__name__ for t in outs)}, "
                f"consumer expects {'|'.join(t.__name__ for t in ins)}"
            )
    return problems


def _array_device(value: Any) -> Device | None:
    if hasattr(value, "__cuda_array_interface__"):
        return Device.DEVICE
    if hasattr(value, "__array_interface__") or hasattr(value, "__array__"):
        return Device.HOST
    return None


def _array_problems(value: Any, c: Contract, where: str) -> list[str]:
    if type(value) is np.ndarray:  # the per-message common case, without attribute probing
        device, dtype, shape = Device.HOST, value.dtype.name, value.shape
    else:
        device = _array_device(value)
        if device is None or not hasattr(value, "shape") or not hasattr(value, "dtype"):
            return [f"{where}expected an array; got {type(value).__name__}"]
        dtype = np.dtype(str(value.dtype)).name if not isinstance(value.dtype, np.dtype) else value.dtype.name
        shape = tuple(int(s) for s in value.shape)
    problems = []
    if c.dtypes is not None and dtype not in c.dtypes:
        problems.append(f"{where}expected dtype {'|'.join(c.dtypes)}; got {dtype}")
    if c.ndim is not None and len(shape) != c.ndim:
        problems.append(f"{where}expected ndim={c.ndim}; got shape {shape}")
    elif c.shape is not None and "..." not in c.shape:
        bad = [(i, a, s) for i, (a, s) in enumerate(zip(c.shape, shape)) if isinstance(a, int) and a != s]
        if bad:
            problems.append(f"{where}expected shape {c.shape}; got {shape}")
    if c.device is not Device.ANY and device is not c.device:
        problems.append(f"{where}expected data on {c.device.value}; got {device.value}")
    return problems


def value_problems(value: Any, c: Contract, metadata: Mapping[str, Any] | None = None) -> list[str]:
    """List every way a run-time value breaks its contract (empty: it conforms)."""
    problems: list[str] = []
    if c.kind is Kind.TENSOR:
        problems += _array_problems(value, c, "")
    elif c.kind is Kind.TENSOR_MAP:
        if not isinstance(value, Mapping):
            problems.append(f"expected a tensor map (dict of arrays); got {type(value).__name__}")
        else:
            for key, arr in value.items():
                problems += _array_problems(arr, c, f"[{key}] ")
    elif c.kind is Kind.OBJECT and c.pytype is not None and not isinstance(value, c.pytype):
        types = c.pytype if isinstance(c.pytype, tuple) else (c.pytype,)
        problems.append(f"expected {'|'.join(t.__name__ for t in types)}; got {type(value).__name__}")
    if metadata is not None:
        missing = [k for k in c.meta if k not in metadata]
        if missing:
            problems.append(f"expected metadata keys {list(c.meta)}; missing {missing}")
    return problems
