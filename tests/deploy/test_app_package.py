"""`clara-stream package`: a HAP-compatible layout that runs, and that the clara-app chart runs.

Oracles: a JSON schema of the HAP manifests written here from the specification's field tables (checked
with the independent ``jsonschema`` library), the source files' bytes (sha256), the real CLI running the
packaged app, hadolint on the generated Dockerfile and Helm + kubernetes-validate on the chart.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from clara_stream.packaging import write_package

from .conftest import REPO, containers, pod_specs
from .test_docker import run_cli

APPS = REPO / "apps"
SEMVER = r"^\d+\.\d+\.\d+"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$"
# HAP "Application Manifest" and "Package Manifest" tables (names, required, types, formats).
APP_JSON = {
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "command", "input", "output", "version", "workingDirectory"],
    "properties": {
        "apiVersion": {"type": "string", "pattern": SEMVER}, "command": {"type": "string", "minLength": 1},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "input": {"type": "object", "required": ["formats"], "properties": {
            "path": {"type": "string", "pattern": "^[^/]"}, "formats": {"type": "array"}}},
        "output": {"type": "object", "required": ["formats"], "properties": {
            "path": {"type": "string", "pattern": "^[^/]"}, "formats": {"type": "array"}}},
        "liveness": {"type": ["object", "null"]}, "readiness": {"type": ["object", "null"]},
        "sdk": {"enum": ["holoscan", "monai-deploy"]}, "sdkVersion": {"type": "string", "pattern": SEMVER},
        "timeout": {"type": "integer", "minimum": 0}, "version": {"type": "string", "pattern": SEMVER},
        "workingDirectory": {"type": "string", "pattern": "^/"},
    },
}
PKG_JSON = {
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "applicationRoot", "modelRoot", "models", "resources", "version"],
    "properties": {
        "apiVersion": {"type": "string", "pattern": SEMVER}, "applicationRoot": {"const": "/opt/holoscan/app/"},
        "modelRoot": {"const": "/opt/holoscan/models/"},
        "models": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^/opt/holoscan/models/"}},
        "resources": {"type": "object", "additionalProperties": False, "required": ["cpu", "gpu", "memory"],
                      "properties": {"cpu": {"type": "number", "exclusiveMinimum": 0},
                                     "gpu": {"type": "integer", "minimum": 0},
                                     "memory": {"type": "string", "pattern": QUANTITY},
                                     "gpuMemory": {"type": "string", "pattern": QUANTITY}}},
        "version": {"type": "string", "pattern": SEMVER}, "platformConfig": {"enum": ["igpu", "dgpu"]},
    },
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _local(argv: list[str], root: Path) -> list[str]:
    """The package's command with its absolute in-image paths pointed at the package folder."""
    return [a.replace("/opt/holoscan", str(root / "opt/holoscan")).replace("/var/holoscan", str(root / "var/holoscan"))
            for a in argv]


@pytest.mark.parametrize("app", ["hello_stream", "organ_segmentation", "multi_ai", "video_detection"])
def test_manifests_have_the_documented_fields(tmp_path, app):
    """Fails on a missing, misspelt or mistyped manifest field (e.g. memory as a number, a relative root)."""
    pkg = write_package(app, tmp_path)
    app_json = json.loads((pkg.root / "etc/holoscan/app.json").read_text())
    pkg_json = json.loads((pkg.root / "etc/holoscan/pkg.json").read_text())
    jsonschema.validate(app_json, APP_JSON)
    jsonschema.validate(pkg_json, PKG_JSON)
    assert pkg.root.name == f"{app}-{app_json['version']}" and app_json["version"] == pkg_json["version"]
    env = app_json["environment"]
    assert env["HOLOSCAN_CONFIG_PATH"] == "/var/holoscan/app.yaml"
    assert env["HOLOSCAN_MODEL_PATH"] == "/opt/holoscan/models/"


def test_resources_from_metadata_and_options(tmp_path):
    """organ_segmentation's metadata asks 2 cores, 2048 MB, no GPU; --gpu/--gpu-memory override it."""
    cpu = write_package("organ_segmentation", tmp_path / "cpu").package_manifest
    assert cpu["resources"] == {"cpu": 2, "gpu": 0, "memory": "2048Mi"} and "platformConfig" not in cpu
    gpu = write_package("organ_segmentation", tmp_path / "gpu", gpu=1, gpu_memory="4Gi", platform_config="igpu")
    assert gpu.package_manifest["resources"] == {"cpu": 2, "gpu": 1, "memory": "2048Mi", "gpuMemory": "4Gi"}
    assert gpu.package_manifest["platformConfig"] == "igpu"
    assert "clara-stream/app:0.1.0-cuda" in (gpu.root / "Dockerfile").read_text()


