"""Precision and recall of the video_detection app on held-out synthetic videos (IoU 0.5).

Writes each video with :func:`clara_stream.samples.video.write_sample` (seeds below the training
range), runs the app on it, and scores the KITTI files against the ground truth::

    python apps/video_detection/model/evaluate.py --videos 5 [--set inference.backend=...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from clara_stream.operators.video.evaluate import Score, evaluate_kitti

from clara_stream.runtime import load_app
from clara_stream.samples.video import write_sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="video_eval_"))
    total, rows = Score(), []
    for seed in range(a.first_seed, a.first_seed + a.videos):
        sample = write_sample(work, seed=seed, width=640, height=360, frames=a.frames, objects=(1, 4))
        out = work / f"out_{seed}"
        load_app("video_detection", input=sample["video"], output=out, overrides=a.overrides).run()
        s = evaluate_kitti(out / "kitti", sample["ground_truth"], a.iou)
        total.add(s)
        rows.append(
            {
                "seed": seed,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
                "precision": round(s.precision, 3),
                "recall": round(s.recall, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {
                "videos": a.videos,
                "frames": a.videos * a.frames,
                "objects": total.tp + total.fn,
                "tp": total.tp,
                "fp": total.fp,
                "fn": total.fn,
                "precision": round(total.precision, 4),
                "recall": round(total.recall, 4),
                "iou": a.iou,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
