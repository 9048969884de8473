"""Build a runtime :class:`Application` from a pipeline file; run it with its services around it.

The configuration is the file's ``app:`` section plus one section per operator (its ``args``),
so ``--set decoder.max_frames=5`` and ``--input/--output`` act as on a Python app. References
``${app.KEY}``, ``${here}`` (the file's folder) and ``${services.NAME.KEY}`` are filled when the
graph is composed; services choose their loopback ports when the app is built, so operators get
the real connections while nothing has started yet (``validate`` / ``graph`` start nothing).
``${KEY|default}`` gives a default for a missing value.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.pipeline.services import make_service, run_services
from clara_stream.pipeline.spec import REF, PipelineSpec, parse_pipeline
from clara_stream.runtime import Application


class PipelineApp(Application):
    """An app whose graph comes from a :class:`PipelineSpec` instead of a ``compose()``."""

    spec: PipelineSpec

    def __init__(self, spec: PipelineSpec, **kwargs: Any) -> None:
        self.spec = spec
        self.services = [make_service(s, spec.here) for s in spec.services.values()]  # ports chosen, not started
        self._connections = {s.spec.name: s.connections() for s in self.services}
        self._spec_errors: list[str] = []
        config = {"app": dict(spec.app), **{n: dict(o.args) for n, o in spec.operators.items()}}
        super().__init__(config, name=spec.name, **kwargs)

    def _lookup(self, ref: str, default: str | None, where: str, *, whole: bool = False) -> Any:
        head, _, rest = ref.partition(".")
        if head == "here":
            value: Any = str(self.spec.here)
        elif head == "services":
            name, _, key = rest.partition(".")
            value = self._connections[name][key]
        else:
            value = self.config_value(ref)
        if value is None:
            if default is None and whole:  # the value itself: None reaches the operator, which checks it
                return None
            if default is None:
                raise ConfigError(f"expected ${{{ref}}} to have a value; got none",
                                  hint=f"set it (e.g. --{rest} for app.{rest}) or write ${{{ref}|default}}")
            value = default
        return value

    def _fill(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            whole = REF.fullmatch(value)
            if whole:  # the value itself, unconverted (a number, null, a list)
                return self._lookup(whole.group(1), whole.group(2), where, whole=True)
            return REF.sub(lambda m: str(self._lookup(m.group(1), m.group(2), where)), value)
        if isinstance(value, dict):
            return {k: self._fill(v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v, where) for v in value]
        return value

    def compose(self) -> None:
        built: dict[str, Any] = {}
        for name, op in self.spec.operators.items():
            try:
                args = self._fill(self.kwargs(name), op.where)
                built[name] = op.cls(self, name=name, **args)  # type: ignore[misc]
            except (TypeError, ValueError) as exc:  # ConfigError too (a ValueError)
                at = self.spec.source.where("operators", name, "args")
                self._spec_errors.append(f"{at}: pipeline: operator {name!r} ({op.type}): {exc}")
        for f in self.spec.flows:
            if f.src in built and f.dst in built:
                self.add_flow(built[f.src], built[f.dst], {(f.out_port, f.in_port)})

    def validate(self) -> list[str]:
        """The file's own problems first, then the runtime's, each engine message given its flow's line."""
        found = super().validate()
        if self._spec_errors:  # an operator was not built: the engine's complaints about its ports follow from it
            return list(self._spec_errors)
        lined = [f"{self.spec.flow_where(e)}: {e}" if self.spec.flow_where(e) else f"{self.spec.file}: {e}"
                 for e in found]
        return self._spec_errors + lined

    def run(self) -> None:  # type: ignore[override]
        """Refuse a bad graph before anything starts; then services (healthy) → graph → services stopped."""
        errors = self.validate()
        if errors:
            raise GraphValidationError(self.app_name, errors)
        with run_services(self.services):
            super().run()


def load_pipeline(path: str | Path, *, overrides: Iterable[str] = (), input: str | Path | None = None,
                  output: str | Path | None = None, extra: Iterable[str] = (),
                  engine_args: Iterable[str] = ()) -> PipelineApp:
    """Parse and check ``path``, then build its app (the same arguments as :func:`load_app`)."""
    spec = parse_pipeline(path)
    items: list[Any] = list(overrides)
    if input is not None:
        items.append(("app.input", str(input)))
    if output is not None:
        items.append(("app.output", str(output)))
    items += list(extra)
    return PipelineApp(spec, overrides=items, engine_args=list(engine_args))


def is_pipeline_file(value: str | Path) -> bool:
    """True for a ``.yaml`` / ``.yml`` path: the CLI then reads a pipeline file, not an app."""
    return str(value).endswith((".yaml", ".yml"))
