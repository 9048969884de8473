"""Write a benchmark's results: results.json, latencies.csv, PNG plots and one HTML report."""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.bench.harness import primary_path

STAT_ORDER = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max", "stddev", "tail", "flatness")


def write_json(results: dict[str, Any], out: Path) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps({k: v for k, v in results.items() if not k.startswith("_")}, indent=2))
    return path


def write_csv(results: dict[str, Any], out: Path) -> Path:
    """One row per message: run, instance, path, start µs, end-to-end ms and each operator's ms."""
    path = out / "latencies.csv"
    ops = sorted({h[0] for items in results["_samples"].values() for _, _, m in items for h in m.hops})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "instance", "path", "start_us", "latency_ms", *[f"{o}_ms" for o in ops]])
        for path_name, items in results["_samples"].items():
            for r, k, m in items:
                per_op = m.operator_ms()
                w.writerow([r, k, path_name, m.start_us, f"{m.latency_ms:.4f}",
                            *[f"{per_op[o]:.4f}" if o in per_op else "" for o in ops]])
    return path


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """CDF per path, latency over time, per-operator breakdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for path, items in results["_samples"].items():
        lat = np.sort([m.latency_ms for _, _, m in items])
        ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=path)
    ax.set(xlabel="end-to-end latency (ms)", ylabel="fraction of messages", title=f"{results['app']}: latency CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    written.append(_save(fig, out / "latency_cdf.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for path, items in results["_samples"].items():
        runs = sorted({(r, k) for r, k, _ in items})
        for r, k in runs:
            lat = [m.latency_ms for rr, kk, m in items if (rr, kk) == (r, k)]
            ax.plot(range(len(lat)), lat, lw=0.8, label=f"{path} run{r}/inst{k}")
    ax.set(xlabel="message", ylabel="latency (ms)", title="latency over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    written.append(_save(fig, out / "latency_over_time.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    path = primary_path(results)
    ops = results["paths"][path]["operators_ms"]
    names = list(ops)
    means = [ops[n]["mean"] for n in names]
    p95 = [ops[n]["p95"] - ops[n]["mean"] for n in names]
    ax.bar(names, means, yerr=[np.zeros(len(names)), np.maximum(p95, 0)], capsize=4)
    ax.set(ylabel="time in operator (ms): mean, whisker to p95", title=f"per-operator breakdown: {path}")
    ax.tick_params(axis="x", rotation=30)
    written.append(_save(fig, out / "operator_breakdown.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _table(rows: dict[str, dict[str, float]]) -> str:
    head = "".join(f"<th>{html.escape(s)}</th>" for s in ("", *STAT_ORDER))
    body = ""
    for name, stats in rows.items():
        cells = "".join(f"<td>{stats[s]:.3f}</td>" if s != "count" else f"<td>{stats[s]}</td>" for s in STAT_ORDER)
        body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(results: dict[str, Any], out: Path, plots: list[Path]) -> Path:
    """One self-contained page: options, summary, per-path and per-operator tables, plots."""
    parts = [f"<h1>{html.escape(results['app'])}: latency report</h1>",
             f"<p>{html.escape(results['date'])} · {html.escape(json.dumps(results['machine']))}</p>",
             f"<p>throughput {results['throughput_fps']:.1f} msg/s · dropped frames {results['dropped_frames']} · "
             f"CPU (process, mean) {results['cpu']['process_pct_mean']} % · GPU {results['gpu'] or 'n/a'}</p>",
             "<h2>End-to-end latency per path (ms)</h2>",
             _table({p: v["latency_ms"] for p, v in results["paths"].items()})]
    for path, v in results["paths"].items():
        parts += [f"<h2>Per operator (ms): {html.escape(path)}</h2>", _table(v["operators_ms"])]
    for png in plots:
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f'<h3>{html.escape(png.stem)}</h3><img alt="{png.stem}" src="data:image/png;base64,{data}">')
    parts.append(f"<h2>Options</h2><pre>{html.escape(json.dumps(results['options'], indent=2))}</pre>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
    path = out / "report.html"
    path.write_text(page + "\n".join(parts) + "</body></html>")
    return path


def write_all(results: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out)
    return {"results": write_json(results, out), "latencies": write_csv(results, out),
            "report": write_html(results, out, plots), **{p.stem: p for p in plots}}
