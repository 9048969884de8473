"""Security of the render service: every file a dataset names stays under a root, bad numbers are
refused naming the field, and work per request is bounded. Each test tries the attack."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from clara_stream.render.datasets import DatasetRegistry, PathNotAllowed
from pydicom.data import get_testdata_file


def _mhd(folder: Path, data_file: str, shape_zyx=(3, 4, 5)) -> Path:
    """A hand-written MetaImage header naming ``data_file`` (no library writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = shape_zyx
    header = folder / "image.mhd"
    header.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = {x} {y} {z}\nElementSpacing = 0.7 0.9 2.5\n"
        f"ElementType = MET_SHORT\nElementByteOrderMSB = False\nElementDataFile = {data_file}\n"
    )
    return header


@pytest.fixture()
def roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = np.arange(60, dtype=np.int16).reshape(3, 4, 5) * 7
    (outside / "secret.raw").write_bytes(secret.tobytes())
    reg = DatasetRegistry([root], tmp_path / "state")
    yield reg, root, outside, secret
    reg.close()


@pytest.mark.parametrize("how", ["absolute", "dotdot", "list", "symlink"])
def test_mhd_pixel_file_outside_the_root_is_refused(roots, how):
    """Fails if only the header path is confined (the bytes outside the root would render)."""
    reg, root, outside, _ = roots
    folder = root / "ds"
    if how == "absolute":
        _mhd(folder, str(outside / "secret.raw"))
    elif how == "dotdot":
        _mhd(folder, "../../outside/secret.raw")
    elif how == "list":
        _mhd(folder, "LIST 2D").open("a").write("ok.raw\n../../outside/secret.raw\n")
    else:
        _mhd(folder, "pixels.raw")
        os.symlink(outside / "secret.raw", folder / "pixels.raw")
    with pytest.raises(PathNotAllowed, match="pixel data file"):
        reg.register(folder / "image.mhd")
    with pytest.raises(PathNotAllowed, match="pixel data file"):
        reg.register(folder)  # as a folder of volume files (seed layout without config.meta)


def test_nrrd_detached_data_outside_the_root_is_refused(roots):
    reg, root, outside, _ = roots
    (root / "v.nrrd").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 5 4 3\nencoding: raw\nendian: little\n"
        f"data file: {outside / 'secret.raw'}\n\n"
    )
    with pytest.raises(PathNotAllowed, match="pixel data file"):
        reg.register(root / "v.nrrd")


def test_header_swapped_after_registration_is_refused_at_load(roots):
    """Fails if confinement runs only at registration (the file can change before the first view)."""
    reg, root, outside, secret = roots
    folder = root / "ds"
    _mhd(folder, "pixels.raw")
    inside = secret[::-1].copy()
    (folder / "pixels.raw").write_bytes(inside.tobytes())
    rec = reg.register(folder / "image.mhd")
    np.testing.assert_array_equal(reg.volume(rec.id).data, inside)  # the honest dataset loads
    reg._volumes.clear()
    _mhd(folder, str(outside / "secret.raw"))
    with pytest.raises(PathNotAllowed, match="pixel data file"):
        reg.volume(rec.id)


def test_dicom_folder_of_symlinks_to_outside_files_is_refused(roots):
    reg, root, outside, _ = roots
    src = Path(get_testdata_file("CT_small.dcm"))
    shutil.copy(src, outside / "a.dcm")
    (root / "series").mkdir()
    os.symlink(outside / "a.dcm", root / "series" / "a.dcm")
    with pytest.raises(PathNotAllowed, match="DICOM file"):
        reg.register(root / "series")
    os.unlink(root / "series" / "a.dcm")
    shutil.copy(src, root / "series" / "a.dcm")  # the same file, really inside: accepted
    (root / "series" / "sub").mkdir()
    os.symlink(outside / "a.dcm", root / "series" / "sub" / "b.dcm")  # hidden one folder down
    with pytest.raises(PathNotAllowed, match="DICOM file"):
        reg.register(root / "series")
