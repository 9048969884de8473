"""App configuration: one YAML per app, ``--set key=value`` overrides, validated at start-up.

Top-level keys are operator names (their sections become operator keyword arguments); app-wide
switches live under ``app:``. Overrides name an existing key (``decoder.realtime=true``); values
are parsed as YAML scalars. An unknown section or key is refused with the closest known names,
because a misspelt override silently doing nothing is the worst outcome for a latency study.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from clara_stream.errors import ConfigError

SCHEDULERS = ("greedy", "event", "multithread")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical", "off")

APP_DEFAULTS: dict[str, Any] = {
    "scheduler": "greedy",
    "threads": 2,
    "check_contracts": False,
    "log_level": "critical",
    "input": None,
    "output": None,
    "fragments": False,
    "check_period_ms": 0.5,  # multithread scheduler: how often idle workers look for ready operators
}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read one app YAML file into a dict (empty file: empty dict).

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or its top level is not a mapping of sections.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config: expected a YAML file; got no file at {p}", hint="check the --config path")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: expected valid YAML; got a parse error in {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of sections at the top of {p}; got {type(data).__name__}")
    for key, section in data.items():
        if section is not None and not isinstance(section, dict):
            raise ConfigError(
                f"config: expected section {key!r} to be a mapping of operator arguments; "
                f"got {type(section).__name__} in {p}"
            )
    return {k: dict(v or {}) for k, v in data.items()}


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], parsed value).

    Raises
    ------
    ConfigError
        If the text has no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not sep or not key.strip() or any(not p for p in parts):
        raise ConfigError(f"config: expected an override like section.key=value; got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str | tuple[str, Any]]) -> dict[str, Any]:
    """Return a copy of ``config`` with each override applied.

    Every override must name an existing section and key (``app.*``: a runtime switch or one
    the app's YAML declares), so typos fail loudly.
    """
    out = copy.deepcopy(dict(config))
    for item in overrides:
        if isinstance(item, tuple):
            parts, value = item[0].split("."), item[1]
        else:
            parts, value = parse_override(item)
        if len(parts) < 2:
            raise ConfigError(f"config: expected section.key=value; got {'.'.join(parts)!r} (no key)")
        section = parts[0]
        if section not in out and section != "app":
            raise ConfigError(
                f"config: expected an existing section; got {section!r}{_suggest(section, out)}",
                hint="sections are the operator names in the app's YAML (see `clara-stream validate APP`)",
            )
        node = out.setdefault(section, {})
        for i, part in enumerate(parts[1:-1], start=1):
            if not isinstance(node.get(part), dict):
                if part not in node and section != "app":
                    where = ".".join(parts[: i + 1])
                    raise ConfigError(f"config: expected an existing key; got {where!r}{_suggest(part, node)}")
                node[part] = {}
            node = node[part]
        leaf = parts[-1]
        if section == "app" and len(parts) == 2 and leaf not in node and leaf not in APP_DEFAULTS:
            known = sorted({*APP_DEFAULTS, *node})
            raise ConfigError(
                f"config: expected an app switch from {known}; got {leaf!r}{_suggest(leaf, known)}",
                hint="app-specific switches must first appear under `app:` in the app's YAML",
            )
        if section != "app" and leaf not in node:
            raise ConfigError(
                f"config: expected an existing key in {'.'.join(parts[:-1])!r}; got {leaf!r}{_suggest(leaf, node)}",
                hint="add the key to the app's YAML first if the operator accepts it",
            )
        node[leaf] = value
    return out


def normalise_app_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill ``app:`` defaults and validate the switches the runtime itself reads.

    Raises
    ------
    ConfigError
        For an unknown scheduler or log level, or a thread count below 1.
    """
    out = copy.deepcopy(dict(config))
    app = {**APP_DEFAULTS, **(out.get("app") or {})}
    if app["scheduler"] not in SCHEDULERS:
        raise ConfigError(f"config: expected app.scheduler in {SCHEDULERS}; got {app['scheduler']!r}")
    if str(app["log_level"]).lower() not in LOG_LEVELS:
        raise ConfigError(f"config: expected app.log_level in {LOG_LEVELS}; got {app['log_level']!r}")
    if not isinstance(app["threads"], int) or app["threads"] < 1:
        raise ConfigError(f"config: expected app.threads as an integer >= 1; got {app['threads']!r}")
    if isinstance(app["check_period_ms"], bool) or not isinstance(app["check_period_ms"], int | float) or (
            app["check_period_ms"] < 0):
        raise ConfigError(f"config: expected app.check_period_ms as a number >= 0; got {app['check_period_ms']!r}")
    app["check_contracts"] = bool(app["check_contracts"])
    out["app"] = app
    return out


def get_path(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """Value at ``a.b.c`` in a nested mapping, or ``default``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
