"""Fixtures for render tests: synthetic datasets in a temporary root, the real shared data, and a
render gRPC server on a free loopback port."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.synthetic import write_seed_dataset, write_slide

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CT_DIR = SHARED / "totalsegmentator_ct_dicom" / "tests" / "reference_files" / "example_ct_dicom"
CT_SEG = SHARED / "totalsegmentator_ct_dicom" / "tests" / "reference_files" / "example_seg_dicom.nii.gz"
SVS_DIR = SHARED / "wsi_svs_histolab" / "tests" / "fixtures" / "svs-images"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def render_root(tmp_path_factory) -> Path:
    """A dataset root with a seed-layout phantom (``seed/``) and a pyramidal slide (``slide.tif``)."""
    root = tmp_path_factory.mktemp("render_root")
    write_seed_dataset(root / "seed")
    write_slide(root / "slide.tif")
    return root


@dataclass(frozen=True)
class SharedData:
    root: Path
    ct_dir: Path
    ct_seg: Path
    svs_dir: Path


@pytest.fixture(scope="session")
def shared_render_data() -> SharedData:
    """The real CT (J2K DICOM + NIfTI labels) and SVS slides; skipped only when absent."""
    if not CT_DIR.is_dir() or not SVS_DIR.is_dir():
        pytest.skip(f"shared data absent: {SHARED}")
    return SharedData(SHARED, CT_DIR, CT_SEG, SVS_DIR)


@pytest.fixture()
def registry(render_root, tmp_path) -> DatasetRegistry:
    reg = DatasetRegistry([render_root], tmp_path / "state")
    yield reg
    reg.close()
