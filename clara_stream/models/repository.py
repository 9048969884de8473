"""A local, versioned model store laid out as a Triton model repository.

Layout::

    <root>/catalog.json                 every model, version, checksum, tensors, description
    <root>/<name>/config.pbtxt          Triton config (generated, or the one given at add time)
    <root>/<name>/<version>/model.onnx  (model.pt, model.plan, model.py per format)

``tritonserver --model-repository=<root>`` serves it as is (the catalog is ignored by Triton).
Writes take an exclusive ``flock`` on ``<root>/.lock`` and replace the catalog atomically, so
concurrent CLI calls and a running service never see half a catalog.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clara_stream.models.triton import FORMATS, config_pbtxt, onnx_io

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
URI_PREFIX = "models://"


def default_root() -> Path:
    """``$CLARA_STREAM_MODELS``, else ``$XDG_DATA_HOME/clara-stream/models`` (~/.local/share/...)."""
    env = os.environ.get("CLARA_STREAM_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clara-stream" / "models"


@dataclass
class ModelVersion:
    """One stored version."""

    version: int
    file: str
    sha256: str
    size: int
    added_at: float
    source: str
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)


@dataclass
class ModelEntry:
    """A model and its versions (newest last)."""

    name: str
    format: str
    description: str
    versions: list[ModelVersion]

    @property
    def latest(self) -> ModelVersion:
        return self.versions[-1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelRepository:
    """Add, list, show, remove and resolve models under ``root``.

    Parameters
    ----------
    root : repository folder (created on first write); :func:`default_root` when None.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    # -- catalog ---------------------------------------------------------------------------
    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.json"

    def _read(self) -> dict:
        try:
            return json.loads(self.catalog_path.read_text())
        except FileNotFoundError:
            return {"models": {}}

    def _write(self, catalog: dict) -> None:
        tmp = self.catalog_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(catalog, indent=2, sort_keys=True))
        os.replace(tmp, self.catalog_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            catalog = self._read()
            yield catalog
            self._write(catalog)

    @staticmethod
    def _entry(name: str, raw: dict) -> ModelEntry:
        versions = sorted((ModelVersion(**v) for v in raw["versions"].values()), key=lambda v: v.version)
        return ModelEntry(name=name, format=raw["format"], description=raw.get("description", ""), versions=versions)

    # -- operations ------------------------------------------------------------------------
    def add(
        self,
        name: str,
        source: Path,
        *,
        version: int | None = None,
        description: str | None = None,
        config: Path | None = None,
    ) -> ModelVersion:
        """Copy ``source`` in as a new version (next integer unless given); returns it.

        Raises
        ------
        ValueError
            Bad name, unsupported suffix, a format different from the model's earlier versions,
            version < 1 or already present, unreadable ONNX.
        FileNotFoundError
            ``source`` or ``config`` does not exist.
        """
        source = Path(source)
        if not _NAME_RE.match(name):
            raise ValueError(f"models add: expected a name of A-Z a-z 0-9 _ . - (Triton rules); got {name!r}")
        if not source.is_file():
            raise FileNotFoundError(f"models add: expected a model file; got {str(source)!r} (missing)")
        suffix = source.suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(f"models add: expected a file ending in {sorted(FORMATS)}; got {source.name!r}")
        if config is not None and not Path(config).is_file():
            raise FileNotFoundError(f"models add: expected a config.pbtxt file; got {str(config)!r} (missing)")
        inputs, outputs = onnx_io(source) if suffix == ".onnx" else ([], [])
        with self._locked() as catalog:
            raw = catalog["models"].setdefault(name, {"format": suffix, "description": "", "versions": {}})
            if raw["format"] != suffix:
                raise ValueError(
                    f"models add {name}: expected a {raw['format']} file like earlier versions; got {source.name!r}"
                )
            existing = [int(v) for v in raw["versions"]]
            version = version if version is not None else max(existing, default=0) + 1
            if version < 1 or version in existing:
                raise ValueError(
                    f"models add {name}: expected a new version >= 1; got {version} (present: {sorted(existing)})"
                )
            file_name = FORMATS[suffix][0]
            vdir = self.root / name / str(version)
            vdir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, vdir / file_name)
            entry = ModelVersion(
                version=version,
                file=f"{name}/{version}/{file_name}",
                sha256=_sha256(vdir / file_name),
                size=(vdir / file_name).stat().st_size,
                added_at=time.time(),
                source=str(source.resolve()),
                inputs=inputs,
                outputs=outputs,
            )
            raw["versions"][str(version)] = asdict(entry)
            if description is not None:
                raw["description"] = description
            cfg = Path(config).read_text() if config is not None else config_pbtxt(name, suffix, inputs, outputs)
            (self.root / name / "config.pbtxt").write_text(cfg)
        return entry

    def list(self) -> list[ModelEntry]:
        return [self._entry(n, raw) for n, raw in sorted(self._read()["models"].items())]

    def show(self, name: str) -> ModelEntry:
        raw = self._read()["models"].get(name)
        if raw is None:
            known = sorted(self._read()["models"])
            raise LookupError(f"models: expected a model in {known}; got {name!r} [{self.root}]")
        return self._entry(name, raw)

    def remove(self, name: str, version: int | None = None) -> list[int]:
        """Remove one version, or the whole model when ``version`` is None; returns versions removed."""
        with self._locked() as catalog:
            raw = catalog["models"].get(name)
            if raw is None:
                raise LookupError(f"models remove: expected a model in {sorted(catalog['models'])}; got {name!r}")
            if version is None:
                removed = sorted(int(v) for v in raw["versions"])
                del catalog["models"][name]
                shutil.rmtree(self.root / name, ignore_errors=True)
                return removed
            if str(version) not in raw["versions"]:
                raise LookupError(
                    f"models remove {name}: expected a version in "
                    f"{sorted(int(v) for v in raw['versions'])}; got {version}"
                )
            del raw["versions"][str(version)]
            shutil.rmtree(self.root / name / str(version), ignore_errors=True)
            if not raw["versions"]:
                del catalog["models"][name]
                shutil.rmtree(self.root / name, ignore_errors=True)
            return [version]

    def resolve(self, name: str, version: int | str | None = None, *, verify: bool = False) -> Path:
        """Path of a model file: ``version`` None or "latest" gives the newest.

        ``verify`` re-hashes the file and raises ValueError if it changed since it was added.
        """
        entry = self.show(name)
        if version in (None, "latest"):
            v = entry.latest
        else:
            wanted = int(version)
            matches = [x for x in entry.versions if x.version == wanted]
            if not matches:
                raise LookupError(
                    f"models: expected a version of {name} in {[x.version for x in entry.versions]}; got {version}"
                )
            v = matches[0]
        path = self.root / v.file
        if verify and _sha256(path) != v.sha256:
            raise ValueError(f"models: expected sha256 {v.sha256[:12]}… for {name} v{v.version}; file changed [{path}]")
        return path

    def resolve_uri(self, uri: str) -> Path:
        """``models://name`` or ``models://name/version`` to a file path; other strings are paths."""
        if not uri.startswith(URI_PREFIX):
            return Path(uri)
        name, _, version = uri[len(URI_PREFIX) :].partition("/")
        return self.resolve(name, version or None)


def resolve_model(ref: str | Path, *, base: Path | None = None, root: Path | None = None) -> Path:
    """Where an app's model reference points: the one call apps and backends need.

    ``models://name`` (newest) or ``models://name/version`` resolves in the repository at ``root``
    (default :func:`default_root`); anything else is a path, relative to ``base`` (the app folder)
    when not absolute.

    Raises
    ------
    LookupError
        Unknown model or version.
    FileNotFoundError
        A plain path that does not exist.
    """
    text = str(ref)
    if text.startswith(URI_PREFIX):
        return ModelRepository(root).resolve_uri(text)
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists():
        raise FileNotFoundError(f"models: expected a model file or folder; got {str(path)!r} (missing)")
    return path
