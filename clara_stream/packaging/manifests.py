"""Holoscan / MONAI Deploy App Package (HAP/MAP) manifests: ``app.json`` and ``pkg.json``.

Field names, defaults and paths follow the HAP specification (Holoscan SDK docs, "Holoscan Application
Package Specification") and the values NVIDIA's packager (holoscan-cli) writes: application code under
``/opt/holoscan/app``, models under ``/opt/holoscan/models``, the config at ``/var/holoscan/app.yaml``,
both manifests under ``/etc/holoscan/``, input/output relative to the working directory ``/var/holoscan``.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

API_VERSION = "1.0.0"
APP_ROOT = "/opt/holoscan/app"
MODEL_ROOT = "/opt/holoscan/models"
WORK_DIR = "/var/holoscan"
CONFIG_PATH = "/var/holoscan/app.yaml"
APP_MANIFEST = "/etc/holoscan/app.json"
PKG_MANIFEST = "/etc/holoscan/pkg.json"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$")


def holoscan_version() -> str:
    """The installed Holoscan SDK's version, read from package metadata (nothing is imported)."""
    for dist in ("holoscan-cu13", "holoscan-cu12", "holoscan"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise ValueError("package: expected an installed Holoscan SDK (holoscan-cu13); got none")


def environment(app_dir: str) -> dict[str, str]:
    """The HOLOSCAN_* variables a HAP passes to its application."""
    return {
        "HOLOSCAN_APPLICATION": app_dir,
        "HOLOSCAN_INPUT_PATH": "input/",
        "HOLOSCAN_OUTPUT_PATH": "output/",
        "HOLOSCAN_WORKDIR": f"{WORK_DIR}/",
        "HOLOSCAN_MODEL_PATH": f"{MODEL_ROOT}/",
        "HOLOSCAN_CONFIG_PATH": CONFIG_PATH,
        "HOLOSCAN_APP_MANIFEST_PATH": APP_MANIFEST,
        "HOLOSCAN_PKG_MANIFEST_PATH": PKG_MANIFEST,
        "HOLOSCAN_DOCS_PATH": "/opt/holoscan/docs",
        "HOLOSCAN_LOGS_PATH": f"{WORK_DIR}/logs",
    }


def app_manifest(*, command: str, app_dir: str, version: str, inputs: list[str], outputs: list[str],
                 timeout_s: int = 0) -> dict[str, Any]:
    """``app.json``: how to run the application inside the package."""
    return {
        "apiVersion": API_VERSION,
        "command": command,
        "environment": environment(app_dir),
        "input": {"path": "input/", "formats": list(inputs)},
        "liveness": None,
        "output": {"path": "output/", "formats": list(outputs)},
        "readiness": None,
        "sdk": "holoscan",
        "sdkVersion": holoscan_version(),
        "timeout": timeout_s,
        "version": version,
        "workingDirectory": f"{WORK_DIR}/",
    }


def package_manifest(*, version: str, models: dict[str, str], resources: dict[str, Any],
                     platform_config: str | None) -> dict[str, Any]:
    """``pkg.json``: what the package holds and what it needs to run (``resources``)."""
    out: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "applicationRoot": f"{APP_ROOT}/",
        "modelRoot": f"{MODEL_ROOT}/",
        "models": dict(models),
        "resources": dict(resources),
        "version": version,
    }
    if platform_config is not None:
        out["platformConfig"] = platform_config
    return out


def resources(*, cpu: float, memory_mb: int, gpu: int, gpu_memory: str | None) -> dict[str, Any]:
    """The ``resources`` group in the HAP runner's units (memory as Kubernetes-style quantities).

    Raises
    ------
    ValueError
        For a negative count or a GPU memory that is not a quantity like ``4Gi``.
    """
    if cpu <= 0 or memory_mb <= 0 or gpu < 0:
        raise ValueError(f"package: expected cpu > 0, memory_mb > 0, gpu >= 0; got {cpu}, {memory_mb}, {gpu}")
    out: dict[str, Any] = {"cpu": cpu, "gpu": gpu, "memory": f"{memory_mb}Mi"}
    if gpu_memory is not None:
        if not QUANTITY.match(gpu_memory):
            raise ValueError(f"package: expected --gpu-memory like 4Gi or 512Mi; got {gpu_memory!r}")
        if gpu == 0:
            raise ValueError("package: expected --gpu >= 1 with --gpu-memory; got --gpu 0")
        out["gpuMemory"] = gpu_memory
    return out


def check_version(version: str, where: str) -> str:
    if not SEMVER.match(version):
        raise ValueError(f"package: expected a semantic version (1.2.3) in {where}; got {version!r}")
    return version
