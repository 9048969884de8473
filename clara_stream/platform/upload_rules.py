"""The rule an uploaded pipeline file must keep, checked at upload and again at launch.

- operator ``type`` only a registered operator class (:mod:`clara_stream.pipeline.registry`; no
  import paths);
- services only ``type: triton``; ``type: command`` (an arbitrary program) is refused unless the
  service runs with ``--allow-pipeline-commands`` (``allow_pipeline_commands``, off by default);
- every filesystem path confined to the roots (the store, the job folders, gRPC payloads,
  ``--input-root``, ``--app-root``), symlinks resolved: the triton ``model_repository`` and
  ``models`` files (relative to the file's folder, as the service resolves them), and every string
  of the ``app:`` section and the operators' ``args`` (nested too, after ``--set`` overrides and
  ``${…}`` references are filled) whose key is path-ish (:func:`_pathish`, or annotated ``Path``)
  or that could leave the job's folder (:func:`_may_escape`); relative ones resolve against the
  job's folder, where an uploaded pipeline runs;
- every network address (a ``scheme://HOST`` anywhere in a string, or a ``host[:port]`` whose key
  is address-ish, :func:`_addressish`) names a loopback host (``localhost``, 127.0.0.0/8, ``::1``)
  or one of the site's ``upload_allowed_hosts``: patient frames must not leave for a host the
  site did not name; never a wildcard bind (``0.0.0.0``, ``::``), never a listener (``listen=1``,
  ``rtsp_flags=listen``: a port any caller may feed or read, with no token), never an FFmpeg
  protocol prefix (``async:``, ``concat:``…) that would hide an address or a path from the rule;
- ``app.fragments`` off and ``app.threads`` bounded.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from clara_stream.loopback import is_loopback
from clara_stream.platform.status import PipelineFileError

UPLOAD_DIR = "pipeline-files"
FIELD = "pipelineFile"
SAFE_SERVICES = ("triton",)
MAX_THREADS = 64
#: a key is path-ish when it is one of _PATH_KEYS or one of its ``_`` words is one of these (``model_path``)
_PATH_WORDS = frozenset({"path", "paths", "file", "files", "filename", "dir", "dirs", "directory", "folder",
                         "repository", "onnx", "weights"})
_PATH_KEYS = frozenset({"input", "output", "inputs", "outputs", "model", "labels"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: every ``scheme://authority`` in a string (nested ones too: ``async:tcp://…``)
_NET = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#\s]*)")
#: a key is address-ish when one of its ``_`` words is one of these (``live_url``, ``render_address``)
_ADDRESS_WORDS = frozenset({"url", "urls", "uri", "uris", "address", "addresses", "host", "hosts", "endpoint",
                            "endpoints", "bind"})
#: FFmpeg protocols that wrap another address or path (``async:tcp://…``, ``concat:/a|/b``, ``subfile,,…:/x``),
#: and network ones without ``//`` (FFmpeg reads ``tcp:HOST:PORT`` as ``tcp://HOST:PORT``; the rule would not)
_PROTOCOL_PREFIX = re.compile(r"^\s*(?:(async|bluray|cache|concat|concatf|crypto|fd|ffrtmpcrypt|ffrtmphttp|gopher|"
                              r"gophers|hls|httpproxy|ipfs|ipns|md5|pipe|prompeg|sctp|srtp|subfile|tee|tls|unix|zmq)"
                              r"[:,]|(ftp|https?|icecast|mmsh|mmst|rtmp[est]?|rtmpt[es]|rtp|rtsps?|srt|tcp|udp|udplite|"
                              r"wss?):(?!//))", re.I)
#: ``clara_stream.pipeline.spec.REF``, not imported: that package loads the runtime (and holoscan) into the service
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
    allowed_hosts : hosts beside loopback that addresses may name (``upload_allowed_hosts``; :func:`normal_host`).
    """

    roots: tuple[Path, ...]
    uploads: Path
    jobs: Path
    allow_commands: bool = False
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, service: Any) -> UploadRules:
        return cls.where(service.settings, service.input_roots, Path(service.settings.data_dir),
                         Path(service.queue.jobs_dir))

    @classmethod
    def where(cls, settings: Any, input_roots: Iterable[Path], data_dir: Path, jobs: Path) -> UploadRules:
        """The rules of a service whose (shared) data folder is ``data_dir``."""
        roots = tuple(Path(r).resolve() for r in (*input_roots, *settings.app_roots))
        hosts = frozenset(normal_host(h) for h in getattr(settings, "upload_allowed_hosts", None) or () if h.strip())
        return cls(roots, data_dir / UPLOAD_DIR, jobs, bool(settings.allow_pipeline_commands), hosts)


