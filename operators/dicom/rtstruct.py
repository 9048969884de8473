"""Write a label volume as a DICOM RT Structure Set (rt-utils), one ROI per label, contours per slice.

rt-utils takes the source series in slice order and masks as (rows, cols, slices); the same source
headers the SEG writer uses are passed directly (no second read of the folder, which may hold other
series). UIDs and equipment identification are set from config after rt-utils builds the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import DSfloat

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

from .seg import SegmentSpec, _check_alignment

__all__ = ["write_rtstruct", "read_rtstruct"]

_OP = "RtStructWriter"
_COLOURS = [(220, 80, 60), (80, 160, 220), (240, 200, 60), (120, 200, 90), (200, 120, 220), (90, 220, 200)]


def write_rtstruct(
    path: str | Path,
    labels: np.ndarray,
    geometry: ImageGeometry,
    sources: Sequence[Dataset],
    segments: Sequence[SegmentSpec],
    *,
    uid_root: str,
    manufacturer: str,
    series_description: str = "Structures",
    series_number: int = 902,
    approximate_contours: bool = False,
) -> Path:
    """Write an RTSTRUCT with one ROI per segment present in ``labels``; returns the path.

    Raises
    ------
    DicomInputError
        If the labels are not on the source grid.
    """
    from rt_utils import ds_helper
    from rt_utils.rtstruct import RTStruct

    _check_alignment(labels, geometry, sources)
    series = list(sources)
    ds = ds_helper.create_rtstruct_dataset(series)
    key = [str(series[0].SeriesInstanceUID), "rtstruct"]
    ds.SeriesInstanceUID = generate_uid(uid_root, [*key, "series"])
    ds.SOPInstanceUID = generate_uid(uid_root, [*key, "instance"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Manufacturer = manufacturer
    ds.SeriesDescription = series_description
    ds.SeriesNumber = int(series_number)
    src = series[0]
    ds.FrameOfReferenceUID = src.get("FrameOfReferenceUID", "")
    ds.PositionReferenceIndicator = src.get("PositionReferenceIndicator", "")
    ds.AccessionNumber = src.get("AccessionNumber", "")
    ds.ReferringPhysicianName = src.get("ReferringPhysicianName", "")
    ds.OperatorsName = ""
    rt = RTStruct(series, ds)
    written = 0
    for i, s in enumerate(segments):
        mask = labels == s.value
        if not mask.any():
            continue
        rt.add_roi(
            mask=np.ascontiguousarray(mask.transpose(1, 2, 0)),
            color=list(_COLOURS[i % len(_COLOURS)]),
            name=s.label,
            description=s.meaning,
            approximate_contours=approximate_contours,
        )
        written += 1
    if written == 0:
        raise DicomInputError(
            f"{_OP}: expected at least one labelled voxel among {[s.label for s in segments]}; got none"
        )
    for roi in rt.ds.ROIContourSequence:  # rt-utils writes full-precision floats; DS allows 16 chars
        for contour in roi.ContourSequence:
            contour.ContourData = [DSfloat(float(v), auto_format=True) for v in contour.ContourData]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rt.ds.save_as(path, enforce_file_format=True)
    return path


def read_rtstruct(path: str | Path, sources: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """Rasterise every ROI back to bool (z, y, x) on the source grid (sources in slice order)."""
    import pydicom
    from rt_utils.rtstruct import RTStruct

    rt = RTStruct(list(sources), pydicom.dcmread(str(path)))
    return {name: rt.get_roi_mask_by_name(name).transpose(2, 0, 1) for name in rt.get_roi_names()}
