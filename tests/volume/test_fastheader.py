"""The fast header path agrees with pydicom's reader element by element on every real file it accepts."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pydicom.data
import pytest
from clara_stream.operators.dicom.fastheader import fast_header
from pydicom.errors import InvalidDicomError


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".mp4", ".svs", ".gz", ".md"))


def test_fast_header_matches_pydicom(shared_data: Path, ct_sample: dict[str, Path]) -> None:
    roots = [shared_data, Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent, ct_sample["dicom"]]
    accepted = checked = 0
    for path in (p for r in roots for p in _files(r)):
        try:
            ref = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
            continue
        checked += 1
        try:
            fast = fast_header(path)
        except Exception as exc:  # the caller falls back on any failure; here we want to know
            pytest.fail(f"fast_header raised {exc!r} on {path}")
        if fast is None:
            continue
        accepted += 1
        ds, ts, _, _, _ = fast
        assert ts == str(ref.file_meta.TransferSyntaxUID), path
        assert set(ds.keys()) == set(ref.keys()), path
        for elem in ref:
            assert ds[elem.tag].value == elem.value, (path, elem.keyword)
    assert checked > 300 and accepted > 250, (checked, accepted)
