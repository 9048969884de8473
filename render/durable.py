"""Crash-safe file replacement for the render service's state (registrations, saved settings, seeds).

A reboot (Fleet Command restarts the pod after one) or a ``kill -9`` at any line must leave the old
file or the new one, never a torn one, and never lose a write that was already acknowledged.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: write a temporary file beside it, fsync it, rename it over
    ``path``, fsync the folder (so the rename itself survives a power loss). Returns once durable.

    Raises
    ------
    OSError
        If any step fails; the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths: list[Path]) -> None:
    """fsync files written by another library (SimpleITK's .mhd/.raw) before a commit marker names them."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
