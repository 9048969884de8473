"""`make bench`: run every benchmark script here and rewrite the results table in README.md.

Protocol: a script accepts ``--json PATH`` and writes
``{"benchmark": name, "rows": [{"case", "metric", "value", "anchor", "anchor_value", "ratio"}, …]}``;
each row's anchor was measured in the same run. The table between the markers in
benchmarks/README.md is replaced with the machine, the date and every row. A script that does not
speak the protocol is run plainly and the tail of its output is kept instead.

    python benchmarks/run_all.py [--only NAME ...] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores, {cpu}, {system}, Python {platform.python_version()}, {gpu}"


def run_script(script: Path) -> dict:
    """Run one benchmark; returns its JSON, or {"benchmark", "text"} for a script without --json."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script), "--json", str(out)], text=True,
                              capture_output=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode == 0 and out.is_file():
            data = json.loads(out.read_text())
            if not isinstance(data, dict) or not data.get("rows"):  # its own JSON shape: keep what it printed
                return {"benchmark": script.stem, "status": "ok",
                        "text": "\n".join(proc.stdout.strip().splitlines()[-25:])}
            return data
        if "unrecognized arguments" in proc.stderr or "no such option" in proc.stderr:
            plain = subprocess.run([sys.executable, str(script)], text=True, capture_output=True)
            sys.stdout.write(plain.stdout)
            status = "ok" if plain.returncode == 0 else f"failed (exit {plain.returncode})"
            return {"benchmark": script.stem, "text": "\n".join(plain.stdout.strip().splitlines()[-25:]),
                    "status": status}
        sys.stderr.write(proc.stderr[-3000:])
        return {"benchmark": script.stem, "status": f"failed (exit {proc.returncode})",
                "text": "\n".join(proc.stderr.strip().splitlines()[-10:])}


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


def render_table(results: list[dict]) -> str:
    lines = [START, "", f"Machine: {machine()}  ", f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  ",
             "Written by `make bench` (benchmarks/run_all.py); each ratio is against the anchor measured in the "
             "same run.", ""]
    for res in results:
        lines.append(f"### {res['benchmark']}")
        if res.get("rows"):
            lines += ["", "| case | metric | value | anchor | anchor value | ratio |", "|---|---|---|---|---|---|"]
            for r in res["rows"]:
                lines.append(f"| {r.get('case', '')} | {r.get('metric', '')} | {_fmt(r.get('value'))} | "
                             f"{r.get('anchor', '')} | {_fmt(r.get('anchor_value'))} | {_fmt(r.get('ratio'))} |")
        if res.get("text"):
            lines += ["", f"Status: {res.get('status', 'ok')}", "", "```", res["text"], "```"]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update_readme(table: str) -> None:
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + table + tail
    else:
        text = text.rstrip() + "\n\n## Latest `make bench` run\n\n" + table + "\n"
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="script stems to run (default: all)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave README.md alone")
    args = parser.parse_args(argv)
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    results = [run_script(s) for s in scripts]
    table = render_table(results)
    if not args.no_readme:
        update_readme(table)
        print(f"updated {README}")
    failed = [r["benchmark"] for r in results if str(r.get("status", "ok")).startswith("failed")]
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