def test_models_copied_byte_for_byte_and_reached_from_the_app(tmp_path):
    """Every model file lands under /opt/holoscan/models and the app's own relative path still reaches it."""
    pkg = write_package("multi_ai", tmp_path)
    assert set(pkg.package_manifest["models"]) == {"multi_ai/model_kidneys", "organ_segmentation/model"}
    for rel in pkg.package_manifest["models"]:
        source = sorted(p for p in (APPS / rel).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        assert source
        for src in source:
            inner = src.relative_to(APPS)
            assert _sha(pkg.root / "opt/holoscan/models" / inner) == _sha(src), inner
            via_app = pkg.root / "opt/holoscan/app" / inner
            assert via_app.resolve() == (pkg.root / "opt/holoscan/models" / inner).resolve()
    app_dir = pkg.root / "opt/holoscan/app/multi_ai"
    assert (app_dir / "model_kidneys").is_symlink() and not any(app_dir.rglob("__pycache__"))
    assert _sha(app_dir / "app.py") == _sha(APPS / "multi_ai/app.py")


def test_the_packaged_app_runs_with_its_own_command(tmp_path):
    """The app.json command, run by the real CLI against the package folder, runs the packaged copy."""
    pkg = write_package("hello_stream", tmp_path)
    (pkg.root / "var/holoscan/app.yaml").write_text(
        (pkg.root / "var/holoscan/app.yaml").read_text().replace("count: 30", "count: 7"))
    argv = _local(shlex.split(pkg.app_manifest["command"]), pkg.root)
    proc = subprocess.run([str(Path(sys.executable).parent / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((pkg.root / "var/holoscan/output/summary.json").read_text())
    assert summary["frames"] == 7, "the packaged config (count: 7), not the app's own (30), was used"


def test_graph_of_a_packaged_model_app_validates(tmp_path):
    pkg = write_package("organ_segmentation", tmp_path)
    code, out = run_cli(["validate", str(pkg.root / "opt/holoscan/app/organ_segmentation"),
                         "--config", str(pkg.root / "var/holoscan/app.yaml")])
    assert code == 0 and "graph OK" in out, out[-1500:]


def test_package_dockerfile_runs_the_manifest_command(tmp_path, peer):
    pkg = write_package("organ_segmentation", tmp_path)
    hadolint = peer(Path(sys.executable).parent / "hadolint", ["--version"], "Haskell Dockerfile Linter")
    lint = subprocess.run([str(hadolint), "--failure-threshold", "style", "--no-color", str(pkg.root / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in (pkg.root / "Dockerfile").read_text().splitlines()
             if ln and not ln.startswith("#")}
    assert json.loads(lines["ENTRYPOINT"]) + json.loads(lines["CMD"]) == shlex.split(pkg.app_manifest["command"])
    for src in ("etc/", "opt/", "var/"):
        assert (pkg.root / src).is_dir()


def test_bad_input_is_refused_and_nothing_is_overwritten(tmp_path):
    first = write_package("hello_stream", tmp_path)
    before = {p: _sha(p) for p in first.root.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="expected a new folder"):
        write_package("hello_stream", tmp_path)
    assert before == {p: _sha(p) for p in first.root.rglob("*") if p.is_file()}
    with pytest.raises(FileNotFoundError, match="no_such_app"):
        write_package("no_such_app", tmp_path)
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="YAML mapping"):
        write_package("organ_segmentation", tmp_path / "x", config=bad)
    with pytest.raises(ValueError, match="--gpu >= 1"):
        write_package("organ_segmentation", tmp_path / "y", gpu_memory="4Gi")
    with pytest.raises(ValueError, match="--gpu-memory like"):
        write_package("organ_segmentation", tmp_path / "z", gpu=1, gpu_memory="4 GB")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_bad_metadata_named(tmp_path):
    app = tmp_path / "src" / "myapp"
    app.mkdir(parents=True)
    (app / "app.py").write_text("")
    (app / "metadata.json").write_text('{"application": {"name": "myapp", "version": "one"}}')
    with pytest.raises(ValueError, match="semantic version"):
        write_package(app, tmp_path / "out")


def test_cli_package_command(tmp_path):
    code, out = run_cli(["package", "hello_stream", "--out", str(tmp_path)])
    assert code == 0 and str(tmp_path / "hello_stream-0.1.0") in out
    code, out = run_cli(["package", "hello_stream", "--out", str(tmp_path)])
    assert code == 2 and "expected a new folder" in out


@pytest.mark.parametrize("gpus", [0, 1])
def test_clara_app_chart_runs_the_package(tmp_path, render, kubernetes_validate, gpus):
    """The package's helm-values.yaml makes clara-app run exactly app.json's command with the packaged config."""
    pkg = write_package("organ_segmentation", tmp_path, gpu=gpus)
    values = yaml.safe_load((pkg.root / "helm-values.yaml").read_text())
    objects = render("clara-app", values)
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    (_, c), = containers(objects)
    assert c["command"] == shlex.split(pkg.app_manifest["command"]) and "args" not in c
    assert c["image"] == f"clara-stream/app-organ-segmentation:0.1.0-{'cuda' if gpus else 'cpu'}"
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["app.yaml"]
    assert yaml.safe_load(config) == yaml.safe_load((pkg.root / "var/holoscan/app.yaml").read_text())
    assert 1 in yaml.safe_load(config)["app"]["segments"], "integer label keys survive Helm"
    res = pkg.package_manifest["resources"]
    assert c["resources"]["requests"]["memory"] == res["memory"] and c["resources"]["limits"]["cpu"] == str(res["cpu"])
    assert c["resources"]["limits"].get("nvidia.com/gpu") == (gpus or None)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/var/holoscan/app.yaml", "/var/holoscan/input", "/var/holoscan/output"} <= mounts
    (_, spec), = pod_specs(objects)
    assert spec["restartPolicy"] == "Never"
