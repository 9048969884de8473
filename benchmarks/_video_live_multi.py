"""The multi-stream part of ``video_live.py``: N clips batched in one process against N processes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def multi_round(kind: str, clips: list[Path], frames: int, work: Path) -> dict[str, Any]:
    """N clips, unpaced, through one batched process or N processes: aggregate fps and CPU per frame.

    ``fps``: all frames / wall time from launch to the last exit (start-up included, N of them
    for N processes); ``sustained_fps``: from each run's first to last frame written (the
    batched run's streams together; the processes' frames over their common clock's window:
    ``time.perf_counter`` is CLOCK_MONOTONIC, one clock for all processes), start-up left out.

    Both sides: the same model and clips, and per stream an H.264 MP4 and a KITTI file per frame,
    each with its app's shipped settings. Every round writes into a fresh folder: removing the
    previous round's thousands of KITTI files made every new file's inode allocation scan them
    (journal-less ext4 skips recently deleted inodes), a cost that depended on the round order.
    """
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    base = [sys.executable, "-m", "clara_stream.cli", "run"]
    out = Path(tempfile.mkdtemp(prefix=f"{kind}{len(clips)}_", dir=work))
    c0, t0 = cpu(), time.perf_counter()
    if kind == "batched":
        args = [a for c in clips for a in ("--input", str(c))]
        subprocess.run([*base, "video_detection_multi", *args, "--output", str(out / "multi"), "--set",
                        "batcher.loop=true", "--set", f"batcher.max_batches={frames}"],
                       check=True, capture_output=True, timeout=900)
    else:
        procs = [subprocess.Popen([*base, "video_detection", "--input", str(c), "--output", str(out / f"p{k}"),
                                   "--set", "decoder.loop=true", "--set", f"decoder.max_frames={frames}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for k, c in enumerate(clips)]
        assert all(p.wait(timeout=900) == 0 for p in procs)
    wall, used = time.perf_counter() - t0, cpu() - c0
    if kind == "batched":  # per-stream glass-to-glass (file read → encoded packet written), from the runs
        summary = json.loads((out / "multi" / "latency.json").read_text())
        lat, sustained = [st["latency"] for st in summary["streams"]], summary["fps_sustained"]
    else:  # the processes side by side: all their frames over the first to the last written (one clock)
        summaries = [json.loads((out / f"p{k}" / "latency.json").read_text()) for k in range(len(clips))]
        lat = [s["latency_ms"] for s in summaries]
        first, last = min(s["output_clock_s"][0] for s in summaries), max(s["output_clock_s"][1] for s in summaries)
        sustained = (sum(s["frames_written"] for s in summaries) - 1) / (last - first)
    return {"fps": round(len(clips) * frames / wall, 1), "sustained_fps": round(sustained, 1), "wall_s": round(wall, 2),
            "cpu_ms_per_frame": round(1e3 * used / (len(clips) * frames), 2), "cores": round(used / wall, 2),
            "stream_p50_ms": round(float(np.median([x["p50_ms"] for x in lat])), 1),
            "stream_p99_ms": round(float(max(x["p99_ms"] for x in lat)), 1)}


def spread(values: list[float]) -> str:
    v = [x for x in values if x is not None]
    return f"{np.median(v):.1f} [{min(v):.1f}–{max(v):.1f}]" if v else "—"
