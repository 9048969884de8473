"""Compare two results.json files: ratios per metric, flagged when run-to-run spread exceeds the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_stream.errors import UserError

METRICS = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max", "tail", "flatness")


@dataclass(frozen=True)
class Row:
    """One metric of one path in A and B."""

    path: str
    metric: str
    a: float
    b: float
    spread: float | None  # largest run-to-run range of the metric in A or B (None: one run each)

    @property
    def ratio(self) -> float:
        return self.b / self.a if self.a else float("inf")

    @property
    def within_noise(self) -> bool:
        return self.spread is not None and abs(self.b - self.a) <= self.spread


def load(path: str | Path) -> dict[str, Any]:
    """Read a results.json written by ``clara-stream bench``.

    Raises
    ------
    UserError
        If the file is missing or is not a bench result.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"bench compare: expected a results.json; could not read {p}: {exc}") from None
    if not isinstance(data, dict) or "paths" not in data:
        raise UserError(f"bench compare: expected a results.json from `clara-stream bench`; got {p} without 'paths'")
    return data


def _spread(per_run: list[dict[str, float]], metric: str) -> float | None:
    values = [r[metric] for r in per_run if metric in r]
    return max(values) - min(values) if len(values) >= 2 else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """Rows for every metric of every path present in both results, plus throughput."""
    rows = []
    common = [p for p in a["paths"] if p in b["paths"]]
    if not common:
        raise UserError("bench compare: expected at least one path in both results; got none in common",
                        hint=f"A has {list(a['paths'])}, B has {list(b['paths'])}")
    for path in common:
        pa, pb = a["paths"][path], b["paths"][path]
        for m in METRICS:
            spreads = [s for s in (_spread(pa["per_run"], m), _spread(pb["per_run"], m)) if s is not None]
            rows.append(Row(path, m, pa["latency_ms"][m], pb["latency_ms"][m], max(spreads) if spreads else None))
    ta, tb = a.get("throughput_fps_per_run", []), b.get("throughput_fps_per_run", [])
    spreads = [max(t) - min(t) for t in (ta, tb) if len(t) >= 2]
    rows.append(Row("(all)", "throughput_fps", a["throughput_fps"], b["throughput_fps"],
                    max(spreads) if spreads else None))
    return rows
