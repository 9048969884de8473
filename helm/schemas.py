"""Write every chart's ``values.schema.json`` and the values tables in ``helm/README.md``.

``python helm/schemas.py`` regenerates both; ``python helm/schemas.py --check`` exits 1 when a
committed file differs (the tests call :func:`generated` and compare). The schemas share their
building blocks here, so the four charts cannot drift apart on images, ports, storage or security.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HELM = Path(__file__).resolve().parent
CHARTS = ("clara-dicom-adapter", "clara-renderserver", "clara-app", "clara-stream")
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"


def _obj(props: dict[str, Any], desc: str, required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "description": desc, "properties": props, "additionalProperties": False}
    # Helm drops keys whose value is null, so nullable keys are never required.
    nullable = {k for k, v in props.items() if isinstance(v.get("type"), list) and "null" in v["type"]}
    out["required"] = sorted(set(props) - nullable) if required is None else required
    return out


def _s(desc: str, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **kw}


def _b(desc: str) -> dict[str, Any]:
    return {"type": "boolean", "description": desc}


def _i(desc: str, lo: int | None = None, hi: int | None = None, null: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ["integer", "null"] if null else "integer", "description": desc}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def _port(desc: str) -> dict[str, Any]:
    return _i(desc, 1, 65535)


def _node_port(desc: str) -> dict[str, Any]:
    return _i(f"{desc}; null = assigned by Kubernetes", 30000, 32767, null=True)


def _list(desc: str, items: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "array", "description": desc, "items": items or {"type": "object"}}


def _map(desc: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "description": desc, "additionalProperties": values or {}}


def images(name_key: str, what: str) -> dict[str, Any]:
    """The ``images`` block: NVIDIA's adapter chart's names plus one image name per chart."""
    tag = _s("release tag; the chart appends -cpu or -cuda (gpu.enabled); a moving tag like latest is refused",
             pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$", **{"not": {"enum": ["latest", "main", "master"]}})
    return _obj({
        "registry": _s("registry host (and path) before the namespace; empty = none"),
        "namespace": _s("image namespace (organisation)", minLength=1),
        "tag": tag,
        "pullPolicy": _s("image pull policy", enum=["IfNotPresent", "Always", "Never"]),
        "pullSecrets": _list("names of docker-registry Secrets", {"type": "string", "minLength": 1}),
        name_key: _s(f"image name of the {what}", minLength=1, pattern=r"^[a-z0-9][a-z0-9._/-]*$"),
    }, "container images")


def storage(desc: str) -> dict[str, Any]:
    return _obj({
        "type": _s("pvc (a claim), hostPath (a node folder, as Fleet Command edge boxes use), hostPathVolume "
                   "(that folder as a PersistentVolume bound to the claim) or emptyDir (scratch)",
                   enum=["pvc", "hostPath", "hostPathVolume", "emptyDir"]),
        "size": _s("claim size (pvc, hostPathVolume)", pattern=QUANTITY),
        "storageClassName": _s("storage class of the claim; empty = the cluster default"),
        "existingClaim": _s("use this claim instead of creating one"),
        "accessMode": _s("access mode of the claim", enum=["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]),
        "hostPath": _s("node folder (hostPath, hostPathVolume); must be writable by securityContext.runAsUser",
                       pattern="^/"),
    }, desc)


def common() -> dict[str, Any]:
    """Keys every service chart has (clara-common's templates read them)."""
    return {
        "enabled": _b("install this part (read by the clara-stream umbrella chart)"),
        "global": {"type": "object", "description": "Helm globals (unused)"},
        "clara-common": {"type": "object", "description": "values of the clara-common library chart (unused)"},
        "nameOverride": _s("replaces the chart name in object names"),
        "fullnameOverride": _s("replaces the release-chart object name"),
        "gpu": _obj({
            "enabled": _b("request GPUs and use the CUDA image"),
            "count": _i("GPUs per pod", 1),
            "resourceName": _s("extended resource of the GPU", minLength=1),
            "runtimeClassName": _s("runtime class for GPU pods (e.g. nvidia); empty = the node default"),
        }, "GPU scheduling"),
        "resources": _obj({
            "requests": _map("cpu/memory requests", {"type": ["string", "number"]}),
            "limits": _map("cpu/memory limits (the GPU limit is added from gpu)", {"type": ["string", "number"]}),
        }, "container resources", ["requests", "limits"]),
        "securityContext": _obj({
            "runAsUser": _i("user id (non-root)", 1),
            "runAsGroup": _i("group id", 1),
            "fsGroup": _i("group owning mounted volumes", 0),
        }, "pod user (the images' user is 10001)"),
        "networkPolicy": _obj({
            "enabled": _b("create a NetworkPolicy"),
            "ingressFrom": _list("NetworkPolicyPeer objects allowed in on the service ports; empty = any source"),
            "egress": _list("NetworkPolicyEgressRule objects; empty = all egress"),
        }, "network policy"),
        "tmpSizeLimit": _s("size of the writable /tmp (the root filesystem is read-only)", pattern=QUANTITY),
        "nodeSelector": _map("node labels the pod needs (e.g. nvidia.com/gpu.present)", {"type": "string"}),
        "tolerations": _list("tolerations (e.g. of a GPU node taint)"),
        "affinity": {"type": "object", "description": "pod affinity"},
    }


def auth() -> dict[str, Any]:
    """The token block of the two services (clara-common's tokenSecret reads it)."""
    return {
        "auth": _obj({
            "token": _s("API bearer token; empty = existingSecret, else the token kept in the release Secret, "
                        "else a random one"),
            "existingSecret": _s("Secret holding the token (key secretKey)"),
            "secretKey": _s("key of the token in the Secret", minLength=1),
        }, "API token (required: the service listens beyond loopback inside the pod)"),
    }


def _probe_timing() -> dict[str, Any]:
    return {"periodSeconds": _i("probe period (s)", 1), "failureThreshold": _i("failures before a restart", 1)}


def dicom_adapter() -> dict[str, Any]:
    d = _obj({
        "serviceType": _s("Service type", enum=["NodePort", "ClusterIP", "LoadBalancer"]),
        "dicomPort": _port("Service port modalities call (DICOM)"),
        "apiPort": _port("Service port of the REST API and console"),
        "dicomNodePort": _node_port("NodePort of DICOM"),
        "apiNodePort": _node_port("NodePort of the REST API"),
        "containerDicomPort": _i("port the non-root process binds for DICOM", 1024, 65535),
        "containerApiPort": _i("port the process binds for REST", 1024, 65535),
        "hostPorts": _b("also bind dicomPort/apiPort on the node (hostPort)"),
        "aeTitle": _s("the SCP's own AE title", pattern=r"^[^\\]{1,16}$"),
        "maxAssociations": _i("concurrent associations", 1),
        "maxJobs": _i("jobs running at once", 1),
        "keepAborted": _b("keep instances of aborted associations"),
        "drainTimeoutS": _i("on SIGTERM, seconds associations in progress get to finish (new ones refused); "
                            "the pod's grace period follows", 0, 600),
        "logLevel": _s("log level", enum=["debug", "info", "warning"]),
        "gpuMemoryBudgetMb": _i("GPU memory running jobs may declare in total (MB)", 0),
        "seed": _obj({k: _list(f"{k} to upsert at start") for k in ("sources", "destinations", "pipelines", "aes")},
                     "configuration upserted at start (--seed)", []),
        "extraEnv": _list("more container env vars (CLARA_STREAM_* settings)"),
    }, "the adapter (`clara-stream dicom serve`)", None)
    d["required"] = [k for k in d["required"] if k not in ("seed", "extraEnv")]
    probes = _obj({"initialDelaySeconds": _i("readiness delay (s)", 0), **_probe_timing()}, "probes of /health")
    return {**common(), **auth(), "images": images("dicomAdapter", "DICOM adapter"), "dicomAdapter": d,
            "storage": storage("instance store, state and job folders (/data; shared with the workers)"),
            "probes": probes, **celery()}


def _url_secret(what: str, port: int) -> dict[str, Any]:
    return _obj({
        "urlSecret": _s(f"Secret holding the {what} URL (passed as env, never args); required for celery"),
        "urlKey": _s("key of the URL in the Secret", minLength=1),
        "port": _port(f"{what} port the worker's NetworkPolicy opens (default {port})"),
    }, f"celery: the site's {what} (external, not deployed by the chart)")


def celery() -> dict[str, Any]:
    """The adapter's scale-out values: scheduler backend, external broker/database, worker pods."""
    own = _obj({
        "requests": _map("cpu/memory requests", {"type": ["string", "number"]}),
        "limits": _map("cpu/memory limits (the GPU limit is added when gpuMemoryMb > 0)",
                       {"type": ["string", "number"]}),
    }, "the worker container's resources", ["requests", "limits"])
    worker = _obj({
        "replicas": _i("worker pods; each runs one job at a time (replicas = slots)", 1),
        "queues": {**_list("queues the workers take jobs from", {"type": "string", "enum": ["gpu", "cpu"]}),
                   "minItems": 1, "uniqueItems": True},
        "cpuMemoryMb": _i("largest CPU memory a job may declare on a worker (MB)", 0),
        "gpuMemoryMb": _i("largest GPU memory a job may declare (MB); > 0 asks for gpu.count GPUs and the "
                          "-cuda image", 0),
        "logLevel": _s("log level", enum=["debug", "info", "warning"]),
        "resources": own,
        "egressTo": _list("NetworkPolicyPeer objects where the broker and database are; empty = any address"),
        "extraEgress": _list("more NetworkPolicyEgressRule objects of the workers (e.g. a Triton server)"),
    }, "celery: `clara-stream worker` Deployment (storage mounted at /data; no probes: it serves no port)")
    return {
        "scheduler": _obj({"backend": _s("embedded (jobs run in the adapter pod) or celery (worker pods take them "
                                         "from the broker)", enum=["embedded", "celery"])}, "job scheduler"),
        "broker": _url_secret("RabbitMQ", 5672), "database": _url_secret("PostgreSQL", 5432), "worker": worker,
    }


CELERY_RULES = {
    "if": {"properties": {"scheduler": {"properties": {"backend": {"const": "celery"}}, "required": ["backend"]}},
           "required": ["scheduler"]},
    "then": {"properties": {
        "broker": {"properties": {"urlSecret": {"minLength": 1}}},
        "database": {"properties": {"urlSecret": {"minLength": 1}}},
        "storage": {"anyOf": [{"properties": {"type": {"const": "hostPath"}}},
                              {"properties": {"type": {"enum": ["pvc", "hostPathVolume"]},
                                              "accessMode": {"const": "ReadWriteMany"}}}]},
    }},
}


def render_server() -> dict[str, Any]:
    def port_block(desc: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        props = {"portName": _s("port name", pattern="^[a-z]([a-z0-9-]{0,13}[a-z0-9])?$"),
                 "port": _port("container and Service port"), "nodePort": _node_port("NodePort"),
                 "hostPort": _i("also bind this port on the node; null = no", 1, 65535, null=True), **(extra or {})}
        return _obj(props, desc, ["portName", "port"])

    budget = {"type": "number", "exclusiveMinimum": 0, "description": "memory budget for loaded volumes (GB)"}
    own = _obj({
        "requests": _map("cpu/memory requests", {"type": ["string", "number"]}),
        "limits": _map("cpu/memory limits", {"type": ["string", "number"]}),
    }, "this container's resources", ["requests", "limits"])
    renderer = port_block("container renderer: RenderService (resources: the top-level block, GPU)",
                          {"maxLoadedGb": budget})
    datasets = port_block("container dataset-service: the registrations (pod-internal port, not in the Service)", {
        "maxLoadedGb": budget, "resources": own,
        "register": _list("PATH or PATH::MASK under /datasets registered at start", {"type": "string"}),
        "demo": _b("also serve the synthetic demo data"),
    })
    datasets["properties"].pop("nodePort")
    datasets["properties"]["port"] = _port("container port (the pod's other containers reach it on loopback)")
    return {**common(), **auth(), "images": images("renderServer", "render server"),
            "service": _obj({"type": _s("Service type", enum=["NodePort", "ClusterIP", "LoadBalancer"])}, "Service"),
            "ui": port_block("container ui: web dashboard (HTTP + WebSocket)", {"resources": own}),
            "renderer": renderer, "datasetService": datasets,
            "storage": storage("dataset repository and registrations (/datasets)"),
            "cache": storage("CUDA/OptiX/numba caches (/cache)"),
            "probes": _obj(_probe_timing(), "probe timing")}


def app() -> dict[str, Any]:
    io = storage("")["properties"]
    a = _obj({
        "kind": _s("job (run to completion) or stream (a Deployment that keeps running)", enum=["job", "stream"]),
        "name": _s("installed app name or packaged app folder", minLength=1),
        "command": _list("full command instead of `clara-stream run` (a package's app.json command)",
                         {"type": "string"}),
        "config": {"type": ["object", "string"], "description": "the app YAML (a mapping, or its text kept verbatim); "
                   "a ConfigMap mounted at /var/holoscan/app.yaml"},
        "set": _list("--set section.key=value overrides", {"type": "string", "pattern": "^[A-Za-z_][^=]*=.*$"}),
        "input": _obj({"enabled": _b("mount an input and pass --input"), **io}, "input (/var/holoscan/input)"),
        "output": _obj(io, "output (/var/holoscan/output)"),
        "extraEnv": _list("more container env vars"),
    }, "the app run", ["kind", "name"])
    job = _obj({"backoffLimit": _i("retries", 0), "activeDeadlineSeconds": _i("deadline (s)", 1),
                "ttlSecondsAfterFinished": _i("delete the finished Job after (s)", 0)}, "Job settings (kind: job)")
    probes = _obj({"liveness": {"type": "object", "description": "a Kubernetes Probe; {} = none"},
                   "readiness": {"type": "object", "description": "a Kubernetes Probe; {} = none"}}, "probes")
    return {**common(), "images": images("app", "app runner"), "app": a, "job": job, "probes": probes}


def umbrella() -> dict[str, Any]:
    part = {"type": "object", "properties": {"enabled": _b("install this part")}, "required": ["enabled"]}
    return {"global": {"type": "object", "description": "Helm globals (unused)"},
            **{c: {**part, "description": f"values of the {c} chart"} for c in CHARTS[:3]}}


def schema(chart: str) -> dict[str, Any]:
    """The JSON schema of ``chart``'s values (draft 2020-12, as Helm 4 checks it)."""
    props = {"clara-dicom-adapter": dicom_adapter, "clara-renderserver": render_server, "clara-app": app,
             "clara-stream": umbrella}[chart]()
    optional = ("global", "clara-common", "enabled", "nameOverride", "fullnameOverride")
    required = [k for k in props if k not in optional]
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"{chart} values",
           "type": "object", "properties": props, "required": required, "additionalProperties": False}
    return {**out, **CELERY_RULES} if chart == "clara-dicom-adapter" else out


def _rows(props: dict[str, Any], defaults: Any, prefix: str = "") -> list[tuple[str, str, str, str]]:
    rows = []
    for key, spec in props.items():
        if key in ("global", "clara-common"):
            continue
        path, default = f"{prefix}{key}", (defaults or {}).get(key) if isinstance(defaults, dict) else None
        if spec.get("type") == "object" and spec.get("properties"):
            rows += _rows(spec["properties"], default, f"{path}.")
            continue
        kind = spec.get("type", "object")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in spec:
            kind += " (" + " / ".join(spec["enum"]) + ")"
        shown = "—" if default is None else f"`{json.dumps(default)}`"
        rows.append((path, kind, shown, spec.get("description", "")))
    return rows


def values_table(chart: str) -> str:
    """The README table of ``chart``: every leaf key, its type, default (from values.yaml) and meaning."""
    defaults = yaml.safe_load((HELM / chart / "values.yaml").read_text())
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for path, kind, default, desc in _rows(schema(chart)["properties"], defaults):
        lines.append(f"| `{path}` | {kind} | {default} | {desc.replace('|', '/')} |")
    return "\n".join(lines)


def readme_with_tables(text: str) -> str:
    """``text`` with every ``<!-- values:CHART -->`` … ``<!-- /values -->`` block regenerated."""
    for chart in CHARTS:
        start, end = f"<!-- values:{chart} -->", "<!-- /values -->"
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"helm/README.md: expected a {start} marker; got none")
        _, _, tail = rest.partition(end)
        text = f"{head}{start}\n{values_table(chart)}\n{end}{tail}"
    return text


def generated() -> dict[Path, str]:
    """Every generated file and its expected content."""
    out = {HELM / c / "values.schema.json": json.dumps(schema(c), indent=2) + "\n" for c in CHARTS}
    readme = HELM / "README.md"
    out[readme] = readme_with_tables(readme.read_text())
    return out


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = [p for p, text in generated().items() if not p.is_file() or p.read_text() != text]
    if check:
        for p in stale:
            print(f"helm/schemas.py: expected {p} to match the generated text; got a difference", file=sys.stderr)
        return 1 if stale else 0
    for p, text in generated().items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
