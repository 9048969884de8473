"""The adapter's celery backend in the chart (issue 16): worker Deployment, external broker/database, storage.

Rendered by Helm's Go SDK, validated by kubernetes-validate (strict), commands parsed by the real CLI.
"""

from __future__ import annotations

import copy
import shutil

import pytest

from .conftest import CELERY, containers, pod_specs
from .test_commands import expand
from .test_docker import run_cli

URLS = {"CLARA_STREAM_BROKER_URL": {"name": "site-rabbitmq", "key": "amqp-url"},
        "CLARA_STREAM_DATABASE_URL": {"name": "site-postgres", "key": "dsn"}}


def celery(**worker) -> dict:
    values = copy.deepcopy(CELERY)
    values["worker"].update(worker)
    return values


def by_name(objects: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for _, c in containers(objects)}


def workload(objects: list[dict], suffix: str) -> dict:
    (obj,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(suffix)]
    return obj


@pytest.mark.parametrize("chart", ["clara-dicom-adapter", "clara-stream"])
def test_celery_lints_and_validates_strict(helm, charts, render, kubernetes_validate, chart):
    values = CELERY if chart == "clara-dicom-adapter" else {"clara-dicom-adapter": CELERY}
    report = helm.lint(charts / chart, values, strict=True, with_subcharts=True)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    objects = render(chart, values)
    assert {"adapter-worker"} <= {o["metadata"]["name"][-14:] for o in objects if o["kind"] == "Deployment"}
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_adapter_and_workers_share_the_broker_database_and_data(render):
    """Fails if the adapter keeps the embedded scheduler, a URL travels on the command line (ps shows it),
    the two read different Secrets, or the worker's --shared-dir is not the adapter's data folder on the
    same volume (job paths written by the adapter would not exist on the worker)."""
    objects = render("clara-dicom-adapter", CELERY)
    c = by_name(objects)
    adapter, worker = c["dicom-adapter"], c["worker"]
    assert "--scheduler=celery" in adapter["args"]
    for container in (adapter, worker):
        env = {e["name"]: e for e in container["env"]}
        assert {n: env[n]["valueFrom"]["secretKeyRef"] for n in URLS} == URLS
        assert not any(s in a for a in container["args"] for s in ("amqp", "postgres", "--broker", "--database"))
    data_dir = next(a for a in adapter["args"] if a.startswith("--data-dir=")).split("=", 1)[1]
    assert f"--shared-dir={data_dir}" in worker["args"]
    mounts = {n: {m["mountPath"]: m["name"] for m in c[n]["volumeMounts"]} for n in c}
    volumes = {w.rsplit("/", 1)[-1]: {v["name"]: v for v in spec["volumes"]} for w, spec in pod_specs(objects)}
    adapter_volume = volumes["site-clara-dicom-adapter"][mounts["dicom-adapter"][data_dir]]
    worker_volume = volumes["site-clara-dicom-adapter-worker"][mounts["worker"][data_dir]]
    assert adapter_volume == worker_volume and "persistentVolumeClaim" in worker_volume
    (claim,) = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["name"] == worker_volume["persistentVolumeClaim"]["claimName"]
    assert workload(objects, "-worker")["spec"]["replicas"] == 3


def test_worker_command_parses_with_the_real_cli(render):
    """The rendered worker and adapter command lines are options the CLI has (a wrong one fails)."""
    c = by_name(render("clara-dicom-adapter", celery(queues=["gpu", "cpu"], gpuMemoryMb=12000)))
    for name in ("worker", "dicom-adapter"):
        env = {e["name"]: e["value"] for e in c[name]["env"] if "value" in e}
        argv = [expand(a, env) for a in [*c[name]["command"], *c[name]["args"]]]
        code, out = run_cli([*argv[1:], "--help"])
        assert argv[0] == "clara-stream" and code == 0, f"{name}: {argv}: {out[-400:]}"
    worker = c["worker"]["args"]
    assert worker[0] == "worker"
    assert {"--queues=gpu,cpu", "--gpu-memory-mb=12000", "--cpu-memory-mb=6000"} <= set(worker)
    code, _ = run_cli([*worker, "--queue=gpu", "--help"])
    assert code != 0


