"""Pipelines created from an uploaded pipeline file: checked, stored content-addressed, re-checked at launch.

The rule (registered operator types, safe services, paths confined to the roots) lives in
:mod:`clara_stream.platform.upload_rules`.

The file is bounded (:data:`MAX_BYTES`), checked by :func:`clara_stream.pipeline.parse_pipeline`
and the upload rule, then built and validated in a bounded subprocess by the same
``PipelineApp.validate`` as ``clara-stream validate`` (arguments, ports, contracts); only then is it
written to ``<data_dir>/pipeline-files/<sha256>.yaml`` (never replacing another file). The
scheduler checks it again at launch with the job's real input and output (:func:`check_launch`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.platform.status import InvalidRequestError, PipelineFileError
from clara_stream.platform.upload_rules import FIELD, UploadRules, is_upload, named, rule_errors

MAX_BYTES = 256 * 1024
VALIDATE_TIMEOUT_S = 60.0
#: at most this many validator processes at once, whatever the number of concurrent uploads
_VALIDATING = threading.BoundedSemaphore(2)


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
        raise PipelineFileError(named(file, "; ".join(exc.errors))) from None
    except ConfigError as exc:
        raise PipelineFileError(named(file, f"{FIELD}: expected a YAML pipeline file; got {exc}")) from None


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
                                + named(file, done.stderr.strip()[-400:])) from None
    if errors:
        raise PipelineFileError(named(file, f"{len(errors)} problem(s): " + "; ".join(errors)))


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