def is_upload(app: str, uploads: Path) -> bool:
    """True when ``app`` is a file kept by :func:`store_upload`."""
    if "/" not in app:
        return False
    p = Path(app).resolve()
    return p.parent == uploads.resolve() and re.fullmatch(r"[0-9a-f]{64}\.yaml", p.name) is not None


def named(file: Path, text: str) -> str:
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
    if text.lower().startswith("file:"):
        return True
    if _URL.match(text):
        return False
    return text.startswith(("/", "~")) or ".." in Path(text).parts


def _addressish(key: str) -> bool:
    return any(word in _ADDRESS_WORDS for word in key.lower().split("_"))


def _listens(key: str, value: Any) -> bool:
    """An FFmpeg option (or URL query parameter) that makes the address a listener."""
    if value is None or value is False:
        return False
    k, v = key.lower(), str(value).strip().lower()
    return ((k in ("listen", "rtmp_listen") and v not in ("0", "false", "no", "off"))
            or (k == "rtsp_flags" and "listen" in v) or (k == "mode" and v in ("listener", "rendezvous")))


def _host(authority: str) -> str | None:
    """The host of ``[user@]host[:port]`` (brackets off, lower case); None when there is none."""
    try:
        return ipaddress.ip_address(authority.strip().strip("[]")).compressed  # a bare address (``::1``), no port
    except ValueError:
        pass
    try:
        name = urlsplit(f"//{authority.strip()}").hostname
    except ValueError:
        return None
    return normal_host(name) if name else None


