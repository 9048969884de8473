"""Fixtures of the volume tests: a phantom CT study written once per session, pydicom's test series."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ct_sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default phantom CT study (48 x 128 x 128): {"dicom", "labels", "label_names"}."""
    from clara_stream.samples.ct import write_sample

    return write_sample(tmp_path_factory.mktemp("ct_sample"), seed=0)


@pytest.fixture(scope="session")
def pydicom_dicomdirtests() -> Path:
    """pydicom's bundled dicomdirtests folder (CT2, CT5N, MR700, DICOMDIRs, README files)."""
    import pydicom.data

    return Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"


@pytest.fixture(scope="session")
def dciodvfy(peer) -> Callable[[Path], list[str]]:
    """``dciodvfy(path)`` → its Error/Abort lines (Debian dicom3tools); skips on a developer box when the
    tool is missing, fails under CI."""
    exe = peer("/usr/bin/dciodvfy", ["-version"], "dicom3tools")

    def errors(path: Path) -> list[str]:
        out = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=120)
        lines = (out.stdout + out.stderr).splitlines()
        assert lines, f"dciodvfy printed nothing for {path}"  # it names the IOD first ("Segmentation")
        return [line for line in lines if line.startswith(("Error", "Abort"))]

    return errors
