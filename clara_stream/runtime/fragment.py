"""Fragments: one app split over processes or machines (Holoscan's distributed engine, UCX).

An app asks :meth:`Application.fragment` for a named fragment and builds operators in it; flows
between operators of different fragments become Holoscan fragment flows. With ``app.fragments``
off, every name resolves to the app itself, so the same ``compose`` runs single-process.

Across a fragment edge Holoscan sends tensors as tensor maps and drops Python metadata values,
and its Python-object codec (cloudpickle) fits only its 128 KiB serialization buffer
(``HOLOSCAN_UCX_SERIALIZATION_BUFFER_SIZE``). So on such ports arrays and tensor maps cross as
Holoscan tensors (UCX moves them without that buffer) with the metadata pickled into one extra
uint8 tensor; other Python values cross as a :class:`Crossing` (value plus metadata). Both are
unpacked on receipt. Peers are trusted as Holoscan trusts them (it unpickles Python objects too).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
from holoscan.core import Fragment as _HoloscanFragment
from holoscan.core import MetadataPolicy


@dataclass
class Crossing:
    """A value and the metadata it carried, as sent over a fragment edge."""

    value: Any
    meta: dict[str, Any]


META_KEY = "#clara_stream.meta"  # the metadata tensor in a crossing tensor map
VALUE_KEY = "#clara_stream.value"  # a bare array sent as a one-tensor map
SEQ_KEY = "#clara_stream.seq"  # per-port message number in the crossing metadata (gaps are losses)


def _tensor_like(value: Any) -> bool:
    return hasattr(value, "__cuda_array_interface__") or (
        hasattr(value, "__array_interface__") and not isinstance(value, np.generic))


def pack(value: Any, meta: dict[str, Any]) -> Any:
    """What to emit on a fragment edge so ``value`` and ``meta`` arrive unchanged."""
    if _tensor_like(value) or (type(value) is dict and value and all(map(_tensor_like, value.values()))):
        blob = np.frombuffer(bytearray(pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)), np.uint8)
        return {**(value if type(value) is dict else {VALUE_KEY: value}), META_KEY: blob}
    return Crossing(value, meta)


def unpack(value: Any) -> tuple[Any, dict[str, Any] | None]:
    """(value, metadata) from what :func:`pack` sent; (value, None) for anything else."""
    if type(value) is Crossing:
        return value.value, value.meta
    if type(value) is dict and META_KEY in value:
        rest = dict(value)
        meta = pickle.loads(np.asarray(rest.pop(META_KEY)).tobytes())
        return (rest[VALUE_KEY] if VALUE_KEY in rest and len(rest) == 1 else rest), meta
    return value, None


class Fragment(_HoloscanFragment):
    """A named part of an app; operators built in it run wherever Holoscan places it.

    Parameters
    ----------
    app : Application
        The app it belongs to (configuration, contract checks and failures are the app's).
    name : str
        The fragment's name, as given to ``--fragments``.
    """

    def __init__(self, app: Any, name: str) -> None:
        super().__init__(app, name)
        self.app = app
        self.metadata_policy = MetadataPolicy.UPDATE

    @property
    def check_contracts(self) -> bool:
        return bool(self.app.check_contracts)

    def _register_operator(self, op: Any) -> None:
        op._fragment_name = self.name
        self.add_operator(op)  # an operator whose every flow crosses fragments is in no local flow
        self.app._register_operator(op)

    def _record_failure(self, op: Any, phase: str, exc: BaseException) -> None:
        self.app._record_failure(op, phase, exc)

    def _operator_started(self) -> None:
        self.app._operator_started()

    def compose(self) -> None:
        """Nothing: the app's ``compose`` builds every fragment's operators (one wiring diagram)."""


class FragmentTrackers:
    """Data-flow tracking of a multi-fragment app as one tracker: each fragment logs to its own file
    (Holoscan's ``track_distributed``), concatenated into ``log_file`` by :meth:`end_logging`."""

    def __init__(self, trackers: dict[str, Any], log_file: str | None) -> None:
        self.trackers, self.log_file = trackers, log_file
        self.parts = {name: f"{log_file}.{name}" for name in trackers} if log_file else {}
        for name, tracker in trackers.items():
            if log_file:
                tracker.enable_logging(filename=self.parts[name])

    def end_logging(self) -> None:
        for tracker in self.trackers.values():
            tracker.end_logging()
        if self.log_file:
            from pathlib import Path

            with Path(self.log_file).open("w") as out:
                for part in self.parts.values():
                    if Path(part).is_file():
                        out.write(Path(part).read_text())
                        Path(part).unlink()
