"""Architecture rules that keep the seam: imports point one way; the wheel holds the namespace."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clara_stream import ports as P

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["clara_stream", "operators", "apps", "render", "voice"]
CORE = ["arrays.py", "contracts.py", "geometry.py", "config.py", "ports.py", "errors.py", "inference", "models"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _py_files(*folders: str) -> list[Path]:
    files = []
    for folder in folders:
        base = ROOT / folder
        files += [base] if base.is_file() else sorted(base.rglob("*.py")) if base.exists() else []
    return [f for f in files if "__pycache__" not in f.parts]


def test_only_the_runtime_imports_holoscan() -> None:
    offenders = [
        str(f.relative_to(ROOT)) for f in _py_files(*PACKAGES, "benchmarks", "tests")
        if "runtime" not in f.relative_to(ROOT).parts[:2]
        and any(n == "holoscan" or n.startswith("holoscan.") for n in _imports(f))
    ]
    assert offenders == []


def test_core_never_imports_operators_apps_or_services() -> None:
    banned = ("clara_stream.operators", "clara_stream.apps", "clara_stream.render", "clara_stream.voice",
              "clara_stream.platform", "clara_stream.cli")
    files = _py_files(*[f"clara_stream/{c}" for c in CORE], "clara_stream/runtime")
    offenders = [f"{f.relative_to(ROOT)} imports {n}" for f in files for n in _imports(f) if n.startswith(banned)]
    assert offenders == []


def test_port_vocabulary() -> None:
    assert P.is_canonical("frame") and P.is_canonical("mask_prior") and P.is_canonical("frame_in")
    assert not P.is_canonical("seg_image")
    assert P.suffixed(P.MASK, "prior") == "mask_prior"
    with pytest.raises(ValueError, match="vocabulary"):
        P.suffixed("seg_image", "x")


@pytest.mark.slow
def test_wheel_installs_the_namespace(tmp_path: Path) -> None:
    """Build the wheel, install it into a folder and import the mapped packages from there."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("clara_stream-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "clara_stream/operators/common/scale_op.py" in names
    assert "clara_stream/apps/hello_stream/app.yaml" in names
    assert not any(n.startswith(("operators/", "apps/", "render/", "voice/")) for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import clara_stream, clara_stream.operators.common.scale_op as s, clara_stream.runtime as r;"
            "print(clara_stream.__file__); print(r.find_app('hello_stream').config_path)")
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.splitlines()[:2]
    assert first.startswith(str(target)) and second.startswith(str(target))


def _domain(module: str) -> str | None:
    """The domain a module belongs to: an operators/ package or a service (render, voice, platform)."""
    parts = module.split(".")
    if parts[:2] == ["clara_stream", "operators"] and len(parts) > 2:
        return f"operators/{parts[2]}"
    if parts[0] == "clara_stream" and len(parts) > 1 and parts[1] in ("render", "voice", "platform"):
        return parts[1]
    return None


def _domain_graph() -> dict[str, dict[str, str]]:
    """domain → {imported domain: one file that makes the import}."""
    graph: dict[str, dict[str, str]] = {}
    roots = {"operators": "clara_stream.operators", "render": "clara_stream.render", "voice": "clara_stream.voice",
             "clara_stream/platform": "clara_stream.platform"}
    for folder, package in roots.items():
        for f in _py_files(folder):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            src = _domain(".".join([package, *rel.parts]))
            if src is None or f.name.startswith("test_") or "tests" in f.parts:
                continue
            for name in _imports(f):
                dst = _domain(name)
                if dst is not None and dst != src:
                    graph.setdefault(src, {}).setdefault(dst, str(f.relative_to(ROOT)))
    return graph


def test_no_import_loops_between_domains() -> None:
    """DESIGN.md: never two domains importing each other in a loop (shared contracts live in one place).

    Fails for a direct pair (dicom ↔ volume) and for a longer ring (render → operators/render → render)."""
    graph = _domain_graph()

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, {}))
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo += list(graph.get(d, {}))
        return seen

    cyclic = {a for a in graph if a in reach(a)}
    edges = [f"{a} → {b} ({via})" for a in sorted(cyclic) for b, via in sorted(graph[a].items()) if b in cyclic
             and a in reach(b)]
    assert edges == []


def _op_classes(folder: Path) -> list[str]:
    return [n.name for f in sorted(folder.glob("*_op.py")) if not f.name.startswith("test_")
            for n in ast.parse(f.read_text()).body
            if isinstance(n, ast.ClassDef) and n.name.endswith("Op") and not n.name.startswith("_")]


OPERATOR_FOLDERS = sorted(p.name for p in (ROOT / "operators").iterdir() if (p / "__init__.py").is_file())


@pytest.mark.parametrize("folder", OPERATOR_FOLDERS)
def test_operator_folders_follow_holohub_conventions(folder: str) -> None:
    """README.md naming every operator, metadata.json listing exactly the operators found in the folder."""
    import json

    base = ROOT / "operators" / folder
    found = _op_classes(base)
    meta = json.loads((base / "metadata.json").read_text())["operator"]
    assert sorted(meta["operators"]) == sorted(found)
    assert meta["language"] == "Python" and meta["holoscan_sdk"]["minimum_required_version"]
    readme = (base / "README.md").read_text()
    assert [op for op in found if op not in readme] == []


def test_every_app_runs_as_a_module() -> None:
    apps = [p for p in (ROOT / "apps").iterdir() if (p / "app.py").is_file()]
    assert apps and [p.name for p in apps if not (p / "__main__.py").is_file()] == []
