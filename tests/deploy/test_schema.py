"""values.schema.json refuses bad values (Helm's own validator), and the generated files are in sync."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import CELERY, CHARTS, HELM, variant_values

BAD = [
    ("clara-dicom-adapter", {"dicomAdapter": {"maxJobs": "2"}}, "/dicomAdapter/maxJobs"),
    ("clara-dicom-adapter", {"dicomAdapter": {"dicomPort": -1}}, "/dicomAdapter/dicomPort"),
    ("clara-dicom-adapter", {"dicomAdapter": {"apiNodePort": 80}}, "/dicomAdapter/apiNodePort"),
    ("clara-dicom-adapter", {"dicomAdapter": {"containerDicomPort": 104}}, "/dicomAdapter/containerDicomPort"),
    ("clara-dicom-adapter", {"dicomAdapter": {"aeTitle": "A_TITLE_LONGER_THAN_16"}}, "/dicomAdapter/aeTitle"),
    ("clara-dicom-adapter", {"dicomAdapter": {"aetitle": "X"}}, "aetitle"),
    ("clara-dicom-adapter", {"images": {"dicomAdapter": None}}, "dicomAdapter"),
    ("clara-dicom-adapter", {"images": {"tag": "latest"}}, "/images/tag"),
    ("clara-dicom-adapter", {"storage": {"type": "nfs"}}, "/storage/type"),
    ("clara-dicom-adapter", {"storage": {"hostPath": "clara-io"}}, "/storage/hostPath"),
    ("clara-dicom-adapter", {"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
    ("clara-dicom-adapter", {"scheduler": {"backend": "celery"}, "storage": {"type": "hostPath"}}, "/broker/urlSecret"),
    ("clara-dicom-adapter", {**CELERY, "database": {"urlSecret": ""}}, "/database/urlSecret"),
    ("clara-dicom-adapter", {**CELERY, "storage": {"type": "pvc", "accessMode": "ReadWriteOnce"}}, "/storage"),
    ("clara-dicom-adapter", {**CELERY, "storage": {"type": "emptyDir", "accessMode": "ReadWriteMany"}}, "/storage"),
    ("clara-dicom-adapter", {"scheduler": {"backend": "rabbitmq"}}, "/scheduler/backend"),
    ("clara-dicom-adapter", {"worker": {"queues": ["gpus"]}}, "/worker/queues/0"),
    ("clara-dicom-adapter", {"worker": {"queues": []}}, "/worker/queues"),
    ("clara-dicom-adapter", {"worker": {"replicas": 0}}, "/worker/replicas"),
    ("clara-dicom-adapter", {"worker": {"gpuMemoryMb": -1}}, "/worker/gpuMemoryMb"),
    ("clara-dicom-adapter", {"broker": {"port": 0}}, "/broker/port"),
    ("clara-stream", {"clara-dicom-adapter": {"scheduler": {"backend": "celery"}}}, "/broker/urlSecret"),
    ("clara-renderserver", {"renderer": {"port": 70000}}, "/renderer/port"),
    ("clara-renderserver", {"ui": {"port": "8080"}}, "/ui/port"),
    ("clara-renderserver", {"gpu": {"enabled": "yes"}}, "/gpu/enabled"),
    ("clara-renderserver", {"gpu": {"count": 0}}, "/gpu/count"),
    ("clara-renderserver", {"images": {"renderServer": ""}}, "/images/renderServer"),
    ("clara-renderserver", {"cache": {"size": "lots"}}, "/cache/size"),
    ("clara-app", {"app": {"kind": "cron"}}, "/app/kind"),
    ("clara-app", {"app": {"name": ""}}, "/app/name"),
    ("clara-app", {"app": {"set": ["no-equals-sign"]}}, "/app/set/0"),
    ("clara-app", {"images": {"pullPolicy": "Sometimes"}}, "/images/pullPolicy"),
    ("clara-stream", {"clara-app": {"enabled": "true"}}, "/clara-app/enabled"),
    ("clara-stream", {"clara-renderserver": {"renderer": {"port": -3}}}, "/renderer/port"),
]


@pytest.mark.parametrize("chart,values,where", BAD, ids=[f"{c}:{w}" for c, _, w in BAD])
def test_schema_refuses(helm, charts, chart, values, where):
    """Fails if a wrong type, a missing image, an out-of-range port or a misspelt key gets through."""
    with pytest.raises(helm.HelmValuesError) as info:
        helm.Chart.load(charts / chart).render(values, name="site", namespace="clara")
    assert where in str(info.value)


@pytest.mark.parametrize("variant", ["default", "gpu", "cpu"])
@pytest.mark.parametrize("chart", CHARTS)
def test_schema_accepts_the_shipped_values(helm, charts, chart, variant):
    """The refusals above are not a schema that refuses everything."""
    helm.Chart.load(charts / chart).validate_schema(helm.Chart.load(charts / chart).merge_values(
        variant_values(chart, variant)))


def test_generated_schemas_and_readme_tables_in_sync():
    """Fails if a schema or the README values tables were edited by hand or not regenerated.

    Fix with `python helm/schemas.py`.
    """
    spec = importlib.util.spec_from_file_location("helm_schemas", HELM / "schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.generated().items():
        assert path.read_text() == text, f"{path} is stale: run python helm/schemas.py"


def test_readme_tables_list_every_leaf_key():
    """The table of each chart names every leaf key of its values.yaml (a new value must be documented)."""
    import yaml

    readme = (HELM / "README.md").read_text()

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v and k not in ("seed", "config", "resources", "nodeSelector", "affinity"):
                yield from leaves(v, f"{prefix}{k}.")
            elif isinstance(v, dict) and k == "resources":
                yield f"{prefix}{k}.requests"
                yield f"{prefix}{k}.limits"
            else:
                yield f"{prefix}{k}"

    for chart in CHARTS:
        block = readme.split(f"<!-- values:{chart} -->")[1].split("<!-- /values -->")[0]
        values = yaml.safe_load((HELM / chart / "values.yaml").read_text())
        for key in leaves(values):
            if chart == "clara-stream" and not key.endswith("enabled"):
                continue
            assert f"`{key}`" in block or f"`{key}." in block, f"{chart}: {key} missing from the README table"
