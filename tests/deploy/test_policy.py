"""Policy over the rendered objects: hardening, probes, resources, pinned images, GPU scheduling, tokens.

Each test walks what Helm rendered (default, GPU and CPU values), not the templates' text.
"""

from __future__ import annotations

import base64

import pytest

from .conftest import CHARTS, VARIANTS, containers, pod_specs, variant_values
from .test_docker import host_options

SERVICE_CONTAINERS = {"dicom-adapter": "CLARA_STREAM_API_TOKEN", "renderer": "CLARA_STREAM_RENDER_TOKEN",
                      "ui": "CLARA_STREAM_RENDER_TOKEN", "dataset-service": "CLARA_STREAM_RENDER_TOKEN"}
CASES = [(c, v) for c in CHARTS for v in VARIANTS] + [("clara-dicom-adapter", "celery"), ("clara-stream", "celery")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{c}-{v}" for c, v in CASES])
def case(request, render):
    chart, variant = request.param
    return chart, variant, render(chart, variant_values(chart, variant))


def test_pods_run_hardened(case):
    """Fails if any container may run privileged, as root, escalate, write its root or keep capabilities."""
    _, _, objects = case
    assert pod_specs(objects)
    for where, spec in pod_specs(objects):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
    for where, c in containers(objects):
        sc = c["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False, where
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"], where
        assert "add" not in sc["capabilities"] and sc.get("runAsUser", 1) != 0, where
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_resources_and_probes(case):
    """Fails if a container lacks cpu/memory requests and limits, or a service lacks probes on its own ports."""
    _, _, objects = case
    for where, c in containers(objects):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind}"
        if c["name"] not in SERVICE_CONTAINERS:
            continue
        ports = {p["name"] for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            assert handler and handler["port"] in ports, f"{where}: {probe} on a port the container does not open"


def test_images_pinned_and_variant_matches_gpu(case):
    """Fails on an untagged or moving image tag, or a CUDA/CPU image on the wrong kind of node."""
    chart, variant, objects = case
    for where, c in containers(objects):
        name, _, tag = c["image"].rpartition(":")
        assert name and "/" in name and tag, f"{where}: {c['image']!r} is not name:tag"
        assert tag.split("-")[0] not in ("latest", "main", "master", "")
        assert tag.endswith("-cuda" if variant == "gpu" else "-cpu"), f"{where}: {c['image']}"
        assert c["imagePullPolicy"] == "IfNotPresent"


def test_gpu_limits_and_scheduling(case):
    """GPU values ask for nvidia.com/gpu (once per pod: the render trio's GPU is the renderer's) and land
    on GPU nodes; CPU/default values never ask for a GPU."""
    chart, variant, objects = case
    for where, spec in pod_specs(objects):
        gpus = [c["resources"].get("limits", {}).get("nvidia.com/gpu") for c in spec["containers"]]
        if variant == "gpu":
            assert [g for g in gpus if g is not None] == [1], where
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, where
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
            assert spec["runtimeClassName"] == "nvidia"
        else:
            assert gpus == [None] * len(gpus) and "runtimeClassName" not in spec, where


def test_services_listen_beyond_loopback_only_with_a_token(case):
    """Fails if a service binds 0.0.0.0 without its token coming from a rendered (non-empty) Secret."""
    _, _, objects = case
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    for where, c in containers(objects):
        if c["name"] not in SERVICE_CONTAINERS:
            continue
        options = host_options(c["args"][:2])
        assert options and all(f"{o}=0.0.0.0" in c["args"] for o in options), f"{where}: {options} {c['args']}"
        env = {e["name"]: e for e in c["env"]}
        ref = env[SERVICE_CONTAINERS[c["name"]]]["valueFrom"]["secretKeyRef"]
        token = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        assert len(token) >= 32, f"{where}: token too short"
        assert not any("token" in a for a in c["args"]), f"{where}: a token on the command line shows in ps"


def test_network_policy_admits_only_the_service_ports(case):
    """Fails if a pod has no NetworkPolicy, or its policy opens ports the pod does not serve, or opens a
    pod-internal port (one no Service exposes, e.g. the render trio's dataset service)."""
    _, _, objects = case
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(mine) == 1, w["metadata"]["name"]
        by_name = {p["name"]: p["containerPort"] for c in w["spec"]["template"]["spec"]["containers"]
                   for p in c.get("ports", [])}  # fmt: skip
        services = [o for o in objects if o["kind"] == "Service" and o["spec"]["selector"].items() <= labels.items()]
        exposed = {by_name.get(p["targetPort"], p["targetPort"]) for o in services for p in o["spec"]["ports"]}
        opened = {p["port"] for rule in mine[0]["spec"]["ingress"] for p in rule["ports"]}
        assert opened <= set(by_name.values()) and opened == (exposed if services else set(by_name.values()))
        assert set(mine[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_storage_selectable(render):
    """pvc → a claim the pod mounts; hostPath → the node folder and no claim; an existing claim is used as is."""
    for chart, key in (("clara-dicom-adapter", "storage"), ("clara-renderserver", "storage")):
        pvc = render(chart, {key: {"type": "pvc", "size": "7Gi"}})
        claims = {o["metadata"]["name"]: o for o in pvc if o["kind"] == "PersistentVolumeClaim"}
        spec = pod_specs(pvc)[0][1]
        used = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        assert used <= set(claims) and any(c["spec"]["resources"]["requests"]["storage"] == "7Gi"
                                           for c in claims.values())
        extra = {"cache": {"type": "emptyDir"}} if chart == "clara-renderserver" else {}
        host = render(chart, {key: {"type": "hostPath", "hostPath": "/clara-io/x"}, **extra})
        spec = pod_specs(host)[0][1]
        assert {"path": "/clara-io/x", "type": "DirectoryOrCreate"} in [v.get("hostPath") for v in spec["volumes"]]
        assert not any(o["kind"] == "PersistentVolumeClaim" for o in host)
        existing = render(chart, {key: {"type": "pvc", "existingClaim": "site-store"}})
        spec = pod_specs(existing)[0][1]
        assert "site-store" in {v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}


def test_existing_secret_replaces_the_generated_one(render):
    objs = render("clara-dicom-adapter", {"auth": {"existingSecret": "site-tokens", "secretKey": "adapter"}})
    assert not any(o["kind"] == "Secret" for o in objs)
    ref = next(e for _, c in containers(objs) for e in c["env"] if e["name"] == "CLARA_STREAM_API_TOKEN")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "site-tokens", "key": "adapter"}


def test_article_names_kept(render):
    """The render chart is the article's three containers (ui, renderer, dataset-service) with its env var
    names, port names and cache path; the ui's SERVICE_RS*/SERVICE_RSDS* reach the other two in the pod.

    Fails if a container is missing, a peer address points at the wrong port, the dataset service's
    pod-internal port leaks into the Service, or the GPU goes to a container other than the renderer.
    """
    objs = render("clara-renderserver", {"ui": {"hostPort": 8080}, "renderer": {"hostPort": 50051},
                                         "gpu": {"enabled": True}})  # fmt: skip
    by = {c["name"]: c for _, c in containers(objs)}
    assert list(by) == ["ui", "renderer", "dataset-service"]
    env = {n: {e["name"]: e.get("value") for e in c["env"]} for n, c in by.items()}
    ports = {n: {p["name"]: p for p in c["ports"]} for n, c in by.items()}
    assert env["renderer"]["CUDA_CACHE_PATH"] == "/cache/CudaCache" and env["renderer"]["OPTIX_CACHE_PATH"].startswith(
        "/cache/")
    assert env["renderer"]["DATASET_REPO_PATH"] == env["dataset-service"]["DATASET_REPO_PATH"] == "/datasets"
    assert env["ui"]["SERVICE_RS_PORT"] == str(ports["renderer"]["renderer"]["containerPort"])
    assert env["ui"]["SERVICE_RSDS_PORT"] == env["renderer"]["SERVICE_RSDS_PORT"] == str(
        ports["dataset-service"]["datasets"]["containerPort"])
    assert env["ui"]["SERVICE_RS_IP"] == env["ui"]["SERVICE_RSDS_IP"] == "127.0.0.1", "one pod: its loopback"
    roles = {n: next(a for a in c["args"] if a.startswith("--role=")) for n, c in by.items()}
    assert roles == {"ui": "--role=gateway", "renderer": "--role=renderer", "dataset-service": "--role=datasets"}
    assert "--render-server=$(SERVICE_RS_IP):$(SERVICE_RS_PORT)" in by["ui"]["args"]
    assert "--dataset-service=$(SERVICE_RSDS_IP):$(SERVICE_RSDS_PORT)" in by["renderer"]["args"]
    assert {(p["name"], p["containerPort"], p.get("hostPort")) for c in by.values() for p in c["ports"]} == {
        ("ui", 8080, 8080), ("renderer", 50051, 50051), ("datasets", 50052, None)}
    service = next(o for o in objs if o["kind"] == "Service")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"ui": "ui", "renderer": "renderer"}
    gpus = {n for n, c in by.items() if "nvidia.com/gpu" in c["resources"]["limits"]}
    assert gpus == {"renderer"}
    mounts = {n: {m["mountPath"]: m["name"] for m in c["volumeMounts"]} for n, c in by.items()}
    assert mounts["renderer"]["/cache"] == "cache" and mounts["renderer"]["/datasets"] == "datasets"
    assert mounts["dataset-service"]["/datasets"] == "datasets" and "/datasets" not in mounts["ui"]


def test_dicom_adapter_as_nvidia_chart(render):
    """NodePort Service with DICOM on 104 and REST on 5000 (NVIDIA's adapter chart), mapped to unprivileged ports."""
    objs = render("clara-dicom-adapter", {"dicomAdapter": {"dicomNodePort": 30104}})
    service = next(o for o in objs if o["kind"] == "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service["spec"]["type"] == "NodePort"
    assert (ports["dicom"]["port"], ports["dicom"]["nodePort"], ports["api"]["port"]) == (104, 30104, 5000)
    (_, c), = containers(objs)
    by_name = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert by_name["dicom"] >= 1024 and f"--dicom-port={by_name['dicom']}" in c["args"]
    assert f"--http-port={by_name['api']}" in c["args"]


@pytest.mark.parametrize("chart,key,claim", [("clara-dicom-adapter", "storage", "data"),
                                             ("clara-renderserver", "storage", "datasets"),
                                             ("clara-renderserver", "cache", "cache")])
def test_host_path_persistent_volume(render, kubernetes_validate, chart, key, claim):
    """`hostPathVolume` (the article's volume.yaml): a hostPath PV reserved for the chart's claim, which the pod uses.

    Fails if the PV could bind another claim (no claimRef), the claim could get a dynamic volume (no empty
    storage class / volumeName), or the data would go with an uninstall (reclaim policy or keep annotation).
    """
    objs = render(chart, {key: {"type": "hostPathVolume", "hostPath": "/clara-io/site", "size": "20Gi"}})
    for obj in objs:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    pvs = [o for o in objs if o["kind"] == "PersistentVolume"]
    claims = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PersistentVolumeClaim"}
    (pv,) = pvs
    mine = claims[f"site-{chart}-{claim}"]
    assert pv["spec"]["hostPath"] == {"path": "/clara-io/site", "type": "DirectoryOrCreate"}
    assert pv["spec"]["claimRef"] == {"namespace": "clara", "name": mine["metadata"]["name"]}
    assert mine["spec"]["volumeName"] == pv["metadata"]["name"] and mine["spec"]["storageClassName"] == ""
    assert pv["spec"]["storageClassName"] == "" and pv["spec"]["capacity"]["storage"] == "20Gi"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (_, spec), = pod_specs(objs)
    assert mine["metadata"]["name"] in {v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}


@pytest.mark.parametrize("drain", [20, 90])
def test_adapter_grace_period_covers_its_sigterm_drain(render, drain):
    """Fails if the kubelet's SIGKILL could land while the adapter still drains associations
    (the grace period must exceed drainTimeoutS) or the service never hears the drain time."""
    objs = render("clara-dicom-adapter", {"dicomAdapter": {"drainTimeoutS": drain}})
    (_, spec), = pod_specs(objs)
    (_, c), = containers(objs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["CLARA_STREAM_DRAIN_TIMEOUT_S"] == str(drain)
    assert spec["terminationGracePeriodSeconds"] >= drain + 30
