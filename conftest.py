"""Root fixtures shared by every test folder: real peers resolved by absolute path, identity checked.

Under CI (``CI=true`` or ``CLARA_STREAM_REQUIRE_PEERS=1``, both set by ``.ci/run``) a missing or
wrong peer fails the test instead of skipping it, so a green run always means the peer ran.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def peers_required() -> bool:
    """True under CI: a missing real peer (dcmtk, Orthanc, tritonserver, Chromium, dciodvfy) fails."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("CLARA_STREAM_REQUIRE_PEERS") == "1"


def missing_peer(reason: str) -> None:
    """Skip on a developer box, fail under CI; never returns."""
    if peers_required():
        pytest.fail(f"required peer missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def resolve_peer(path: str | os.PathLike[str], version_args: Sequence[str] = ("--version",),
                 expect: str | None = None) -> Path:
    """The peer at an absolute ``path`` (never PATH: the venv's pynetdicom scripts shadow dcmtk's).

    ``expect`` is a case-insensitive substring its version output must contain (its identity).
    """
    exe = Path(path)
    if not exe.is_absolute():
        raise ValueError(f"resolve_peer: expected an absolute path; got {path!r}")
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        missing_peer(f"{exe} is not installed")
    if expect is not None:
        proc = subprocess.run([str(exe), *version_args], capture_output=True, text=True, timeout=30)
        out = proc.stdout + proc.stderr
        if expect.lower() not in out.lower():
            missing_peer(f"{exe} is not {expect!r}: its {' '.join(version_args)} printed {out[:200]!r}")
    return exe


@pytest.fixture(scope="session")
def peer() -> Callable[..., Path]:
    """``peer('/usr/bin/storescu', ['--version'], 'dcmtk')`` → Path, or skip (fail under CI)."""
    return resolve_peer


@pytest.fixture(scope="session")
def require_peers() -> Callable[[str], None]:
    """``require_peers(reason)`` skips, or fails under CI, for a peer found missing some other way."""
    return missing_peer
