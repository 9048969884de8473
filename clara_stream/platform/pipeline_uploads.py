"""Pipelines created from an uploaded pipeline file: checked, stored content-addressed, re-checked at launch.

An upload may run only what the platform itself knows how to start safely:

- operator ``type`` only a registered operator class (:mod:`clara_stream.pipeline.registry`; no
  import paths);
- services only ``type: triton``; ``type: command`` (an arbitrary program) is refused unless the
  service runs with ``--allow-pipeline-commands`` (``allow_pipeline_commands``, off by default);
- every filesystem path — the triton ``model_repository`` and ``models`` files, the ``app:``
  section's ``input``/``output`` and path-ish keys, and each operator argument that is path-ish
  (its name, its ``__init__`` annotation ``Path``, or a value that looks like a path) after
  ``--set`` overrides and ``${…}`` references are filled — resolved (symlinks followed; relative
  to the file's folder, as services resolve them) and confined to the roots: the store, the job
  folders, gRPC payloads, ``--input-root`` and ``--app-root``.

The file is bounded (:data:`MAX_BYTES`), checked by :func:`clara_stream.pipeline.parse_pipeline`
and the upload rule, then built and validated in a bounded subprocess by the same
``PipelineApp.validate`` as ``clara-stream validate`` (arguments, ports, contracts); only then is it
written to ``<data_dir>/pipeline-files/<sha256>.yaml`` (never replacing another file). The
scheduler checks it again at launch with the job's real input and output (:func:`check_launch`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.platform.status import InvalidRequestError, PipelineFileError

MAX_BYTES = 256 * 1024
UPLOAD_DIR = "pipeline-files"
FIELD = "pipelineFile"
VALIDATE_TIMEOUT_S = 60.0
#: at most this many validator processes at once, whatever the number of concurrent uploads
_VALIDATING = threading.BoundedSemaphore(2)
SAFE_SERVICES = ("triton",)
MAX_THREADS = 64
#: a key is path-ish when it is one of _PATH_KEYS or one of its ``_`` words is one of these (``model_path``)
_PATH_WORDS = frozenset({"path", "paths", "file", "files", "filename", "dir", "dirs", "directory", "folder",
                         "repository", "onnx", "weights"})
_PATH_KEYS = frozenset({"input", "output", "inputs", "outputs", "model", "labels"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_REF = re.compile(r"\$\{([A-Za-z_][\w.]*)(?:\|([^}]*))?\}")


@dataclass(frozen=True)
class UploadRules:
    """Where an upload may point and what it may start.

    Parameters
    ----------
    roots : folders every path of the file must resolve under.
    uploads : ``<data_dir>/pipeline-files``, where accepted files are kept.
    jobs : the job folders (``${app.input}`` / ``${app.output}`` before a job exists lie there).
    allow_commands : accept ``type: command`` services (``--allow-pipeline-commands``).
    """

    roots: tuple[Path, ...]
    uploads: Path
    jobs: Path
    allow_commands: bool = False

    @classmethod
    def of(cls, service: Any) -> UploadRules:
        return cls.where(service.settings, service.input_roots, Path(service.settings.data_dir),
                         Path(service.queue.jobs_dir))

    @classmethod
    def where(cls, settings: Any, input_roots: Iterable[Path], data_dir: Path, jobs: Path) -> UploadRules:
        """The rules of a service whose (shared) data folder is ``data_dir``."""
        roots = tuple(Path(r).resolve() for r in (*input_roots, *settings.app_roots))
        return cls(roots, data_dir / UPLOAD_DIR, jobs, bool(settings.allow_pipeline_commands))


def is_upload(app: str, uploads: Path) -> bool:
    """True when ``app`` is a file kept by :func:`store_upload`."""
    if "/" not in app:
        return False
    p = Path(app).resolve()
    return p.parent == uploads.resolve() and re.fullmatch(r"[0-9a-f]{64}\.yaml", p.name) is not None


def _text(content: bytes | str) -> bytes:
    data = content.encode() if isinstance(content, str) else bytes(content)
    if len(data) > MAX_BYTES:
        raise PipelineFileError(f"{FIELD}: expected at most {MAX_BYTES} bytes; got {len(data)}")
    if not data.strip():
        raise PipelineFileError(f"{FIELD}: expected a YAML pipeline file; got an empty body")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineFileError(f"{FIELD}: expected UTF-8 YAML text; got a byte 0x{data[exc.start]:02x} "
                                f"at offset {exc.start}") from None
    return data


def _parse(file: Path) -> Any:
    from clara_stream.pipeline import parse_pipeline

    try:
        return parse_pipeline(file)
    except GraphValidationError as exc:
        raise PipelineFileError(_named(file, "; ".join(exc.errors))) from None
    except ConfigError as exc:
        raise PipelineFileError(_named(file, f"{FIELD}: expected a YAML pipeline file; got {exc}")) from None


def _named(file: Path, text: str) -> str:
    """Messages name the request field, not the server's temporary path (``pipelineFile:12: …``)."""
    for f in (file, file.resolve()):
        text = text.replace(str(f), FIELD).replace(str(f.parent), "${here}")
    return text


