"""Graph validation before run: ports exist, required inputs are wired, edges are compatible.

Pure logic over operators that expose ``inputs`` / ``outputs`` port templates (clara-stream
operators); raw Holoscan operators are treated as untyped and skipped. Every message names both
operators, both ports and both contracts, so a mis-wired app is fixed from the error alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from clara_stream.contracts import edge_problems


@dataclass(frozen=True)
class Edge:
    """One connection ``src.out_port -> dst.in_port``."""

    src: Any
    dst: Any
    out_port: str
    in_port: str


def _typed(op: Any) -> bool:
    return hasattr(op, "input_port") and hasattr(op, "output_port")


def port_names(op: Any, direction: str) -> list[str]:
    """Names of an operator's input or output ports (typed or raw Holoscan)."""
    if _typed(op):
        return [p.name for p in (op.inputs if direction == "in" else op.outputs)]
    spec = getattr(op, "spec", None)
    ports = getattr(spec, "inputs" if direction == "in" else "outputs", None) if spec else None
    return list(ports.keys()) if ports else []


def resolve_pairs(src: Any, dst: Any, pairs: set[tuple[str, str]] | None) -> tuple[list[tuple[str, str]], list[str]]:
    """Default the port pairs as Holoscan does (single output → single input); report unknowns."""
    outs, ins = port_names(src, "out"), port_names(dst, "in")
    errors: list[str] = []
    if not pairs:
        if len(outs) == 1 and len(ins) == 1:
            return [(outs[0], ins[0])], errors
        errors.append(
            f"edge {src.name} -> {dst.name}: expected explicit port pairs; got none while "
            f"{src.name} has outputs {outs} and {dst.name} has inputs {ins}"
        )
        return [], errors
    good = []
    for out_port, in_port in sorted(pairs):
        bad = False
        if out_port not in outs:
            errors.append(f"edge {src.name}.{out_port} -> {dst.name}.{in_port}: unknown output port "
                          f"{out_port!r} on {src.name} (outputs: {outs})")
            bad = True
        if in_port not in ins:
            errors.append(f"edge {src.name}.{out_port} -> {dst.name}.{in_port}: unknown input port "
                          f"{in_port!r} on {dst.name} (inputs: {ins})")
            bad = True
        if not bad:
            good.append((out_port, in_port))
    return good, errors


def _provided_meta(edges: list[Edge]) -> dict[int, set[str]]:
    """Metadata keys available at each operator's output: its own ports' plus everything upstream."""
    upstream: dict[int, set[int]] = defaultdict(set)
    ops: dict[int, Any] = {}
    for e in edges:
        upstream[id(e.dst)].add(id(e.src))
        ops[id(e.src)], ops[id(e.dst)] = e.src, e.dst
    own = {k: {m for p in getattr(op, "outputs", ()) for m in p.contract.meta} for k, op in ops.items()}
    provided: dict[int, set[str]] = {}

    def visit(k: int, stack: frozenset[int]) -> set[str]:
        if k in provided:
            return provided[k]
        keys = set(own.get(k, set()))
        for u in upstream.get(k, ()):
            if u not in stack:
                keys |= visit(u, stack | {k})
        provided[k] = keys
        return keys

    for k in ops:
        visit(k, frozenset())
    return provided


def _required(e: Edge) -> bool:
    port = e.dst.input_port(e.in_port) if _typed(e.dst) else None
    return port is None or not port.optional


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """Cycles made only of required inputs: none of their operators can run first (a deadlock)."""
    out: dict[int, list[Edge]] = defaultdict(list)
    for e in edges:
        if _required(e):
            out[id(e.src)].append(e)
    found: list[list[Edge]] = []
    seen_keys: set[frozenset[int]] = set()
    state: dict[int, int] = {}  # 1 on the path, 2 finished

    def visit(node: int, path: list[Edge]) -> None:
        state[node] = 1
        for e in out.get(node, ()):
            nxt = id(e.dst)
            if state.get(nxt) == 1:
                start = next(i for i, p in enumerate([*path, e]) if id(p.src) == nxt)
                loop = [*path, e][start:]
                key = frozenset(id(x) for x in loop)
                if key not in seen_keys:
                    seen_keys.add(key)
                    found.append(loop)
            elif state.get(nxt) is None:
                visit(nxt, [*path, e])
        state[node] = 2

    for e in edges:
        if state.get(id(e.src)) is None:
            visit(id(e.src), [])
    return found


def validate(operators: list[Any], edges: list[Edge]) -> list[str]:
    """Every problem in the graph (empty list: it may run)."""
    errors: list[str] = []
    for loop in cycles(edges):
        path = "; ".join(f"{e.src.name}.{e.out_port} -> {e.dst.name}.{e.in_port}" for e in loop)
        errors.append(f"cycle of required inputs: {path}: expected an acyclic graph or an optional input "
                      f"on the loop; got a cycle none of whose operators can run first")
    provided = _provided_meta(edges)
    for e in edges:
        if not (_typed(e.src) and _typed(e.dst)):
            continue
        out, inp = e.src.output_port(e.out_port), e.dst.input_port(e.in_port)
        if out is None or inp is None:
            continue
        where = (f"[producer {e.src.name}.{e.out_port}: {out.contract.describe()}; "
                 f"consumer {e.dst.name}.{e.in_port}: {inp.contract.describe()}]")
        for problem in edge_problems(out.contract, inp.contract):
            errors.append(f"edge {e.src.name}.{e.out_port} -> {e.dst.name}.{e.in_port}: {problem} {where}")
        missing = [m for m in inp.contract.meta if m not in provided.get(id(e.src), set())]
        if missing:
            errors.append(
                f"edge {e.src.name}.{e.out_port} -> {e.dst.name}.{e.in_port}: missing metadata {missing}: "
                f"the consumer requires it and no operator upstream of {e.dst.name} provides it {where}"
            )
    connected = {(id(e.dst), e.in_port) for e in edges}
    fed = {(id(e.src), e.out_port) for e in edges}
    for op in operators:
        if not _typed(op):
            continue
        for port in op.outputs:
            if not port.optional and (id(op), port.name) not in fed:
                errors.append(
                    f"{op.name}.{port.name}: output is not connected, so Holoscan would never schedule "
                    f"{op.name} [producer {op.name}.{port.name}: {port.contract.describe()}]; "
                    f"connect it with add_flow or declare the port optional"
                )
        for port in op.inputs:
            if not port.optional and (id(op), port.name) not in connected:
                errors.append(
                    f"{op.name}.{port.name}: required input is not connected "
                    f"[consumer {op.name}.{port.name}: {port.contract.describe()}]; "
                    f"connect it with add_flow or declare the port optional"
                )
    return errors
