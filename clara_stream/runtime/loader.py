"""Find apps by name (installed under clara_stream.apps) or by path, and build them with config."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from clara_stream.config import load_yaml
from clara_stream.errors import AppNotFoundError


@dataclass(frozen=True)
class AppSpec:
    """Where an app lives: its module, class and default YAML."""

    name: str
    module: ModuleType
    cls: type
    config_path: Path | None
    folder: Path


def _app_class(module: ModuleType, where: str) -> type:
    from clara_stream.runtime.application import Application

    explicit = getattr(module, "App", None)
    if inspect.isclass(explicit) and issubclass(explicit, Application):
        return explicit
    found = [c for c in vars(module).values()
             if inspect.isclass(c) and issubclass(c, Application) and c is not Application
             and c.__module__ == module.__name__]
    if len(found) != 1:
        raise AppNotFoundError(
            f"apps: expected exactly one Application subclass in {where}; got {len(found)}",
            hint="define one class deriving from clara_stream.runtime.Application, or name it App",
        )
    return found[0]


def _load_by_path(path: Path) -> AppSpec:
    file = path / "app.py" if path.is_dir() else path
    if not file.is_file() or file.suffix != ".py":
        raise AppNotFoundError(f"apps: expected an app folder with app.py or a .py file; got {path}")
    folder = file.parent
    mod_name = f"clara_stream_user_app_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    yaml_path = folder / "app.yaml" if file.name == "app.py" else file.with_suffix(".yaml")
    return AppSpec(folder.name if file.name == "app.py" else file.stem, module, _app_class(module, str(file)),
                   yaml_path if yaml_path.is_file() else None, folder)


def list_apps() -> list[str]:
    """Names of the installed reference apps."""
    spec = importlib.util.find_spec("clara_stream.apps")  # located, not imported: the core never imports apps
    names = set()
    for root in (spec.submodule_search_locations or []) if spec else []:
        for child in Path(root).iterdir():
            if (child / "app.py").is_file():
                names.add(child.name)
    return sorted(names)


def find_app(app: str | Path) -> AppSpec:
    """Resolve an app by installed name or by path.

    Raises
    ------
    AppNotFoundError
        With the installed names listed when nothing matches.
    """
    text = str(app)
    path = Path(text)
    if path.exists() and (path.is_dir() or path.suffix == ".py"):
        return _load_by_path(path)
    if not text.isidentifier():
        raise AppNotFoundError(f"apps: expected an installed app name or an existing path; got {text!r}",
                               hint=f"installed apps: {', '.join(list_apps()) or 'none'}")
    try:
        module = importlib.import_module(f"clara_stream.apps.{text}.app")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"clara_stream.apps.{text}"):
            raise AppNotFoundError(f"apps: expected an installed app or a path; got {text!r}",
                                   hint=f"installed apps: {', '.join(list_apps()) or 'none'}") from None
        raise
    folder = Path(module.__file__).parent  # type: ignore[arg-type]
    yaml_path = folder / "app.yaml"
    return AppSpec(text, module, _app_class(module, module.__name__), yaml_path if yaml_path.is_file() else None,
                   folder)


def load_app(app: str | Path, *, config: str | Path | None = None, overrides: Iterable[str] = (),
             input: str | Path | None = None, output: str | Path | None = None,
             extra: Iterable[str] = (), engine_args: Iterable[str] = ()) -> Any:
    """Build an app instance: its YAML (or ``config``), then ``overrides``, input and output.

    ``input`` / ``output`` become ``app.input`` / ``app.output``; ``extra`` are further
    overrides applied last (the CLI's scheduler and thread switches); ``engine_args`` go to
    Holoscan unchanged (``--driver --worker --address HOST:PORT --fragments NAME,...``).
    """
    spec = find_app(app)
    cfg_path = Path(config) if config else spec.config_path
    cfg = load_yaml(cfg_path) if cfg_path else {}
    items = list(overrides)
    if input is not None:
        items.append(("app.input", str(input)))  # type: ignore[arg-type]
    if output is not None:
        items.append(("app.output", str(output)))  # type: ignore[arg-type]
    items += list(extra)
    return spec.cls(cfg, overrides=items, name=spec.name, engine_args=list(engine_args))