def _overridden(spec: Any, overrides: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}``: the app section and each operator's args with ``--set`` applied."""
    import yaml

    sections = {"app": dict(spec.app), **{n: dict(o.args) for n, o in spec.operators.items()}}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in sections or not name:
            raise PipelineFileError(f"overrides: expected SECTION.KEY=VALUE with a section of the file "
                                    f"{sorted(sections)}; got {item!r}")
        try:
            sections[section][name.split(".")[0]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            sections[section][name.split(".")[0]] = raw
    return sections


def _path_params(cls: type | None) -> set[str]:
    """Arguments of an operator annotated with ``Path``."""
    try:
        params = inspect.signature(cls.__init__).parameters.values() if cls else ()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if "Path" in str(p.annotation)}


def _pathish(key: str) -> bool:
    return key in _PATH_KEYS or any(word in _PATH_WORDS for word in key.lower().split("_"))


def _may_escape(text: str) -> bool:
    """A string that could name a file outside the job's folder: absolute, ``~``, a ``..`` part, ``file:``."""
    if _URL.match(text):
        return text.lower().startswith("file:")
    return text.startswith(("/", "~")) or ".." in Path(text).parts


class _Checker:
    """One pass over a parsed file; ``errors`` collects every breach with its ``file:line``."""

    def __init__(self, spec: Any, rules: UploadRules, sections: dict[str, dict[str, Any]],
                 input_dir: str | None, output_dir: str | None) -> None:
        self.spec, self.rules, self.sections, self.errors = spec, rules, sections, []
        self.job = Path(output_dir).parent if output_dir else rules.jobs / "_job_"
        self.io = {"input": input_dir or str(self.job / "input"), "output": output_dir or str(self.job / "output")}

    def _expand(self, value: str) -> str | None:
        """``value`` with references filled; None when it names a service connection (checked there)."""
        out, pos = [], 0
        for m in _REF.finditer(value):
            head, _, rest = m.group(1).partition(".")
            if head == "services":
                return None
            if head == "here":
                filled: Any = str(self.spec.here)
            elif rest in self.io and self.sections["app"].get(rest) is None:
                filled = self.io[rest]
            else:
                filled = self.sections["app"].get(rest, m.group(2))
            if filled is None:
                raise PipelineFileError(f"{FIELD}: expected ${{{m.group(1)}}} to have a value the platform can "
                                        f"check; got none")
            out += [value[pos:m.start()], str(filled)]
            pos = m.end()
        return "".join([*out, value[pos:]])

    def path(self, where: str, what: str, value: str, base: Path) -> None:
        """Refuse ``value`` unless it resolves (symlinks followed; relative to ``base``) under a root."""
        text = self._expand(value)
        if text is None:
            return
        text = re.sub(r"^file://", "", text, flags=re.I)
        p = Path(text)
        resolved = (p if p.is_absolute() else base / p).resolve()
        if text.startswith("~") or not any(resolved.is_relative_to(r) for r in self.rules.roots):
            self.errors.append(f"{where}: pipeline: {what}: expected a path under the configured roots "
                               f"{[str(r) for r in self.rules.roots]}; got {value!r} (resolves to {resolved})")

    def walk(self, where: str, what: str, value: Any, pathish: bool) -> None:
        """Every string under ``value`` (nested mappings and lists too): checked when its key is path-ish or
        it could escape; relative values resolve against the job's folder (the app's working folder)."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.walk(where, f"{what}.{k}", v, _pathish(str(k)))
        elif isinstance(value, list):
            for v in value:
                self.walk(where, what, v, pathish)
        elif isinstance(value, str) and value:
            expanded = self._expand(value)
            if expanded is not None and (pathish or _may_escape(expanded)):
                self.path(where, what, value, self.job)

    def _service(self, name: str, svc: Any) -> None:
        y = self.spec.source
        if svc.type not in SAFE_SERVICES and not (svc.type == "command" and self.rules.allow_commands):
            self.errors.append(f"{svc.where}: pipeline: service {name!r}: expected a service type the platform "
                               f"starts safely {list(SAFE_SERVICES)} (a command needs the service started with "
                               f"--allow-pipeline-commands); got {svc.type!r}")
        if svc.type == "triton":  # the service resolves its files against the pipeline file's folder
            o = svc.options
            models = o.get("models") if isinstance(o.get("models"), dict) else {}
            for key, value in [("model_repository", o.get("model_repository")), *models.items()]:
                label = key if key == "model_repository" else f"models.{key}"
                if isinstance(value, str):
                    self.path(y.where("services", name, *label.split(".")), f"service {name!r} {label}", value,
                              self.spec.here)

    def check(self) -> list[str]:
        y = self.spec.source
        for name, svc in self.spec.services.items():
            self._service(name, svc)
        app = self.sections["app"]
        if app.get("fragments"):  # a distributed run opens UCX listeners across machines: deployed, not uploaded
            self.errors.append(f"{y.where('app', 'fragments')}: pipeline: app.fragments: expected false in an "
                               f"uploaded pipeline (one process, loopback services only); got {app['fragments']!r}")
        threads = app.get("threads", 1)
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
            self.errors.append(f"{y.where('app', 'threads')}: pipeline: app.threads: expected 1..{MAX_THREADS}; "
                               f"got {threads!r}")
        for key, value in app.items():
            self.walk(y.where("app", key), f"app.{key}", value, _pathish(key))
        for name, op in self.spec.operators.items():
            if op.cls is None:  # parse_pipeline refused it already; never imported by path
                self.errors.append(f"{op.where}: pipeline: operator {name!r}: expected a registered type; "
                                   f"got {op.type!r}")
                continue
            typed = _path_params(op.cls)
            for key, value in self.sections[name].items():
                self.walk(y.where("operators", name, "args", key), f"operator {name!r} argument {key}", value,
                          key in typed or _pathish(key))
        if self.spec.file.parent == self.rules.uploads:
            return self.errors
        return [_named(self.spec.file, e) for e in self.errors]


def rule_errors(spec: Any, rules: UploadRules, overrides: Iterable[str] = (), *, input_dir: str | None = None,
                output_dir: str | None = None) -> list[str]:
    """Every way ``spec`` breaks the upload rule (empty: it may be stored / launched)."""
    return _Checker(spec, rules, _overridden(spec, overrides), input_dir, output_dir).check()


def _validate_in_subprocess(file: Path, overrides: Iterable[str], rules: UploadRules) -> None:
    """``PipelineApp.validate`` (as ``clara-stream validate``) in a bounded child: operators' constructors run
    there, not in the service."""
    args = [sys.executable, "-m", __name__, str(file), str(rules.jobs / "_job_" / "input"),
            str(rules.jobs / "_job_" / "output"), *overrides]
    try:
        with _VALIDATING:
            done = subprocess.run(args, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PipelineFileError(f"{FIELD}: expected validation within {VALIDATE_TIMEOUT_S:g} s; got none") from None
    try:
        errors = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise PipelineFileError(f"{FIELD}: expected the validator to report; got exit {done.returncode}: "
                                + _named(file, done.stderr.strip()[-400:])) from None
    if errors:
        raise PipelineFileError(_named(file, f"{len(errors)} problem(s): " + "; ".join(errors)))


def store_upload(content: bytes | str, rules: UploadRules, overrides: Iterable[str] = ()) -> tuple[Path, str]:
    """Check an uploaded pipeline file and keep it; returns ``(stored file, the file's pipeline name)``.

    Raises
    ------
    PipelineFileError
        Too large, not UTF-8 YAML, invalid (``pipelineFile:LINE: pipeline: expected …``), or against the
        upload rule (a command service, a path outside the roots); nothing is stored then.
    """
    data = _text(content)
    overrides = list(overrides)
    digest = hashlib.sha256(data).hexdigest()
    rules.uploads.mkdir(parents=True, exist_ok=True)
    incoming = rules.uploads / ".incoming"
    incoming.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=incoming) as tmp:
        file = Path(tmp) / f"{digest}.yaml"
        with open(file, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        spec = _parse(file)
        errors = rule_errors(spec, rules, overrides)
        if errors:
            raise PipelineFileError(f"{len(errors)} problem(s): " + "; ".join(errors))
        _validate_in_subprocess(file, overrides, rules)
        final = rules.uploads / file.name
        try:
            os.link(file, final)  # never replaces: an existing name holds these very bytes (its sha256)
        except FileExistsError:
            pass
    return final, spec.name


def check_launch(app: str, overrides: Iterable[str], input_dir: str, output_dir: str, rules: UploadRules) -> None:
    """Refuse to start a job of an uploaded pipeline that breaks the rule now (real input and output).

    Raises
    ------
    InvalidRequestError
        The stored file is gone, changed or breaks the rule (e.g. a symlink under a root now points out).
    """
    file = Path(app)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"app: expected the stored pipeline file {app}; got {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != file.stem:
        raise InvalidRequestError(f"app: expected {app} to hold the bytes of its sha256 name; got other bytes")
    errors = rule_errors(_parse(file), rules, overrides, input_dir=input_dir, output_dir=output_dir)
    if errors:
        raise InvalidRequestError("app: expected an uploaded pipeline within the rules; got " + "; ".join(errors))


def create_pipeline(service: Any, item: Any) -> Any:
    """Register a :class:`~clara_stream.platform.schemas.PipelineUpload` (REST and gRPC call this one function)."""
    from pydantic import ValidationError

    from clara_stream.platform.schemas import PipelineConfig

    file, name = store_upload(item.pipeline_file, UploadRules.of(service), item.overrides)
    try:
        config = PipelineConfig(name=item.name or name, app=str(file), cpu_memory_mb=item.cpu_memory_mb,
                                gpu_memory_mb=item.gpu_memory_mb, max_retries=item.max_retries,
                                timeout_s=item.timeout_s, overrides=item.overrides)
    except ValidationError as exc:
        raise PipelineFileError(f"name: expected a pipeline name (set name, or pipeline: in the file); "
                                f"{exc.errors()[0]['msg']}") from None
    return service.config.put_pipeline(config)


def check_put(service: Any, item: Any) -> None:
    """A plain registration naming a stored upload gets the upload rule too (its overrides may differ)."""
    rules = UploadRules.of(service)
    if ("/" in item.app or item.app.startswith(".")) and not is_upload(item.app, rules.uploads) \
            and Path(item.app).resolve().is_relative_to(rules.uploads.resolve()):
        raise PipelineFileError(f"app: expected a stored pipeline file {rules.uploads}/<sha256>.yaml or an app; "
                                f"got {item.app!r}")
    if is_upload(item.app, rules.uploads):
        errors = rule_errors(_parse(Path(item.app)), rules, item.overrides)
        if errors:
            raise PipelineFileError(f"{len(errors)} problem(s): " + "; ".join(errors))


def check_job_app(row: Any, app_roots: Iterable[Path], rules: UploadRules) -> Path | None:
    """What a scheduler checks before it starts a job's app: an installed app / one under an app root, or an
    uploaded pipeline file still within the rule for this job's input and output.

    Returns the folder an uploaded pipeline runs in (the job's, so relative paths stay there); else None.
    """
    from clara_stream.platform.security import check_app

    if not is_upload(row["app"], rules.uploads):
        check_app(row["app"], app_roots)
        return None
    check_launch(row["app"], json.loads(row["overrides"] or "[]"), row["input_dir"], row["output_dir"], rules)
    return Path(row["output_dir"]).parent


def check_shared_job_app(row: Any, settings: Any, shared_roots: Iterable[Path]) -> Path | None:
    """:func:`check_job_app` for a Celery worker: an upload lies in ``<shared root>/pipeline-files`` (the
    service's data folder mounted at the same path); the worker's own ``allow_pipeline_commands`` applies."""
    roots = [Path(r) for r in shared_roots]
    for root in roots:
        rules = UploadRules.where(settings, roots, root, root / "jobs")
        if is_upload(row["app"], rules.uploads):
            return check_job_app(row, settings.app_roots, rules)
    return check_job_app(row, settings.app_roots, UploadRules.where(settings, roots, roots[0], roots[0] / "jobs"))


def main(argv: list[str] | None = None) -> int:
    """``python -m clara_stream.platform.pipeline_uploads FILE INPUT OUTPUT [KEY=VALUE…]``: JSON list of problems."""
    from clara_stream.pipeline import load_pipeline

    file, input_dir, output_dir, *overrides = sys.argv[1:] if argv is None else argv
    try:
        errors = load_pipeline(file, overrides=overrides, input=input_dir, output=output_dir).validate()
    except (ConfigError, GraphValidationError, TypeError, ValueError) as exc:
        errors = list(getattr(exc, "errors", None) or [str(exc)])
    print(json.dumps(errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
