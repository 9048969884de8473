"""Shared fixtures: paths to real data, free ports, contract checks on for every test."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every emitted value is checked against its port's contract while tests run.
os.environ.setdefault("CLARA_STREAM_CHECK_CONTRACTS", "1")


def _shared_data() -> Path:
    env = os.environ.get("CLARA_STREAM_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (real public test data; read in place, never copied)."""
    path = _shared_data()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set CLARA_STREAM_SHARED_DATA)")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    return _free_port()


def gpu_available() -> bool:
    from clara_stream.arrays import gpu_available as _gpu

    return _gpu()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA device (cupy); none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
