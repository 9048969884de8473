"""Read a YAML file keeping the line of every key, so each refusal names file and line.

PyYAML's composer keeps marks on nodes; the values are built by its safe constructor and the
lines collected from the same node tree, keyed by the path of keys (and list indices) to them.
Duplicate keys, which ``yaml.safe_load`` silently collapses to the last, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clara_stream.errors import ConfigError

PathKey = tuple[Any, ...]


@dataclass
class LinedYaml:
    """Parsed data plus ``lines[path] -> 1-based line`` for every mapping key and list item."""

    file: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def where(self, *path: Any) -> str:
        """``file:line`` of the deepest known prefix of ``path`` (the file alone when none)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return f"{self.file}:{line}"
        return str(self.file)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], dupes: list[str], file: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else repr(key)
            line = key.start_mark.line + 1
            if k in seen:
                dupes.append(f"{file}:{line}: expected unique keys; got {k!r} again (first at line {seen[k]})")
            seen[k] = line
            lines[(*path, k)] = line
            _walk(value, (*path, k), lines, dupes, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, dupes, file)


def load_lined(path: str | Path) -> LinedYaml:
    """Parse ``path``; raises ConfigError naming file and line for bad YAML or duplicate keys."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline: expected a YAML file; got no file at {p}")
    text = p.read_text()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(f"{at}: expected valid YAML; got {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    dupes: list[str] = []
    if node is not None:
        _walk(node, (), lines, dupes, p)
    if dupes:
        raise ConfigError("; ".join(dupes))
    return LinedYaml(p, data, lines)
