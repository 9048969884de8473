"""Fixtures of the volume tests: a phantom CT study written once per session, pydicom's test series."""

from __future__ import annotations

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
