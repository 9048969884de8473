"""SEG and RTSTRUCT pass dciodvfy and read back equal; MHD/NIfTI keep geometry (SimpleITK)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from clara_stream.operators.dicom.rtstruct import read_rtstruct, write_rtstruct
from clara_stream.operators.dicom.seg import read_dicom_seg, segment_specs, write_dicom_seg
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study
from clara_stream.operators.volume.mhd import read_mhd, read_nifti, write_volume
from clara_stream.operators.volume.render_dataset import write_render_dataset

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry
from clara_stream.samples.ct import LABELS

ROOT = "1.2.826.0.1.3680043.8.498."
EQUIPMENT = dict(manufacturer="clara-stream", manufacturer_model_name="tests", software_versions="0",
                 device_serial_number="0")  # fmt: skip
SPECS = segment_specs({k: {"label": n, "code": c, "meaning": m} for k, (n, c, m) in LABELS.items()})


@pytest.fixture(scope="module")
def phantom(ct_sample: dict[str, Path]):
    vol = series_to_volume(scan_study(ct_sample["dicom"]).all_series()[0])
    labels, _ = read_mhd(ct_sample["labels"])
    return vol, labels


def test_seg_is_valid_and_reads_back_equal(tmp_path: Path, phantom, dciodvfy) -> None:
    vol, labels = phantom
    path = write_dicom_seg(tmp_path / "seg.dcm", labels, vol.geometry, vol.source.headers, SPECS, uid_root=ROOT,
                           **EQUIPMENT)  # fmt: skip
    assert dciodvfy(path) == []
    back = read_dicom_seg(path, vol.source.headers)
    assert set(back) == {s.label for s in SPECS}
    for s in SPECS:
        np.testing.assert_array_equal(back[s.label], labels == s.value)
    import pydicom

    ds = pydicom.dcmread(path)
    codes = {str(i.SegmentedPropertyTypeCodeSequence[0].CodeValue) for i in ds.SegmentSequence}
    assert codes == {s.code for s in SPECS}
    assert ds.SeriesInstanceUID.startswith(ROOT) and ds.StudyInstanceUID == vol.instances[0].header.StudyInstanceUID


def test_seg_on_real_ct(tmp_path: Path, shared_data: Path, dciodvfy) -> None:
    vol = series_to_volume(scan_study(shared_data / "rtutils_rtstruct_ct").all_series()[0], min_slices=2)
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[:, 200:300, 180:330] = 1
    labels[1, 320:360, 240:280] = 2
    path = write_dicom_seg(tmp_path / "seg.dcm", labels, vol.geometry, vol.source.headers, SPECS[:2], uid_root=ROOT,
                           **EQUIPMENT)  # fmt: skip
    assert dciodvfy(path) == []
    back = read_dicom_seg(path, vol.source.headers)
    np.testing.assert_array_equal(back["spleen"], labels == 2)


def test_rtstruct_is_valid_and_reads_back_exactly(tmp_path: Path, phantom, dciodvfy) -> None:
    vol, labels = phantom
    path = write_rtstruct(tmp_path / "rt.dcm", labels, vol.geometry, vol.source.headers, SPECS, uid_root=ROOT,
                          manufacturer="clara-stream")  # fmt: skip
    assert dciodvfy(path) == []
    back = read_rtstruct(path, vol.source.headers)
    for s in SPECS:  # exact: contours follow pixel edges (independent rasteriser: tests/volume/test_rtstruct.py)
        np.testing.assert_array_equal(back[s.label], labels == s.value)


def test_writers_refuse_labels_off_the_source_grid(tmp_path: Path, phantom) -> None:
    vol, labels = phantom
    with pytest.raises(DicomInputError, match=r"expected a \(slices, rows, cols\) label volume with one slice"):
        write_dicom_seg(tmp_path / "x.dcm", labels[:-1], vol.geometry, vol.source.headers, SPECS, uid_root=ROOT,
                        **EQUIPMENT)  # fmt: skip
    shifted = ImageGeometry((vol.geometry.origin[0], vol.geometry.origin[1], vol.geometry.origin[2] + 7.0),
                            vol.geometry.spacing, vol.geometry.direction)  # fmt: skip
    with pytest.raises(DicomInputError, match=r"expected the label volume on the source grid"):
        write_rtstruct(tmp_path / "x.dcm", labels, shifted, vol.source.headers, SPECS, uid_root=ROOT, manufacturer="x")
    with pytest.raises(DicomInputError, match=r"expected source instances with StudyInstanceUID; got it empty"):
        anon = [copy.deepcopy(h) for h in vol.source.headers]  # Dataset.copy() shares elements
        for h in anon:
            h.StudyInstanceUID = ""
        write_dicom_seg(tmp_path / "x.dcm", labels, vol.geometry, anon, SPECS, uid_root=ROOT, **EQUIPMENT)


def test_seg_writer_refuses_a_blank_sop_class_uid(tmp_path: Path, phantom) -> None:
    """Was ``KeyError: ''`` deep inside highdicom; now a clear error naming the tag, and no file."""
    vol, labels = phantom
    sources = [copy.deepcopy(h) for h in vol.source.headers]  # Dataset.copy() shares elements
    sources[-1].SOPClassUID = ""
    with pytest.raises(DicomInputError, match=r"DicomSegWriter: expected source instances with SOPClassUID; "
                                              r"got it empty .*\(0008,0016\) SOPClassUID"):
        write_dicom_seg(tmp_path / "seg.dcm", labels, vol.geometry, sources, SPECS, uid_root=ROOT, **EQUIPMENT)
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.parametrize("name", ["v.mhd", "v.nii.gz"])
def test_mhd_and_nifti_match_simpleitk(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1000, (5, 6, 7)).astype(np.int16)
    d = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # sagittal-like
    geom = ImageGeometry((1.5, -2.25, 3.125), (0.7, 0.8, 2.5), tuple(d.ravel()))
    write_volume(tmp_path / name, arr, geom)
    img = sitk.ReadImage(str(tmp_path / name))
    assert ImageGeometry.from_sitk(img).allclose(geom, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)
    back, g2 = (read_mhd if name.endswith(".mhd") else read_nifti)(tmp_path / name)
    np.testing.assert_array_equal(back, arr)
    assert g2.allclose(geom, atol=1e-5)
    with pytest.raises(ValueError, match="expected a .mhd, .nii or .nii.gz path"):
        write_volume(tmp_path / "v.png", arr, geom)


def test_render_dataset_layout(tmp_path: Path, phantom) -> None:
    vol, labels = phantom
    names = {k: v[0] for k, v in LABELS.items()}
    out = write_render_dataset(tmp_path / "render", vol.array, vol.geometry, labels, names, name="phantom",
                               series_uid=vol.series_uid)  # fmt: skip
    meta = json.loads(out["config_meta"].read_text())
    assert meta["image"] == "original.mhd" and meta["mask"] == "mask.mhd" and meta["labels"]["1"]["name"] == "liver"
    assert json.loads(out["config_render"].read_text())["labels"]["5"]["name"] == "spine"
    image = sitk.ReadImage(str(out["image"]))
    mask = sitk.ReadImage(str(out["mask"]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), vol.array)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), labels)
    assert ImageGeometry.from_sitk(mask).allclose(vol.geometry, atol=1e-6)
