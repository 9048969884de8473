"""`helm upgrade`-style re-render: a changed value changes only the fields it should.

A config change must also change the pod template (its checksum annotation), or Kubernetes would keep
the old pods running with the old config after the upgrade.
"""

from __future__ import annotations

from typing import Any

import pytest

TOKEN = {"auth": {"token": "t" * 40}}  # a fixed token: a generated one differs on every offline render


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}").items()} or {prefix: {}}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()} or {prefix: []}
    return {prefix: value}


def changed(before: list[dict], after: list[dict]) -> set[str]:
    """Paths ``Kind/name.field...`` whose value differs (or exists on one side only)."""
    a = {k: v for o in before for k, v in _flat(o, f"{o['kind']}/{o['metadata']['name']}").items()}
    b = {k: v for o in after for k, v in _flat(o, f"{o['kind']}/{o['metadata']['name']}").items()}
    return {k for k in a.keys() | b.keys() if a.get(k, KeyError) != b.get(k, KeyError)}


CASES = [
    ("clara-dicom-adapter", TOKEN, {"images": {"tag": "0.1.1"}},
     {"Deployment/site-clara-dicom-adapter.spec.template.spec.containers[0].image"}),
    ("clara-dicom-adapter", TOKEN, {"dicomAdapter": {"seed": {"sources": [{"name": "ct", "aeTitle": "CT1",
                                                                             "hostIp": "10.0.0.7"}]}}},
     {"ConfigMap/site-clara-dicom-adapter-seed.data.seed.yaml",
      "Deployment/site-clara-dicom-adapter.spec.template.metadata.annotations.checksum/seed"}),
    ("clara-dicom-adapter", TOKEN, {"dicomAdapter": {"aeTitle": "EDGE2"}},
     {"Deployment/site-clara-dicom-adapter.spec.template.spec.containers[0].args[{ae_title}]"}),
    ("clara-renderserver", TOKEN, {"resources": {"limits": {"memory": "16Gi"}}},
     {"Deployment/site-clara-renderserver.spec.template.spec.containers[1].resources.limits.memory"}),
    ("clara-app", {"app": {"config": {"source": {"count": 10}}}}, {"app": {"config": {"source": {"count": 20}}}},
     {"ConfigMap/site-clara-app-config.data.app.yaml",
      "Job/site-clara-app.spec.template.metadata.annotations.checksum/config"}),
]


@pytest.mark.parametrize("chart,base,change,expected", CASES, ids=[f"{c[0]}:{list(c[2])[0]}" for c in CASES])
def test_upgrade_changes_only_what_it_should(render, chart, base, change, expected):
    """Fails if a value leaks into other objects, or a config change would not roll the pods."""
    merged = {**base, **change} if not set(base) & set(change) else {**base, **_merge(base, change)}
    before = render(chart, base)
    args = next(o for o in before if o["kind"] in ("Deployment", "Job"))["spec"]["template"]["spec"]["containers"][0]
    at = {"ae_title": next((i for i, a in enumerate(args.get("args", [])) if a.startswith("--ae-title=")), -1)}
    assert changed(before, render(chart, merged)) == {e.format(**at) for e in expected}


def test_same_values_render_the_same(render):
    """No template makes up a different object on every upgrade (a timestamp, an unstable order)."""
    site = {p: TOKEN for p in ("clara-dicom-adapter", "clara-renderserver")}
    for chart, values in (("clara-dicom-adapter", TOKEN), ("clara-renderserver", TOKEN), ("clara-app", {}),
                          ("clara-stream", site)):
        assert changed(render(chart, values), render(chart, values)) == set()


def test_release_name_changes_object_names_not_selectors_of_others(render):
    """Two releases in one namespace do not select each other's pods."""
    a, b = render("clara-dicom-adapter", TOKEN, name="site-a"), render("clara-dicom-adapter", TOKEN, name="site-b")
    sel = lambda objs: next(o for o in objs if o["kind"] == "Service")["spec"]["selector"]  # noqa: E731
    assert sel(a) != sel(b)
    assert {o["metadata"]["name"] for o in a}.isdisjoint({o["metadata"]["name"] for o in b})


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out
