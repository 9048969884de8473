"""Tiny source/sink operators for operator tests: feed a list of values, collect what arrives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clara_stream.contracts import ANY, Contract
from clara_stream.runtime import Application, Operator, Port


class ListSourceOp(Operator):
    """Emit ``values[i]`` (with ``metas[i]`` as metadata) on ``port``, one per compute, then stop."""

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        port: str,
        values: Sequence[Any],
        metas: Sequence[dict] | None = None,
        contract: Contract = ANY,
        name: str = "list_source",
        **kwargs: Any,
    ) -> None:
        if not values:
            raise ValueError("ListSourceOp: expected at least one value; got none")
        self.outputs = (Port(port, contract),)
        self.port, self.values, self.metas, self.i = port, list(values), list(metas or []), 0
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        meta = self.metas[self.i] if self.i < len(self.metas) else None
        self.emit(op_output, self.values[self.i], self.port, meta=meta)
        self.i += 1
        if self.i >= len(self.values):
            self.stop_stream()


class CollectOp(Operator):
    """Keep every value received on ``port`` and the metadata keys asked for."""

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        port: str,
        meta_keys: Sequence[str] = (),
        contract: Contract = ANY,
        name: str = "collect",
        **kwargs: Any,
    ) -> None:
        self.inputs = (Port(port, contract),)
        self.port, self.meta_keys = port, tuple(meta_keys)
        self.values: list[Any] = []
        self.metas: list[dict[str, Any]] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.values.append(self.receive(op_input, self.port))
        self.metas.append({k: self.get_meta(k) for k in self.meta_keys})


class GraphApp(Application):
    """Wire ``build(app) -> None`` in compose; for tests of single operators."""

    def __init__(self, build: Any, **kwargs: Any) -> None:
        self._build = build
        super().__init__({"app": {"scheduler": "greedy", "log_level": "error"}}, **kwargs)

    def compose(self) -> None:
        self._build(self)
