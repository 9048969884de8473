"""Secure-by-default rules of the platform: who may call REST, what may run, which files a job reads.

- REST listens on loopback unless told otherwise; beyond loopback a bearer token is required
  (given, or generated once into ``<data_dir>/api-token`` with mode 0600).
- A pipeline names an installed app (``clara_stream.apps.<name>``) or an app under a configured
  app root; never an arbitrary folder.
- A job's input is a folder under the instance store, the job folders or a configured input root.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr

from clara_stream.loopback import is_loopback  # noqa: F401  (the one rule, also imported from here)
from clara_stream.platform.status import InvalidRequestError

TOKEN_FILE = "api-token"
_APP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")




def ensure_token(data_dir: Path, http_host: str, given: SecretStr | None) -> tuple[SecretStr | None, bool]:
    """The token REST requires, and whether it was generated just now (print it once then).

    A given token always applies. Without one, loopback stays open; beyond loopback the token in
    ``<data_dir>/api-token`` is used, generated (0600, never world-readable) on first start.
    """
    if given is not None:
        return given, False
    if is_loopback(http_host):
        return None, False
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(f"{path}: expected mode 0600 (a token others can read is no secret); got {mode:04o}")
        return SecretStr(path.read_text().strip()), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return SecretStr(token), True


def installed_app(name: str) -> bool:
    """True if ``clara_stream.apps.<name>`` is installed (found by spec: nothing is imported)."""
    if not _APP_NAME_RE.match(name):
        return False
    try:
        return importlib.util.find_spec(f"clara_stream.apps.{name}") is not None
    except (ImportError, ValueError):
        return False


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(Path(r).resolve()) for r in roots)


def check_app(app: str, app_roots: Iterable[Path]) -> str:
    """``app`` if it is an installed app or a path under an app root (symlinks resolved).

    Raises
    ------
    InvalidRequestError
        Anything else: a pipeline must never run code from an arbitrary folder.
    """
    roots = list(app_roots)
    if installed_app(app):
        return app
    if "/" in app or app.startswith("."):
        resolved = Path(app).resolve()
        if roots and _under(resolved, roots) and resolved.exists():
            return app
    raise InvalidRequestError(
        f"app: expected an installed app name (clara_stream.apps.<name>) or an existing path under the "
        f"configured app roots {[str(r) for r in roots]}; got {app!r}"
    )


def check_input(path: str | Path, roots: Iterable[Path]) -> Path:
    """The resolved input folder if it lies under one of ``roots``.

    Raises
    ------
    InvalidRequestError
        Outside every root (``/etc``, ``../..``, a symlink out), or not an existing folder.
    """
    roots = list(roots)
    resolved = Path(path).resolve()
    if not _under(resolved, roots):
        raise InvalidRequestError(
            f"input: expected a folder under the store or the configured input roots "
            f"{[str(r) for r in roots]}; got {str(path)!r}"
        )
    if not resolved.is_dir():
        raise InvalidRequestError(f"input: expected an existing folder; got {str(path)!r}")
    return resolved
