"""Write an app as a HAP-compatible package folder, plus its Dockerfile and clara-app chart values.

Layout (the filesystem of the package image, laid over the clara-stream ``app`` image)::

    <out>/<app>-<version>/
      etc/holoscan/app.json, pkg.json      manifests (manifests.py)
      opt/holoscan/app/<app>/               the app folder (app.py, app.yaml, metadata.json, README.md)
      opt/holoscan/models/<app>/<model>/    each model folder the app's metadata.json names
      opt/holoscan/app/<app>/<model>        a relative link to it, so the app runs unchanged
      var/holoscan/app.yaml                 the config the command passes with --config
      Dockerfile, helm-values.yaml          the package image and the values that run it with clara-app

The app is located without importing it (the packager never imports holoscan).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clara_stream.packaging import manifests as m

SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class Package:
    """What :func:`write_package` wrote."""

    root: Path
    app_manifest: dict[str, Any]
    package_manifest: dict[str, Any]
    chart_values: dict[str, Any]


def locate_app(app: str | Path) -> Path:
    """The folder of an installed app (by name) or of an app path, found without importing it.

    Raises
    ------
    FileNotFoundError
        When no folder with an ``app.py`` matches.
    """
    path = Path(app)
    if path.is_dir() and (path / "app.py").is_file():
        return path.resolve()
    spec = importlib.util.find_spec("clara_stream.apps")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if str(app).isidentifier() and (Path(root) / str(app) / "app.py").is_file():
            return (Path(root) / str(app)).resolve()
    raise FileNotFoundError(f"package: expected an installed app name or an app folder with app.py; got {app!r}")


def read_metadata(folder: Path) -> dict[str, Any]:
    """``metadata.json``'s ``application`` object, with name and semantic version checked."""
    path = folder / "metadata.json"
    try:
        meta = json.loads(path.read_text())["application"]
        name, version = meta["name"], meta["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"package: expected {path} with application.name and .version; got {exc!r}") from None
    if name != folder.name:
        raise ValueError(f"package: expected application.name {folder.name!r} in {path}; got {name!r}")
    m.check_version(version, str(path))
    return meta


def model_dirs(folder: Path, meta: dict[str, Any]) -> list[str]:
    """Model folders relative to the apps folder: ``models`` entries, and the folders of ``model`` files."""
    found = set(meta.get("models", []))
    model = meta.get("model") or {}
    files = list(model.get("files", [])) + [model[k] for k in ("file", "labels") if isinstance(model.get(k), str)]
    found |= {f"{folder.name}/{Path(f).parent.as_posix()}" for f in files if Path(f).parent != Path(".")}
    for rel in found:
        if ".." in Path(rel).parts or not (folder.parent / rel).is_dir():
            raise ValueError(f"package: expected model folder {rel!r} under {folder.parent}; got none")
    return sorted(found)


def _command(name: str, has_input: bool) -> list[str]:
    argv = ["clara-stream", "run", f"{m.APP_ROOT}/{name}", "--config", m.CONFIG_PATH]
    if has_input:
        argv += ["--input", f"{m.WORK_DIR}/input"]
    return argv + ["--output", f"{m.WORK_DIR}/output"]


def dockerfile(command: list[str], base_image: str) -> str:
    """The package image: the clara-stream ``app`` image with the package laid over it."""
    return (
        "# Package image: docker build -t <registry>/<name>:<version>-<cpu|cuda> .\n"
        f"ARG BASE_IMAGE={base_image}\n"
        "FROM ${BASE_IMAGE}\n"
        "COPY etc/ /etc/\nCOPY opt/ /opt/\nCOPY var/ /var/\n"
        "USER 10001:10001\n"
        f"WORKDIR {m.WORK_DIR}\n"
        f"ENTRYPOINT {json.dumps(command[:1])}\n"
        f"CMD {json.dumps(command[1:])}\n"
    )


def chart_values(name: str, version: str, command: list[str], config: str, res: dict[str, Any],
                 has_input: bool) -> dict[str, Any]:
    """Values for the clara-app chart that run this package's image with its own command and config.

    The config goes as text: through Helm's values a mapping would lose integer keys (label values).
    """
    mem = res["memory"]
    values: dict[str, Any] = {
        "images": {"app": f"app-{name.replace('_', '-')}", "tag": version},
        "app": {"kind": "job", "name": f"{m.APP_ROOT}/{name}", "command": command, "config": config,
                "input": {"enabled": has_input}},
        "resources": {"requests": {"cpu": str(res["cpu"]), "memory": mem}, "limits": {"cpu": str(res["cpu"]),
                                                                                       "memory": mem}},
        "gpu": {"enabled": res["gpu"] > 0, "count": max(res["gpu"], 1)},
    }
    return values


def write_package(app: str | Path, out: str | Path, *, config: str | Path | None = None, gpu: int | None = None,
                  gpu_memory: str | None = None, platform_config: str = "dgpu",
                  base_image: str = "clara-stream/app:0.1.0-cpu") -> Package:
    """Write ``app`` as a package folder ``<out>/<app>-<version>``; never overwrites one.

    Parameters
    ----------
    app : installed app name or app folder.
    out : parent folder of the package.
    config : app YAML to ship instead of the app's own ``app.yaml``.
    gpu : GPUs the app needs (default: 1 when metadata says ``requirements.gpu``, else 0).
    gpu_memory : GPU memory it needs, e.g. ``4Gi`` (only with a GPU).
    platform_config : ``dgpu`` or ``igpu`` (IGX/AGX integrated GPU), written when a GPU is needed.
    base_image : the clara-stream app image the package Dockerfile builds on.

    Raises
    ------
    FileNotFoundError, ValueError, FileExistsError
        Unknown app, bad metadata or config, or an existing package folder.
    """
    folder = locate_app(app)
    meta = read_metadata(folder)
    name, version = meta["name"], meta["version"]
    if platform_config not in ("dgpu", "igpu"):
        raise ValueError(f"package: expected --platform-config dgpu or igpu; got {platform_config!r}")
    cfg_path = Path(config) if config else folder / "app.yaml"
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"package: expected a readable YAML config; got {exc}") from None
    if not isinstance(cfg, dict):
        kind = type(cfg).__name__
        raise ValueError(f"package: expected a YAML mapping (operator sections) in {cfg_path}; got {kind}")
    req = meta.get("requirements", {})
    gpus = (1 if req.get("gpu") else 0) if gpu is None else gpu
    res = m.resources(cpu=req.get("cpu_cores", 1), memory_mb=req.get("memory_mb", 1024), gpu=gpus,
                      gpu_memory=gpu_memory)
    models = model_dirs(folder, meta)
    root = Path(out) / f"{name}-{version}"
    if root.exists():
        raise FileExistsError(f"package: expected a new folder; got existing {root} (remove it or pick --out)")
    inputs = list(meta.get("inputs", []))
    argv = _command(name, bool(inputs))
    app_json = m.app_manifest(command=shlex.join(argv), app_dir=f"{m.APP_ROOT}/{name}", version=version,
                              inputs=inputs, outputs=list(meta.get("outputs", [])))
    pkg_json = m.package_manifest(version=version, models={r: f"{m.MODEL_ROOT}/{r}" for r in models},
                                  resources=res, platform_config=platform_config if gpus else None)
    own = {Path(r).relative_to(name).as_posix() for r in models if r.startswith(f"{name}/")}
    app_dst = root / "opt/holoscan/app" / name
    shutil.copytree(folder, app_dst, ignore=lambda d, names: set(SKIP(d, names)) | (
        {n for n in names if (Path(d) / n).relative_to(folder).as_posix() in own}))
    for rel in models:
        shutil.copytree(folder.parent / rel, root / "opt/holoscan/models" / rel, ignore=SKIP)
        link = root / "opt/holoscan/app" / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "opt/holoscan/models" / rel, link.parent), target_is_directory=True)
    (root / "var/holoscan").mkdir(parents=True)
    (root / "var/holoscan/app.yaml").write_text(cfg_path.read_text())
    (root / "etc/holoscan").mkdir(parents=True)
    (root / "etc/holoscan/app.json").write_text(json.dumps(app_json, indent=2) + "\n")
    (root / "etc/holoscan/pkg.json").write_text(json.dumps(pkg_json, indent=2) + "\n")
    (root / "Dockerfile").write_text(dockerfile(argv, base_image.replace("-cpu", "-cuda") if gpus else base_image))
    values = chart_values(name, version, argv, cfg_path.read_text(), res, bool(inputs))
    (root / "helm-values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return Package(root, app_json, pkg_json, values)
