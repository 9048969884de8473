"""``make demo``: generate sample data and run the main jobs on their embedded defaults.

Each step is the CLI command a user would type (printed before it runs), so the demo doubles as
a walkthrough. Steps whose app is not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clara_stream.runtime import list_apps
from clara_stream.samples import write_sample

console = Console(soft_wrap=True)


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "clara_stream.cli", *args]
    console.print(f"[bold]$ clara-stream {shlex.join(args)}[/]", highlight=False)
    subprocess.run(cmd, check=True)


# (app, sample kind, the sample's path key, what the sample is): every reference app with a sample.
DEMO_JOBS: tuple[tuple[str, str, str, str], ...] = (
    ("video_detection", "video", "video", "synthetic H.264 with ground truth"),
    ("organ_segmentation", "ct", "dicom", "phantom DICOM series with organ labels"),
    ("digital_pathology", "slide", "slide", "pyramidal TIFF slide"),
    ("prostate_mr", "pelvis_mr", "dicom", "oblique pelvis MR phantom"),
    ("lung_ct", "chest", "dicom", "chest CT phantom with lesions"),
)


def run_demo(out: Path) -> list[tuple[str, Path]]:
    """Run every available main job into ``out``; returns (job, output folder) pairs."""
    out.mkdir(parents=True, exist_ok=True)
    apps = set(list_apps())
    done: list[tuple[str, Path]] = []
    for app, kind, key, what in DEMO_JOBS:
        if app not in apps:
            continue
        console.print(f"[cyan]sample {kind}[/] ({what})")
        sample = write_sample(kind, out / "samples" / kind)
        _cli("run", app, "--input", str(sample[key]), "--output", str(out / app))
        done.append((app, out / app))
    if not done:
        _cli("run", "hello_stream", "--output", str(out / "hello_stream"))
        done.append(("hello_stream", out / "hello_stream"))
    return done


def _listing(folder: Path) -> str:
    """Top-level entries; folders with their file counts (``kitti/ (90 files)``)."""
    parts = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            parts.append(f"{entry.name}/ ({sum(1 for p in entry.rglob('*') if p.is_file())} files)")
        else:
            parts.append(entry.name)
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for samples and results")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        done = run_demo(args.out)
    except subprocess.CalledProcessError as exc:
        console.print(f"[bold red]demo step failed[/] (exit {exc.returncode}): {shlex.join(exc.cmd[3:])}")
        return 1
    table = Table(title=f"demo finished in {time.perf_counter() - start:.1f} s: outputs")
    table.add_column("job")
    table.add_column("folder")
    table.add_column("files")
    for job, folder in done:
        table.add_row(job, str(folder.resolve()), _listing(folder))
    console.print(table)
    out = args.out
    render = out / "organ_segmentation" / "render"
    if render.is_dir():
        console.print(f"view it: clara-stream render serve --root {out.resolve()} --register {render.resolve()}",
                      highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
