"""One tracked run of an app in its own process (what ``clara-stream bench`` launches per instance).

    python -m clara_stream.bench.worker --app APP --log LOG --result OUT.json [--config F] [--set k=v]...

Writes the Holoscan tracking log and a JSON with wall time, CPU samples, dropped-frame counts and
the glass-to-glass clocks of operators that keep them (:func:`glass_timelines`).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any


def _sample_cpu(stop: threading.Event, samples: list[dict[str, float]], period_s: float) -> None:
    try:
        import psutil
    except ImportError:
        return
    proc = psutil.Process()
    proc.cpu_percent(None)
    psutil.cpu_percent(None)
    t0 = time.perf_counter()
    while not stop.wait(period_s):
        samples.append({"t_s": time.perf_counter() - t0, "process_pct": proc.cpu_percent(None),
                        "system_pct": psutil.cpu_percent(None)})


def dropped_frames(app: Any) -> int:
    """Sum of the ``dropped_frames`` counters operators expose (the drop-policy convention)."""
    total = 0
    for op in getattr(app, "operators", []):
        value = getattr(op, "dropped_frames", None)
        if isinstance(value, int):
            total += value
    return total


def glass_timelines(app: Any) -> list[dict[str, Any]]:
    """Per-frame clocks of operators that expose a glass-to-glass ``timeline`` (the sink convention).

    An operator sets ``timeline_stages`` (names of the clocks, first = glass start, last = glass
    end) and ``timeline`` (one tuple of ``time.perf_counter()`` values per frame). Work on the
    operators' own threads (a decoder's demux, an encoder's mux) is inside these clocks, where the
    engine's tracking, which stamps only compute calls, cannot see it.
    """
    out = []
    for op in getattr(app, "operators", []):
        stages, line = getattr(op, "timeline_stages", None), getattr(op, "timeline", None)
        if isinstance(stages, tuple) and line:
            out.append({"operator": op.name, "stages": list(stages), "clocks": [list(map(float, t)) for t in line]})
    return out


def run_once(app_name: str, *, log: Path, config: str | None, overrides: list[str],
             cpu_period_s: float = 0.1) -> dict[str, Any]:
    """Run the app once with tracking on; return the run's facts."""
    from clara_stream.runtime import load_app

    app = load_app(app_name, config=config, overrides=overrides, extra=["app.log_level=error"])
    app.enable_tracking(log_file=log, skip_first=0, discard_last=0)  # trimming happens at analysis
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(stop, samples, cpu_period_s), daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        app.run()
    finally:
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        if app.tracker is not None:
            app.tracker.end_logging()
    return {"wall_s": wall, "cpu": samples, "dropped_frames": dropped_frames(app),
            "operators": [op.name for op in app.operators], "glass": glass_timelines(app)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    result = run_once(args.app, log=args.log, config=args.config, overrides=args.overrides)
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
