"""DICOM operators in a tiny graph: loader → selector → volume → capture; errors surface from run()."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clara_stream.operators.dicom.contracts import DICOM_VOLUME
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.series_to_volume_op import SeriesToVolumeOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Application, Operator, Port

SHARED = Path(
    os.environ.get("CLARA_STREAM_SHARED_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data"
)


class CaptureOp(Operator):
    inputs = (Port(P.VOLUME, DICOM_VOLUME),)

    def __init__(self, fragment: Any, *args: Any, name: str = "capture", **kwargs: Any) -> None:
        self.items: list[tuple[Any, Any, Any]] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.items.append((self.receive(op_input, P.VOLUME), self.get_meta("geometry"), self.get_meta("dicom_source")))


class DicomChainApp(Application):
    def __init__(self, path: Path, out: Path, **volume: Any) -> None:
        super().__init__({"app": {"check_contracts": True}})
        self.path, self.out, self.volume = path, out, volume

    def compose(self) -> None:
        loader = DicomStudyLoaderOp(self, name="loader", path=self.path)
        selector = SeriesSelectorOp(self, name="selector", output=self.out)
        volume = SeriesToVolumeOp(self, name="volume", **self.volume)
        self.capture = CaptureOp(self, name="capture")
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, volume, {(P.SERIES, P.SERIES)})
        self.add_flow(volume, self.capture, {(P.VOLUME, P.VOLUME)})


def test_chain_reads_the_real_j2k_ct_like_simpleitk(tmp_path: Path) -> None:
    import SimpleITK as sitk

    from clara_stream.geometry import ImageGeometry

    src = SHARED / "totalsegmentator_ct_dicom"
    if not src.is_dir():
        pytest.skip(f"real test data not found at {src}")
    app = DicomChainApp(src, tmp_path)
    app.run()
    ((array, geom, source),) = app.capture.items
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(src / "tests/reference_files/example_ct_dicom")))
    ref = reader.Execute()
    assert geom.allclose(ImageGeometry.from_sitk(ref), atol=1e-4)
    np.testing.assert_array_equal(array, sitk.GetArrayFromImage(ref))
    assert source.aligned and len(source.instances) == array.shape[0]
    doc = json.loads((tmp_path / "selection.json").read_text())
    assert [Path(s["path"]).name for s in doc["skipped"]] == ["example_seg_dicom.nii.gz"]


def test_chain_refuses_a_tilted_series_and_resamples_when_asked(tmp_path: Path) -> None:
    src = SHARED / "dicom2nifti_cases/tests/data/failing/gantrytilting/001"
    if not src.is_dir():
        pytest.skip(f"real test data not found at {src}")
    with pytest.raises(DicomInputError, match=r"SeriesToVolume: expected slices stacked along their normal"):
        DicomChainApp(src, tmp_path).run()
    app = DicomChainApp(src, tmp_path, tilt="resample")
    app.run()
    ((array, geom, source),) = app.capture.items
    assert array.shape == (4, 512, 512) and any("tilt" in n for n in source.notes)


def test_ops_validate_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected tilt in"):
        DicomChainApp(tmp_path, tmp_path, tilt="sometimes").run()
    with pytest.raises(FileNotFoundError, match="expected existing paths"):
        DicomChainApp(tmp_path / "missing", tmp_path).run()
