"""Run an app R times × K concurrent instances with tracking, and aggregate the latency figures.

Each instance is a fresh worker process (:mod:`clara_stream.bench.worker`), as HoloHub's flow
benchmarking does, so runs do not share allocator pools or warm caches and instances contend for
the machine like real deployments do.

Two kinds of path are reported. Tracked paths come from the engine's data-flow tracking: they
start and end at compute calls, so work on an operator's own threads (a decoder's demux and
decode-ahead queue, an encoder's queue and mux) is outside them. Glass-to-glass paths come from
the app's own per-frame clocks (``timeline``; e.g. packet read → encoded packet written), trimmed
like the tracked ones (``skip_first``/``discard_last``: warm-up and wind-down); with both at 0
they are sample for sample the figures the app reports itself. When present, the first of them
is the primary path.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from clara_stream.bench.flowlog import Message, by_path, parse_file, trim
from clara_stream.bench.stats import summarize
from clara_stream.config import get_path, load_yaml
from clara_stream.errors import UserError


@dataclass
class BenchOptions:
    """What to run and how (the CLI's flags)."""

    app: str
    out: Path
    input: str | None = None
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    frames: int | None = None
    runs: int = 3
    instances: int = 1
    scheduler: str | None = None
    threads: int | None = None
    realtime: bool = False
    skip_first: int = 10
    discard_last: int = 10

    def __post_init__(self) -> None:
        if self.runs < 1 or self.instances < 1:
            raise UserError(f"bench: expected --runs and --instances >= 1; got {self.runs}, {self.instances}")
        if self.frames is not None and self.frames < 1:
            raise UserError(f"bench: expected --frames >= 1; got {self.frames}")


def app_overrides(opts: BenchOptions) -> list[str]:
    """The app's overrides for this benchmark: user's, then frames / realtime / scheduler switches.

    Apps name their frame-count and realtime keys under ``app:`` (``frames_key``,
    ``realtime_key``), so the harness can bound and pace any app without knowing its operators.
    """
    from clara_stream.runtime import find_app

    spec = find_app(opts.app)
    cfg_path = Path(opts.config) if opts.config else spec.config_path
    cfg = load_yaml(cfg_path) if cfg_path else {}
    items = list(opts.overrides)
    if opts.input:
        live = "://" in opts.input  # a stream URI stays as given (a Path would make rtsp:// into rtsp:/)
        items.append(f"app.input={opts.input if live else Path(opts.input).resolve()}")
    for flag, key, value in (("--frames", "frames_key", opts.frames), ("--realtime", "realtime_key",
                                                                         True if opts.realtime else None)):
        if value is None:
            continue
        target = get_path(cfg, f"app.{key}")
        if not target:
            raise UserError(f"bench: {flag} needs the app to declare app.{key} in its YAML; {spec.name} does not",
                            hint=f"add `{key}: <section.key>` under app: in {cfg_path}, or use --set")
        items.append(f"{target}={str(value).lower()}")
    if opts.scheduler:
        items.append(f"app.scheduler={opts.scheduler}")
    if opts.threads:
        items.append(f"app.threads={opts.threads}")
    return items


def _gpu_sampler(stop: threading.Event, samples: list[float]) -> None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return
    while not stop.wait(0.5):
        out = subprocess.run([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            samples.append(float(out.stdout.split()[0]))


def _launch(opts: BenchOptions, overrides: list[str], log: Path, result: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "clara_stream.bench.worker", "--app", opts.app, "--log", str(log),
           "--result", str(result)]
    if opts.config:
        cmd += ["--config", opts.config]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


GLASS = "glass-to-glass"


def glass_messages(timelines: list[dict[str, Any]]) -> list[tuple[str, list[Message]]]:
    """The worker's glass-to-glass clocks (perf_counter s) as messages whose hops are the stages (µs)."""
    out = []
    for t in timelines:
        stages = tuple(t["stages"])
        path = f"{GLASS} ({t['operator']}): {stages[0]} → {stages[-1]}"
        msgs = [Message(path, tuple((s, round(c * 1e6), round(c * 1e6)) for s, c in zip(stages, clocks, strict=True)))
                for clocks in t["clocks"]]
        out.append((path, msgs))
    return out


def _throughput(messages: list[Message]) -> float:
    if len(messages) < 2:
        return 0.0
    span_s = (messages[-1].end_us - messages[0].end_us) / 1e6
    return (len(messages) - 1) / span_s if span_s > 0 else 0.0


def run_bench(opts: BenchOptions, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the results dict (also the content of results.json)."""
    overrides = app_overrides(opts)
    logs_dir = opts.out / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    samples: dict[str, list[tuple[int, int, Message]]] = {}
    gpu: list[float] = []
    total = opts.runs * opts.instances
    for r in range(opts.runs):
        stop = threading.Event()
        gpu_thread = threading.Thread(target=_gpu_sampler, args=(stop, gpu), daemon=True)
        gpu_thread.start()
        procs = []
        for k in range(opts.instances):
            log, result = logs_dir / f"run{r}_inst{k}.log", logs_dir / f"run{r}_inst{k}.json"
            app_out = (opts.out / "app-output" / f"run{r}_inst{k}").resolve()  # instances never share files
            procs.append((k, log, result, _launch(opts, [*overrides, f"app.output={app_out}"], log, result)))
        for k, log, result, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                stop.set()
                tail = "\n".join(err.strip().splitlines()[-5:])
                raise UserError(f"bench: run {r} instance {k} of {opts.app} failed (exit {proc.returncode}):\n{tail}")
            facts = json.loads(result.read_text())
            grouped = {p: trim(ms, opts.skip_first, opts.discard_last) for p, ms in by_path(parse_file(log)).items()}
            glass = {p: trim(ms, opts.skip_first, opts.discard_last)
                     for p, ms in glass_messages(facts.get("glass", []))}
            for path, ms in [*grouped.items(), *glass.items()]:
                samples.setdefault(path, []).extend((r, k, m) for m in ms)
            primary = max(grouped.values(), key=len, default=[])
            runs.append({"run": r, "instance": k, "wall_s": facts["wall_s"], "messages": len(primary),
                         "throughput_fps": _throughput(primary), "dropped_frames": facts["dropped_frames"],
                         "cpu": facts["cpu"]})
            if on_progress:
                on_progress(len(runs), total)
        stop.set()
        gpu_thread.join()
    if not samples:
        raise UserError(f"bench: expected tracked messages from {opts.app}; got none",
                        hint="does the app's graph reach a sink? try more frames with --frames")
    return _aggregate(opts, overrides, runs, samples, gpu)


def _aggregate(opts: BenchOptions, overrides: list[str], runs: list[dict[str, Any]],
               samples: dict[str, list[tuple[int, int, Message]]], gpu: list[float]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, items in samples.items():
        per_run = []
        for r in range(opts.runs):
            run_lat = [m.latency_ms for rr, _, m in items if rr == r]
            if run_lat:
                per_run.append(summarize(run_lat))
        ops: dict[str, list[float]] = {}
        for _, _, m in items:
            for name, ms in m.operator_ms().items():
                ops.setdefault(name, []).append(ms)
        paths[path] = {"latency_ms": summarize([m.latency_ms for _, _, m in items]), "per_run": per_run,
                       "operators_ms": {name: summarize(v) for name, v in ops.items()}}
    cpu_proc = [s["process_pct"] for run in runs for s in run["cpu"]]
    cpu_sys = [s["system_pct"] for run in runs for s in run["cpu"]]
    return {
        "app": opts.app,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"machine": platform.machine(), "processor": platform.processor(), "node": platform.node(),
                    "cpus": _cpu_count(), "gpu": "nvidia-smi" if shutil.which("nvidia-smi") else None},
        "options": {**asdict(opts), "out": str(opts.out), "effective_overrides": overrides},
        "paths": paths,
        "throughput_fps": float(np.mean([r["throughput_fps"] for r in runs])),
        "throughput_fps_per_run": [r["throughput_fps"] for r in runs],
        "dropped_frames": int(sum(r["dropped_frames"] for r in runs)),
        "cpu": {"process_pct_mean": float(np.mean(cpu_proc)) if cpu_proc else None,
                "system_pct_mean": float(np.mean(cpu_sys)) if cpu_sys else None,
                "system_pct_max": float(np.max(cpu_sys)) if cpu_sys else None},
        "gpu": {"util_pct_mean": float(np.mean(gpu)), "util_pct_max": float(np.max(gpu))} if gpu else None,
        "runs": [{k: v for k, v in r.items() if k != "cpu"} for r in runs],
        "_samples": samples,
    }


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def primary_path(results: dict[str, Any]) -> str:
    """The first glass-to-glass path when the app keeps one; else the path with the most samples."""
    glass = [p for p in results["paths"] if p.startswith(GLASS)]
    if glass:
        return glass[0]
    return max(results["paths"], key=lambda p: results["paths"][p]["latency_ms"]["count"])