def normal_host(host: str) -> str:
    """``host`` as the rule compares it: lower case, no brackets, an IP address in its compressed form."""
    name = host.strip().strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class _Checker:
    """One pass over a parsed file; ``errors`` collects every breach with its ``file:line``."""

    def __init__(self, spec: Any, rules: UploadRules, sections: dict[str, dict[str, Any]],
                 input_dir: str | None, output_dir: str | None) -> None:
        self.spec, self.rules, self.sections, self.errors = spec, rules, sections, []
        self.job = Path(output_dir).parent if output_dir else rules.jobs / "_job_"
        self.io = {"input": input_dir or str(self.job / "input"), "output": output_dir or str(self.job / "output")}

    def _expand(self, value: str) -> str | None:
        """``value`` with references filled; None when it is a service connection (checked there). A connection
        inside a longer string reads as the services' loopback host, so the rest of the string is still checked."""
        out, pos = [], 0
        for m in _REF.finditer(value):
            head, _, rest = m.group(1).partition(".")
            if head == "services" and m.group(0) == value.strip():
                return None
            if head == "services":
                if ".." in re.split(r"[/\\]", value[m.end():]):  # a repository folder's parent: outside the rule
                    raise PipelineFileError(f"{FIELD}: expected no '..' after ${{{m.group(1)}}}; got {value!r}")
                filled: Any = "127.0.0.1"  # clara_stream.pipeline.services.HOST (not imported: see _REF)
            elif head == "here":
                filled = str(self.spec.here)
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
        text = re.sub(r"^file:(//)?", "", text, flags=re.I)
        p = Path(text)
        resolved = (p if p.is_absolute() else base / p).resolve()
        if text.startswith("~") or not any(resolved.is_relative_to(r) for r in self.rules.roots):
            self.errors.append(f"{where}: pipeline: {what}: expected a path under the configured roots "
                               f"{[str(r) for r in self.rules.roots]}; got {value!r} (resolves to {resolved})")

    def address(self, where: str, what: str, value: str, text: str) -> None:
        """Refuse a network address in ``text`` (``value`` with references filled) that is not loopback or an
        allowed host, a wildcard bind, a listener, or hidden behind an FFmpeg protocol prefix."""
        def refuse(rule: str, found: str) -> None:
            self.errors.append(f"{where}: pipeline: {what}: expected {rule}; got {value!r}{found}")

        if m := _PROTOCOL_PREFIX.match(text):
            prefix = m.group(1) or m.group(2)
            return refuse("a path or a scheme://HOST address", f" (the FFmpeg protocol prefix {prefix!r} hides an "
                                                               "address or path from this rule)")
        found = [(m.group(1).lower(), m.group(2)) for m in _NET.finditer(text)] or [("", text.split("/", 1)[0])]
        allowed = sorted(self.rules.allowed_hosts)
        for scheme, authority in found:
            if scheme == "file":
                continue  # a path: the roots rule
            host = _host(authority)
            if host is None:
                refuse("an address naming its host (scheme://HOST[:PORT])", f" (no host in {authority!r})")
            elif _wildcard(host):
                refuse("a host, not a wildcard bind (0.0.0.0 or :: listens on every interface)", f" (host {host!r})")
            elif not (is_loopback(host) or normal_host(host) in self.rules.allowed_hosts):
                refuse(f"a loopback host (localhost, 127.0.0.0/8, ::1) or one of upload_allowed_hosts {allowed}",
                       f" (host {host!r})")
        for m in _NET.finditer(text):
            for k, v in parse_qsl(urlsplit(text[m.start():]).query, keep_blank_values=True):
                if _listens(k, v or "1"):
                    refuse("no listener in an uploaded pipeline (listen=1, rtsp_flags=listen: a port any caller "
                           "may feed or read, no token)", f" ({k}={v})")

    def walk(self, where: str, what: str, key: str, value: Any, pathish: bool) -> None:
        """Every value under ``value`` (nested mappings and lists too): a listener option is refused; a string
        holding an address (or under an address-ish key) gets :meth:`address`; else it is checked as a path when
        its key is path-ish or it could escape; relative paths resolve against the job's folder (the app's)."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.walk(where, f"{what}.{k}", str(k), v, _pathish(str(k)))
        elif isinstance(value, list):
            for v in value:
                self.walk(where, what, key, v, pathish)
        elif _listens(key, value):
            self.errors.append(f"{where}: pipeline: {what}: expected no listener in an uploaded pipeline (a port "
                               f"any caller may feed or read, no token); got {key}: {value!r}")
        elif isinstance(value, str) and value:
            expanded = self._expand(value)
            if expanded is None:
                return
            network = any(m.group(1).lower() != "file" for m in _NET.finditer(expanded))
            prefixed = _PROTOCOL_PREFIX.match(expanded)
            if network or prefixed or (_addressish(key) and "://" not in expanded and not _may_escape(expanded)):
                self.address(where, what, value, expanded)
            url = _URL.match(expanded.strip()) and not expanded.strip().lower().startswith("file:")
            if not (url or prefixed) and (pathish or _may_escape(expanded)):  # /out/udp://127.0.0.1:1 is a path too
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
            self.walk(y.where("app", key), f"app.{key}", key, value, _pathish(key))
        for name, op in self.spec.operators.items():
            if op.cls is None:  # parse_pipeline refused it already; never imported by path
                self.errors.append(f"{op.where}: pipeline: operator {name!r}: expected a registered type; "
                                   f"got {op.type!r}")
                continue
            typed = _path_params(op.cls)
            for key, value in self.sections[name].items():
                self.walk(y.where("operators", name, "args", key), f"operator {name!r} argument {key}", key, value,
                          key in typed or _pathish(key))
        if self.spec.file.parent == self.rules.uploads:
            return self.errors
        return [named(self.spec.file, e) for e in self.errors]


def rule_errors(spec: Any, rules: UploadRules, overrides: Iterable[str] = (), *, input_dir: str | None = None,
                output_dir: str | None = None) -> list[str]:
    """Every way ``spec`` breaks the upload rule (empty: it may be stored / launched)."""
    return _Checker(spec, rules, _overridden(spec, overrides), input_dir, output_dir).check()
