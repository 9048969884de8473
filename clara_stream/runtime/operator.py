"""Operator base with declarative typed ports over ``holoscan.core.Operator``.

Subclasses declare class-level port templates (``inputs`` / ``outputs``, like GStreamer's pad
templates) so contracts are known before any data flows; ``setup`` is derived from them. The
per-message path stays thin: :meth:`Operator.receive` converts foreign arrays without copying and
:meth:`Operator.emit` sets metadata and, only when ``app.check_contracts`` is on, checks the value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from holoscan.core import ConditionType, IOSpec
from holoscan.core import Operator as _HoloscanOperator

from clara_stream.arrays import asarray
from clara_stream.contracts import ANY, Contract, Device, Kind, value_problems
from clara_stream.errors import ContractViolation
from clara_stream.runtime.arguments import check_arguments, outermost
from clara_stream.runtime.fragment import META_KEY, SEQ_KEY, Crossing, pack, unpack
from clara_stream.runtime.progress import recorder_for

_POLICIES = {"pop": IOSpec.QueuePolicy.POP, "reject": IOSpec.QueuePolicy.REJECT, "fault": IOSpec.QueuePolicy.FAULT}


@dataclass(frozen=True)
class Port:
    """One typed port.

    Parameters
    ----------
    name : str
        A name from :mod:`clara_stream.ports`.
    contract : Contract
        What the port carries.
    optional : bool
        Inputs: the operator runs without it; ``receive`` returns None when nothing arrived.
        Outputs: may be left unconnected (emitting to it then goes nowhere).
    queue_size : int
        Receiver capacity (>= 1); larger queues decouple a bursty producer.
    policy : str, optional
        What a full queue does: ``pop`` (drop the oldest, counted by Holoscan), ``reject``
        (drop the newest) or ``fault``. None keeps Holoscan's default.
    """

    name: str
    contract: Contract = ANY
    optional: bool = False
    queue_size: int = 1
    policy: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Port: expected an identifier name; got {self.name!r}")
        if self.queue_size < 1:
            raise ValueError(f"Port {self.name}: expected queue_size >= 1; got {self.queue_size}")
        if self.policy is not None and self.policy not in _POLICIES:
            raise ValueError(f"Port {self.name}: expected policy in {sorted(_POLICIES)}; got {self.policy!r}")


def _convert(value: Any) -> Any:
    """Holoscan tensors and tensor maps → numpy/cupy arrays, without copying."""
    t = type(value)
    if t is np.ndarray or value is None:
        return value
    if t is dict:
        if len(value) == 1 and str(next(iter(value))).startswith("#"):  # Holoscan's wrapper of a bare tensor
            value = next(iter(value.values()))
            return asarray(value) if hasattr(value, "__array_interface__") or hasattr(
                value, "__cuda_array_interface__") else value
        if value and all(hasattr(v, "__array_interface__") or hasattr(v, "__cuda_array_interface__")
                         for v in value.values()):
            return {k: asarray(v) for k, v in value.items()}
        return value
    if hasattr(value, "__cuda_array_interface__") or (
        hasattr(value, "__array_interface__") and not isinstance(value, np.generic)
    ):
        return asarray(value)
    return value


class Operator(_HoloscanOperator):
    """Base of every clara-stream operator.

    Subclasses set ``inputs`` / ``outputs`` (tuples of :class:`Port`), validate their own
    keyword arguments in ``__init__`` *before* calling ``super().__init__(fragment, *args,
    name=..., **kwargs)`` (Holoscan calls ``setup`` from there), and implement ``compute`` as
    receive → call the library → emit.
    """

    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        """Check each subclass's arguments and record failures of its start/compute/stop."""
        super().__init_subclass__(**kw)
        own = cls.__dict__
        if "__init__" in own:
            cls.__init__ = _checked_init(own["__init__"], cls)  # type: ignore[method-assign]
        if "compute" in own:
            cls.compute = _guarded_compute(own["compute"])  # type: ignore[method-assign]
        for phase in ("start", "stop"):
            if phase in own:
                setattr(cls, phase, _guarded(own[phase], phase))

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is Operator.__init__:  # a subclass without its own __init__
            check_arguments(type(self), Operator, kwargs)
        self._owner = fragment
        self._calls = [0]  # compute calls; a list cell, so counting skips Holoscan's Python __setattr__
        self._sent: set[str] = set()
        self._crossing: set[str] = set()  # output ports wired to another fragment
        self._crossed: dict[str, int] = {}  # messages sent (outputs) / received (inputs) over fragment edges
        self._check = bool(getattr(fragment, "check_contracts", False))
        self._out_contracts: dict[str, Contract] = {p.name: p.contract for p in self.outputs}
        self._fast = {p.name: _fast_rule(p.contract) for p in self.outputs}
        names = [p.name for p in (*self.inputs, *self.outputs)]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"{type(self).__name__}: expected unique port names; got duplicates {sorted(dupes)}")
        super().__init__(fragment, *args, **kwargs)
        self._progress = recorder_for(fragment)  # None unless the platform asked for progress (CLARA_STREAM_PROGRESS)
        if self._progress is not None:
            self._progress.register(self)
        register = getattr(fragment, "_register_operator", None)
        if register is not None:
            register(self)

    def start(self) -> None:
        """Holoscan's start hook; subclasses override it freely (the runtime notes that it ran)."""
        _started(self)

    # -- declaration -------------------------------------------------------------------------
    def setup(self, spec: Any) -> None:
        """Declare the ports from the templates (extend with ``super().setup(spec)`` first)."""
        for port in self.inputs:
            io = spec.input(port.name)
            if port.queue_size != 1 or port.policy is not None:
                io = io.connector(
                    IOSpec.ConnectorType.DOUBLE_BUFFER,
                    capacity=port.queue_size,
                    policy=int(_POLICIES[port.policy or "fault"]),
                )
            if port.optional:
                io.condition(ConditionType.NONE)
        for port in self.outputs:
            io = spec.output(port.name)
            if port.optional:  # Holoscan would otherwise wait forever for a receiver that is not there
                io.condition(ConditionType.NONE)

    @property
    def _computes(self) -> int:
        """How many times ``compute`` ran (a run that processed nothing is reported)."""
        return self._calls[0]

    def input_port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output_port(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    # -- per-message helpers -----------------------------------------------------------------
    def receive(self, op_input: Any, port: str) -> Any:
        """The value on ``port`` as numpy/cupy (zero-copy), a Python object, or None.

        A value sent over a fragment edge arrives with its metadata, which is restored here.
        """
        value = op_input.receive(port)
        kind = type(value)
        if kind is np.ndarray or value is None:  # the common case, returned before any other test
            return value
        if kind is Crossing or (kind is dict and META_KEY in value):
            value, meta = unpack(value)
            seq = (meta or {}).pop(SEQ_KEY, None)
            expected = self._crossed[port] = self._crossed.get(port, 0) + 1
            if seq is not None and seq != expected:  # Holoscan dropped messages on the way: never silently
                raise RuntimeError(f"{type(self).__name__} '{self.name}'.{port}: expected message {expected} over "
                                   f"the fragment edge; got message {seq} ({seq - expected} lost in transit)")
            md = self.metadata
            for key, item in (meta or {}).items():
                md[key] = item
        return _convert(value)

    def emit(self, op_output: Any, value: Any, port: str, *, meta: Mapping[str, Any] | None = None) -> None:
        """Emit ``value`` on ``port``, first setting ``meta`` items as Holoscan metadata.

        Raises
        ------
        ContractViolation
            When contract checks are on and the value or its metadata breaks the port's contract.
        """
        if meta:
            md = self.metadata
            for key, item in meta.items():
                md[key] = item
        if self._check:
            self._check_value(port, value, meta)
        self._sent.add(port)
        if self._crossing and port in self._crossing:
            md = self.metadata
            seq = self._crossed[port] = self._crossed.get(port, 0) + 1
            value = pack(value, {**{k: md.get(k) for k in md.keys()}, SEQ_KEY: seq})
            if type(value) is Crossing:
                op_output.emit(value, port, "PyObject")
                return
        try:
            op_output.emit(value, port)
        except BufferError:
            # Holoscan wraps arrays as C++ tensors through DLPack, which cannot carry read-only
            # arrays (np.frombuffer of bytes, tritonclient outputs); send the Python object as is.
            op_output.emit(value, port, "PyObject")

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Metadata received with this compute's inputs (or set upstream of them)."""
        return self.metadata.get(key, default)

    def stop(self) -> None:
        """Holoscan's end of the graph; subclasses that override it need not call this."""
        _stopped(self)

    def stop_stream(self) -> None:
        """End this operator's stream: it is not scheduled again and the app can finish."""
        self.stop_execution()

    def _check_value(self, port: str, value: Any, given: Mapping[str, Any] | None = None) -> None:
        contract = self._out_contracts.get(port)
        if contract is None:
            raise ContractViolation(
                f"{type(self).__name__} '{self.name}': expected an output port in "
                f"{sorted(self._out_contracts)}; got {port!r}"
            )
        fast = self._fast[port]
        conforms = fast is not None and type(value) is np.ndarray and (
            fast[0] is None or value.dtype in fast[0]) and (fast[1] is None or value.ndim == fast[1])
        missing = [k for k in contract.meta if not (given and k in given)]
        if missing:
            md = self.metadata
            missing = [k for k in missing if k not in md]
        if conforms and not missing:
            return
        problems = value_problems(value, contract, {k: None for k in contract.meta if k not in missing})
        if contract.kind is Kind.OBJECT and value is None:
            problems.append("expected a value; got None")
        if problems:
            raise ContractViolation(
                f"{type(self).__name__} '{self.name}'.{port}: emitted value breaks its contract "
                f"[{contract.describe()}]: " + "; ".join(problems)
            )


def _fast_rule(c: Contract) -> tuple[frozenset[np.dtype] | None, int | None] | None:
    """(dtypes, ndim) when a host ndarray can be checked by those two alone, else None.

    Dtypes are held as ``np.dtype`` objects: ``value.dtype in`` them is a C-level hash lookup, while
    ``value.dtype.name`` is computed in Python by numpy (7 µs a call here, most of a checked emit). A
    dtype that only equals by name (another byte order) takes the full check, which decides.
    """
    if c.kind is not Kind.TENSOR or c.shape is not None or c.device is Device.DEVICE:
        return None
    if c.dtypes is None:
        return None, c.ndim
    try:
        return frozenset(np.dtype(d) for d in c.dtypes), c.ndim
    except TypeError:  # a dtype numpy does not name (bfloat16 …): the full check
        return None


def _started(op: Operator) -> None:
    """Tell the app an operator of this process started (a distributed run waits for that, bounded)."""
    started = getattr(getattr(op, "_owner", None), "_operator_started", None)
    if started is not None:
        started()


def _failed(op: Operator, phase: str, exc: BaseException) -> None:
    if getattr(op, "_progress", None) is not None:
        op._progress.failed(op, phase, exc)
    record = getattr(getattr(op, "_owner", None), "_record_failure", None)
    if record is not None:
        record(op, phase, exc)


def _stopped(op: Operator) -> None:
    if getattr(op, "_progress", None) is not None:
        op._progress.stopped(op)


def _checked_init(init: Callable[..., None], cls: type) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, fragment: Any, *args: Any, **kwargs: Any) -> None:
        if outermost(self, cls):
            check_arguments(type(self), Operator, kwargs)
        init(self, fragment, *args, **kwargs)

    return __init__


def _guarded_compute(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def compute(self: Any, op_input: Any, op_output: Any, context: Any) -> None:
        self._calls[0] += 1
        try:
            if self._progress is None:
                fn(self, op_input, op_output, context)
            else:
                self._progress.compute(self, fn, op_input, op_output, context)
        except BaseException as exc:
            _failed(self, "compute", exc)
            raise

    return compute


def _guarded(fn: Callable[..., None], phase: str) -> Callable[..., None]:
    @functools.wraps(fn)
    def guarded(self: Any) -> None:
        if phase == "start":
            _started(self)
        try:
            fn(self)
        except BaseException as exc:
            _failed(self, phase, exc)
            raise
        if phase == "stop":
            _stopped(self)

    return guarded
