"""A pipeline file, parsed and checked before anything starts.

Format (see docs in ``clara_stream/pipeline/__init__.py``)::

    pipeline: name
    app: {scheduler: greedy}            # the same switches as an app.yaml's app: section
    services: {triton: {type: triton, models: {detector: model.onnx}}}
    operators:
      decoder: {type: VideoDecoderOp, args: {path: "${app.input}"}}
    flows:
      - decoder.frame -> preprocess.frame_in

Every refusal reads ``<file>:<line>: pipeline: expected <rule>; got <found>``; all are collected
so one run of ``clara-stream validate`` lists every problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clara_stream.errors import GraphValidationError
from clara_stream.pipeline.registry import resolve_type
from clara_stream.pipeline.yamlmap import LinedYaml, load_lined

TOP_KEYS = ("pipeline", "app", "services", "operators", "flows")
SERVICE_TYPES = ("command", "triton")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLOW = re.compile(r"^\s*(\w+)\.(\w+)\s*->\s*(\w+)\.(\w+)\s*$")
REF = re.compile(r"\$\{([A-Za-z_][\w.]*)(?:\|([^}]*))?\}")


@dataclass(frozen=True)
class FlowSpec:
    src: str
    out_port: str
    dst: str
    in_port: str
    where: str

    def text(self) -> str:
        return f"{self.src}.{self.out_port} -> {self.dst}.{self.in_port}"


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    type: str
    cls: type | None
    args: dict[str, Any]
    where: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    type: str
    options: dict[str, Any]
    where: str


@dataclass
class PipelineSpec:
    """A checked pipeline file: operators in file order, flows, services, the ``app:`` section."""

    file: Path
    name: str
    app: dict[str, Any]
    operators: dict[str, OperatorSpec]
    flows: list[FlowSpec]
    services: dict[str, ServiceSpec]
    source: LinedYaml = field(repr=False)

    @property
    def here(self) -> Path:
        return self.file.resolve().parent

    def flow_where(self, text: str) -> str | None:
        """``file:line`` of the flow an engine message names (``edge a.x -> b.y: …``)."""
        return next((f.where for f in self.flows if f"edge {f.text()}" in text), None)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.group(1) for m in REF.finditer(value)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _operators(y: LinedYaml, raw: Any, errors: list[str]) -> dict[str, OperatorSpec]:
    if not isinstance(raw, dict) or not raw:
        errors.append(f"{y.where('operators')}: pipeline: expected operators: a mapping of name -> "
                      f"{{type, args}}; got {_type_name(raw)}")
        return {}
    ops: dict[str, OperatorSpec] = {}
    for name, body in raw.items():
        at = y.where("operators", name)
        if not isinstance(name, str) or not _NAME.match(name) or name == "app":
            errors.append(f"{at}: pipeline: expected an operator name made of letters, digits, _ (not 'app'); "
                          f"got {name!r}")
            continue
        if not isinstance(body, dict) or "type" not in body:
            errors.append(f"{at}: pipeline: expected operator {name!r} to be a mapping with type:; got "
                          f"{_type_name(body) if not isinstance(body, dict) else sorted(body)}")
            continue
        extra = sorted(set(body) - {"type", "args"})
        if extra:
            errors.append(f"{at}: pipeline: expected operator keys type, args; got unknown {extra} in {name!r}")
        args = body.get("args") or {}
        if not isinstance(args, dict):
            errors.append(f"{y.where('operators', name, 'args')}: pipeline: expected {name}.args to be a mapping; "
                          f"got {_type_name(args)}")
            args = {}
        cls = None
        try:
            cls = resolve_type(str(body["type"]))
        except LookupError as exc:
            errors.append(f"{y.where('operators', name, 'type')}: pipeline: operator {name!r}: {exc}")
        ops[name] = OperatorSpec(name, str(body["type"]), cls, dict(args), at)
    return ops


def _parse_flow(y: LinedYaml, i: int, item: Any) -> tuple[FlowSpec | None, str | None]:
    at = y.where("flows", i)
    if isinstance(item, dict) and set(item) == {"from", "to"}:
        item = f"{item['from']} -> {item['to']}"
    m = _FLOW.match(item) if isinstance(item, str) else None
    if m is None:
        return None, f"{at}: pipeline: expected a flow 'op.out_port -> op.in_port' or {{from, to}}; got {item!r}"
    return FlowSpec(*m.groups(), where=at), None


def _port_names(cls: type | None, direction: str) -> list[str] | None:
    ports = getattr(cls, "inputs" if direction == "in" else "outputs", ()) if cls else ()
    return [p.name for p in ports] if ports else None  # None: declared at construction, checked then


def _flows(y: LinedYaml, raw: Any, ops: dict[str, OperatorSpec], errors: list[str]) -> list[FlowSpec]:
    """The accepted flows; ``errors`` gets the refused ones, plus any cycle among all that name two operators."""
    if not isinstance(raw, list) or not raw:
        errors.append(f"{y.where('flows')}: pipeline: expected flows: a list of 'a.port -> b.port'; "
                      f"got {_type_name(raw)}")
        return []
    flows: list[FlowSpec] = []
    linked: list[FlowSpec] = []  # every flow between two defined operators: a cycle is reported even if refused
    taken: dict[tuple[str, str], FlowSpec] = {}
    for i, item in enumerate(raw):
        flow, problem = _parse_flow(y, i, item)
        if flow is None:
            errors.append(str(problem))
            continue
        bad = False
        for end, port, direction in ((flow.src, flow.out_port, "out"), (flow.dst, flow.in_port, "in")):
            if end not in ops:
                errors.append(f"{flow.where}: pipeline: flow {flow.text()}: expected an operator defined under "
                              f"operators: {sorted(ops)}; got {end!r}")
                bad = True
                continue
            names = _port_names(ops[end].cls, direction)
            if names is not None and port not in names:
                kind = "output" if direction == "out" else "input"
                errors.append(f"{flow.where}: pipeline: flow {flow.text()}: expected an {kind} port of {end} "
                              f"({ops[end].type}: {names}); got {port!r}")
                bad = True
        if flow.src in ops and flow.dst in ops:
            linked.append(flow)
        key = (flow.dst, flow.in_port)
        if key in taken:
            first = taken[key]
            errors.append(f"{flow.where}: pipeline: flow {flow.text()}: expected each input port fed by one flow; "
                          f"got {flow.dst}.{flow.in_port} used twice (also by {first.text()} at {first.where})")
            bad = True
        if not bad:
            taken[key] = flow
            flows.append(flow)
    errors += _cycle_errors(linked)
    return flows


def _cycle_errors(flows: list[FlowSpec]) -> list[str]:
    nxt: dict[str, list[FlowSpec]] = {}
    for f in flows:
        nxt.setdefault(f.src, []).append(f)
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(node: str, path: list[FlowSpec]) -> None:
        state[node] = 1
        for f in nxt.get(node, ()):
            if state.get(f.dst) == 1:
                loop = [*path, f][next(i for i, p in enumerate([*path, f]) if p.src == f.dst):]
                found.append(f"{f.where}: pipeline: expected an acyclic graph; got a cycle "
                             + "; ".join(f"{p.text()} ({p.where})" for p in loop))
            elif f.dst not in state:
                visit(f.dst, [*path, f])
        state[node] = 2

    for f in flows:
        if f.src not in state:
            visit(f.src, [])
    return found


def _services(y: LinedYaml, raw: Any, errors: list[str]) -> dict[str, ServiceSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{y.where('services')}: pipeline: expected services: a mapping of name -> options; "
                      f"got {_type_name(raw)}")
        return {}
    from clara_stream.pipeline.services import check_service  # the rules live beside the launchers

    out: dict[str, ServiceSpec] = {}
    for name, body in raw.items():
        at = y.where("services", name)
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append(f"{at}: pipeline: expected a service name made of letters, digits, _; got {name!r}")
            continue
        if not isinstance(body, dict) or body.get("type") not in SERVICE_TYPES:
            got = body.get("type") if isinstance(body, dict) else _type_name(body)
            errors.append(f"{at}: pipeline: expected service {name!r} to have type: one of {list(SERVICE_TYPES)}; "
                          f"got {got!r}")
            continue
        spec = ServiceSpec(name, body["type"], {k: v for k, v in body.items() if k != "type"}, at)
        errors += [f"{y.where('services', name, key)}: pipeline: service {name!r}: {p}"
                   for key, p in check_service(spec)]
        out[name] = spec
    return out


def _ref_errors(y: LinedYaml, ops: dict[str, OperatorSpec], services: dict[str, ServiceSpec]) -> list[str]:
    from clara_stream.pipeline.services import connection_keys

    errors = []
    for op in ops.values():
        for ref in _refs(op.args):
            head, _, rest = ref.partition(".")
            ok = (head == "here" and not rest) or (head == "app" and rest.isidentifier()) or (
                head == "services" and rest.partition(".")[0] in services
                and rest.partition(".")[2] in connection_keys(services[rest.partition(".")[0]]))
            if not ok:
                known = [f"services.{s}.{k}" for s in services for k in connection_keys(services[s])]
                errors.append(f"{y.where('operators', op.name, 'args')}: pipeline: operator {op.name!r}: expected "
                              f"references ${{here}}, ${{app.KEY}} or one of {known}; got ${{{ref}}}")
    return errors


def parse_pipeline(path: str | Path) -> PipelineSpec:
    """Read and check a pipeline file; every problem at once.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or has a duplicate key (file and line named).
    GraphValidationError
        Unknown keys or operator types, bad flows (unknown operator or port, an input used twice),
        cycles, bad services or references; each line ``file:line: pipeline: expected …; got …``.
    """
    y = load_lined(path)
    errors: list[str] = []
    data = y.data if isinstance(y.data, dict) else {}
    if not isinstance(y.data, dict):
        errors.append(f"{y.file}: pipeline: expected a mapping with {list(TOP_KEYS)}; got {_type_name(y.data)}")
    for key in sorted(set(data) - set(TOP_KEYS)):
        errors.append(f"{y.where(key)}: pipeline: expected top-level keys {list(TOP_KEYS)}; got unknown {key!r}")
    name = str(data.get("pipeline") or Path(path).stem)
    app = data.get("app") or {}
    if not isinstance(app, dict):
        errors.append(f"{y.where('app')}: pipeline: expected app: a mapping of switches; got {_type_name(app)}")
        app = {}
    services = _services(y, data.get("services"), errors)
    ops = _operators(y, data.get("operators"), errors) if data else {}
    flows = _flows(y, data.get("flows"), ops, errors) if ops else []
    errors += _ref_errors(y, ops, services)
    if errors:
        raise GraphValidationError(name, errors)
    return PipelineSpec(y.file, name, dict(app), ops, flows, services, y)
