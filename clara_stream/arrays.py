"""One array API for host and device: numpy on a CPU box, cupy on a GPU.

Operators take the array module from the data (:func:`array_module`), convert foreign arrays
(Holoscan tensors, DLPack producers, ``__cuda_array_interface__`` / ``__array_interface__``
objects) without copying (:func:`asarray`), and move data between host and device only through
:func:`to_host` / :func:`to_device` / :func:`copy`, which the copy counter sees. Tests prove a path
is zero-copy with ``with count_copies() as c: ...; assert c.count == 0``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np


@dataclass
class CopyCounter:
    """Copies seen while a :func:`count_copies` block was open."""

    count: int = 0
    bytes: int = 0
    events: list[str] = field(default_factory=list)


_lock = threading.Lock()
_counters: list[CopyCounter] = []


def record_copy(nbytes: int, what: str) -> None:
    """Count one copy of ``nbytes`` bytes (called by every copying function in this module)."""
    with _lock:
        for c in _counters:
            c.count += 1
            c.bytes += int(nbytes)
            c.events.append(what)


@contextlib.contextmanager
def count_copies() -> Iterator[CopyCounter]:
    """Count the copies made through this module (any thread) while the block runs."""
    counter = CopyCounter()
    with _lock:
        _counters.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _counters.remove(counter)


@functools.lru_cache(maxsize=1)
def _cupy() -> ModuleType | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        cupy.zeros(1)  # a driver too old for the runtime fails here, not later
        return cupy
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"; doctor reports why
        return None


def gpu_available() -> bool:
    """True when cupy imports and a CUDA device is usable."""
    return _cupy() is not None


def gpu_unavailable_reason() -> str | None:
    """Why the GPU path is off (None when a GPU is usable); for ``clara-stream doctor``."""
    try:
        import cupy
    except ImportError as exc:
        return f"cupy not importable: {exc}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            return "no CUDA device"
        cupy.zeros(1)
    except Exception as exc:  # noqa: BLE001
        return f"CUDA not usable: {str(exc).splitlines()[0]}"
    return None


def is_device_array(x: Any) -> bool:
    """True for data in GPU memory (cupy arrays, device Holoscan tensors, CAI producers)."""
    return hasattr(x, "__cuda_array_interface__")


def array_module(x: Any) -> ModuleType:
    """The module that operates on ``x``: cupy for device data, numpy otherwise."""
    if is_device_array(x):
        cp = _cupy()
        if cp is None:
            raise RuntimeError("arrays.array_module: expected a usable CUDA device for device data; got none")
        return cp
    return np


def asarray(x: Any) -> Any:
    """Return ``x`` as a numpy or cupy array without copying.

    Accepts numpy/cupy arrays, Holoscan tensors and any object exposing
    ``__cuda_array_interface__``, ``__array_interface__`` or ``__dlpack__``.

    Raises
    ------
    TypeError
        If ``x`` exposes no array interface.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_device_array(x):
        cp = array_module(x)
        return x if isinstance(x, cp.ndarray) else cp.asarray(x)
    if hasattr(x, "__array_interface__") or isinstance(x, memoryview):
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    raise TypeError(f"arrays.asarray: expected an array (numpy, cupy, DLPack); got {type(x).__name__}")


def to_host(x: Any) -> np.ndarray:
    """Host (numpy) view of ``x``; copies (and counts) only when the data is on the device."""
    arr = asarray(x)
    if isinstance(arr, np.ndarray):
        return arr
    record_copy(arr.nbytes, "device->host")
    return arr.get()


def to_device(x: Any) -> Any:
    """Device (cupy) view of ``x``; copies (and counts) only when the data is on the host.

    Raises
    ------
    RuntimeError
        If no CUDA device is usable.
    """
    arr = asarray(x)
    if not isinstance(arr, np.ndarray):
        return arr
    cp = _cupy()
    if cp is None:
        raise RuntimeError("arrays.to_device: expected a usable CUDA device; got none (see `clara-stream doctor`)")
    record_copy(arr.nbytes, "host->device")
    return cp.asarray(arr)


def to_preferred_device(x: Any) -> Any:
    """Device array when a GPU is usable, host array otherwise (the "same code on both" switch)."""
    return to_device(x) if gpu_available() else to_host(x)


def copy(x: Any) -> Any:
    """An explicit, counted copy on the array's own device."""
    arr = asarray(x)
    record_copy(arr.nbytes, "copy")
    return arr.copy()


def ascontiguous(x: Any) -> Any:
    """C-contiguous array; copies (counted) only when ``x`` is not already contiguous."""
    arr = asarray(x)
    if arr.flags.c_contiguous:
        return arr
    record_copy(arr.nbytes, "make-contiguous")
    return array_module(arr).ascontiguousarray(arr)


def pinned_empty(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    """Host buffer for fast transfers: page-locked when a GPU is usable, plain numpy otherwise."""
    dtype = np.dtype(dtype)
    cp = _cupy()
    if cp is None:
        return np.empty(shape, dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    mem = cp.cuda.alloc_pinned_memory(max(nbytes, 1))
    return np.frombuffer(mem, dtype, int(np.prod(shape))).reshape(shape)


def shares_memory(a: Any, b: Any) -> bool:
    """True when two arrays (host or device) overlap in memory."""
    a, b = asarray(a), asarray(b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.shares_memory(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    pa, pb = a.data.ptr, b.data.ptr
    return pa < pb + b.nbytes and pb < pa + a.nbytes
