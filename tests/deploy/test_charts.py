"""Every chart lints (strict) and renders through Helm's Go SDK, and every object validates (strict).

Oracles: Helm's own linter and renderer (helm-python-sdk binds Helm v4's Go SDK) and the Kubernetes
OpenAPI schemas of a current release (kubernetes-validate); neither shares code with the charts.
"""

from __future__ import annotations

import copy

import pytest

from .conftest import CHARTS, VARIANTS, containers, variant_values

EXPECTED_KINDS = {
    "clara-dicom-adapter": {"Deployment", "Service", "Secret", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy"},
    "clara-renderserver": {"Deployment", "Service", "Secret", "PersistentVolumeClaim", "NetworkPolicy"},
    "clara-app": {"Job", "PersistentVolumeClaim", "NetworkPolicy"},
    "clara-stream": {"Deployment", "Service", "Secret", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy"},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_lint_strict(helm, charts, chart, variant):
    """Fails on a template error, a schema/values mismatch or any lint warning (strict)."""
    report = helm.lint(charts / chart, variant_values(chart, variant), strict=True, with_subcharts=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], (report["errors"], problems)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_every_manifest_validates_strict(render, kubernetes_validate, chart, variant):
    """Fails on a misplaced or misspelt field (strict refuses unknown fields) or a wrong type."""
    objects = render(chart, variant_values(chart, variant))
    expected = EXPECTED_KINDS[chart] - ({"PersistentVolumeClaim"} if variant == "cpu" else set())  # hostPath there
    assert expected <= {o["kind"] for o in objects}
    version = kubernetes_validate.latest_version()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 33)
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_validator_refuses_an_unknown_field(render, kubernetes_validate):
    """The oracle is not vacuous: a field Kubernetes does not know is refused in strict mode."""
    deployment = next(o for o in render("clara-dicom-adapter") if o["kind"] == "Deployment")
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["hostPorts"] = [104]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_umbrella_switches_parts(render):
    """Fails if a part's `enabled` condition is ignored, or the umbrella renders a part twice."""
    names = lambda objs: sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objs)  # noqa: E731
    site = render("clara-stream", {"clara-app": {"enabled": True}})
    parts = [render(c) for c in ("clara-dicom-adapter", "clara-renderserver", "clara-app")]
    assert names(site) == sorted(n for p in parts for n in names(p))
    only_adapter = render("clara-stream", {"clara-renderserver": {"enabled": False}})
    assert names(only_adapter) == names(parts[0])


def test_umbrella_passes_values_to_parts(render):
    """A value under a part's key reaches that part only."""
    objs = render("clara-stream", {"clara-dicom-adapter": {"dicomAdapter": {"aeTitle": "EDGE1"}}})
    args = {where: c.get("args", []) for where, c in containers(objs)}
    adapter = next(a for w, a in args.items() if "dicom-adapter" in w)
    assert "--ae-title=EDGE1" in adapter
    assert not any("EDGE1" in " ".join(a) for w, a in args.items() if "dicom-adapter" not in w)


def test_app_kinds(render, kubernetes_validate):
    """`job` renders a Job that never restarts in place; `stream` a Deployment that keeps running; not both."""
    version = kubernetes_validate.latest_version()
    job = render("clara-app", {"app": {"kind": "job"}})
    stream = render("clara-app", {"app": {"kind": "stream", "config": "source:\n  count: 0\n"}})
    assert [o["kind"] for o in job if o["kind"] in ("Job", "Deployment")] == ["Job"]
    assert [o["kind"] for o in stream if o["kind"] in ("Job", "Deployment")] == ["Deployment"]
    for obj in job + stream:
        kubernetes_validate.validate(obj, version, strict=True)
    (_, job_c), = containers(job)
    assert "--config=/var/holoscan/app.yaml" not in job_c["args"], "no config given: the app's own app.yaml"
    deployment = next(o for o in stream if o["kind"] == "Deployment")
    assert "restartPolicy" not in deployment["spec"]["template"]["spec"]
    assert next(o for o in stream if o["kind"] == "ConfigMap")["data"]["app.yaml"] == "source:\n  count: 0\n"
