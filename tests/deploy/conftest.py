"""Deploy fixtures: the charts built with the real Helm Go SDK (helm-python-sdk), rendered offline.

No cluster runs here: charts are linted and rendered by Helm's own code and every manifest is checked
against the Kubernetes OpenAPI schemas (kubernetes-validate). Both are the ``deploy`` extra; under CI
their absence fails instead of skipping (root conftest's ``missing_peer``).
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "helm"
SERVICES = ("clara-dicom-adapter", "clara-renderserver", "clara-app")
CHARTS = (*SERVICES, "clara-stream")
VARIANTS = ("default", "gpu", "cpu")


def _need(require_peers, module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        require_peers(f"{what} not installed (pip install -e .[deploy])")


@pytest.fixture(scope="session")
def helm(require_peers):
    """The ``helm_python`` module (Helm's Go SDK through its C ABI)."""
    return _need(require_peers, "helm_python", "helm-python-sdk")


@pytest.fixture(scope="session")
def kubernetes_validate(require_peers):
    return _need(require_peers, "kubernetes_validate", "kubernetes-validate")


@pytest.fixture(scope="session")
def charts(helm, tmp_path_factory) -> Path:
    """A copy of helm/ with every chart's file:// dependencies built (what `helm dependency update` does)."""
    root = tmp_path_factory.mktemp("helm")
    for chart in ("clara-common", *CHARTS):
        shutil.copytree(HELM / chart, root / chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    for chart in SERVICES:
        helm.dependency_update(root / chart)
    helm.dependency_update(root / "clara-stream")  # after the services, so it bundles them with clara-common
    return root


# The adapter scaled out (issue 16): distinct Secret names and keys, a shared RWX claim, CPU workers.
CELERY = {"scheduler": {"backend": "celery"},
          "broker": {"urlSecret": "site-rabbitmq", "urlKey": "amqp-url", "port": 5671},
          "database": {"urlSecret": "site-postgres", "urlKey": "dsn"},
          "storage": {"type": "pvc", "accessMode": "ReadWriteMany"},
          "worker": {"replicas": 3, "queues": ["cpu"], "cpuMemoryMb": 6000}}


def variant_values(chart: str, variant: str) -> dict[str, Any]:
    """The values a user passes with ``-f values-<variant>.yaml`` ({} for the chart defaults; ``celery``:
    the adapter with the celery backend, alone or in the umbrella)."""
    if variant == "default":
        return {}
    if variant == "celery":
        return CELERY if chart == "clara-dicom-adapter" else {"clara-dicom-adapter": CELERY}
    return yaml.safe_load((HELM / chart / f"values-{variant}.yaml").read_text()) or {}


@pytest.fixture(scope="session")
def render(helm, charts) -> Callable[..., list[dict[str, Any]]]:
    """``render(chart, values)`` → the Kubernetes objects Helm would apply (NOTES.txt left out)."""

    def _render(chart: str, values: dict[str, Any] | None = None, name: str = "site") -> list[dict[str, Any]]:
        manifests = helm.Chart.load(charts / chart).render(values or {}, name=name, namespace="clara")
        objects = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                continue
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
        return objects

    return _render


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    return out


def containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{where}/{c['name']}", c) for where, spec in pod_specs(objects)
            for c in spec.get("initContainers", []) + spec["containers"]]