def test_worker_gpu_only_when_it_takes_gpu_memory(render):
    """gpuMemoryMb > 0: gpu.count GPUs, the CUDA image, the runtime class; the adapter (which runs no jobs on
    this backend) asks for none. gpuMemoryMb 0: no GPU, the CPU image."""
    gpu = {"count": 2, "runtimeClassName": "nvidia"}
    objects = render("clara-dicom-adapter", {**celery(gpuMemoryMb=24000), "gpu": gpu})
    c = by_name(objects)
    assert c["worker"]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert c["worker"]["image"].endswith("-cuda") and c["dicom-adapter"]["image"].endswith("-cpu")
    assert "nvidia.com/gpu" not in c["dicom-adapter"]["resources"]["limits"]
    assert workload(objects, "-worker")["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in workload(objects, "-adapter")["spec"]["template"]["spec"]
    cpu = render("clara-dicom-adapter", {**celery(), "gpu": gpu})
    w = by_name(cpu)["worker"]
    assert "nvidia.com/gpu" not in w["resources"]["limits"] and w["image"].endswith("-cpu")
    assert "runtimeClassName" not in workload(cpu, "-worker")["spec"]["template"]["spec"]


def test_worker_serves_nothing_and_reaches_only_broker_database_dns(render):
    """No ports or probes on the worker (see worker.yaml); its own policy: no ingress, egress to the broker
    and database ports (narrowed by worker.egressTo) and DNS. Fails if either Deployment or policy selects
    the other's pods (the Deployments would fight over them; the adapter's ports would open on workers)."""
    peer = {"ipBlock": {"cidr": "10.20.0.0/16"}}
    objects = render("clara-dicom-adapter", celery(egressTo=[peer]))
    worker = by_name(objects)["worker"]
    assert not worker.get("ports") and not {"startupProbe", "readinessProbe", "livenessProbe"} & set(worker)
    pods = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in pods.items()}
    for n, d in pods.items():
        matched = {m for m, lab in labels.items() if d["spec"]["selector"]["matchLabels"].items() <= lab.items()}
        assert matched == {n}, n
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    (mine,) = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items()
               <= labels["site-clara-dicom-adapter-worker"].items()]
    assert mine["spec"]["ingress"] == [] and set(mine["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    rules = mine["spec"]["egress"]
    ports = {(p["port"], p["protocol"]) for r in rules for p in r["ports"]}
    assert ports == {(5671, "TCP"), (5432, "TCP"), (53, "UDP"), (53, "TCP")}
    assert next(r for r in rules if {"port": 5671, "protocol": "TCP"} in r["ports"])["to"] == [peer]


@pytest.mark.parametrize("extra", [{}, {"worker": {"replicas": 9, "gpuMemoryMb": 4000},
                                        "broker": {"urlSecret": "mq"}, "database": {"urlSecret": "pg"}}])
def test_embedded_backend_renders_no_celery(render, extra):
    """The default (embedded) renders no worker, no celery option or URL env, whatever the celery values say:
    the same objects as the chart defaults (the Secret's random token left out)."""
    def objects(values):
        return [o for o in render("clara-dicom-adapter", values) if o["kind"] != "Secret"]

    embedded = objects({"scheduler": {"backend": "embedded"}, **extra})
    assert embedded == objects({})
    assert [o["metadata"]["name"] for o in embedded if o["kind"] == "Deployment"] == ["site-clara-dicom-adapter"]
    (adapter,) = by_name(embedded).values()
    assert not any("scheduler" in a for a in adapter["args"])
    assert not {e["name"] for e in adapter["env"]} & set(URLS)


def test_host_path_storage_is_shared_too(render):
    """hostPath (a single-node edge box) is accepted for celery: both pods mount the same node folder."""
    objects = render("clara-dicom-adapter", {**CELERY, "storage": {"type": "hostPath", "hostPath": "/clara-io/site"}})
    folders = {w: [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v] for w, spec in pod_specs(objects)}
    assert list(folders.values()) == [["/clara-io/site"], ["/clara-io/site"]]
    assert not any(o["kind"] == "PersistentVolumeClaim" for o in objects)


@pytest.mark.parametrize("values,message", [
    ({**CELERY, "storage": {"type": "pvc", "accessMode": "ReadWriteOnce"}}, "storage: expected hostPath or"),
    ({**CELERY, "broker": {"urlSecret": ""}}, "broker.urlSecret: expected a Secret name"),
])
def test_templates_refuse_without_the_schema(helm, charts, tmp_path, values, message):
    """With schema validation skipped (`helm install --skip-schema-validation`), the templates still refuse
    a celery install whose workers could not share /data or reach the broker, naming the value."""
    chart = tmp_path / "clara-dicom-adapter"
    shutil.copytree(charts / "clara-dicom-adapter", chart)
    (chart / "values.schema.json").unlink()
    with pytest.raises(Exception, match=message.replace(".", r"\.")):
        helm.Chart.load(chart).render(values, name="site", namespace="clara")
