"""Write a label volume as a DICOM RT Structure Set, one ROI per label, exact contours per slice.

Contours are computed here, not by rt-utils (whose pixel → patient mapping swaps row and column
spacing, so contours land wrong whenever they differ): each slice's mask is outlined along its pixel
edges (:mod:`.contours`) and the outline corners are mapped to LPS mm through the volume's own
:class:`~clara_stream.geometry.ImageGeometry`, which the writer first checks against the source
headers. Filling a slice's contours with the even-odd rule at pixel centres gives back its mask
exactly (holes are separate contours). rt-utils only builds the base dataset (patient, study,
referenced series). UIDs and equipment identification are set from config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pydicom.valuerep import DSfloat

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

from .contours import fill_even_odd, mask_outlines
from .seg import SegmentSpec, _check_alignment, check_references

__all__ = ["write_rtstruct", "read_rtstruct", "slice_contours"]

_OP = "RtStructWriter"
_COLOURS = [(220, 80, 60), (80, 160, 220), (240, 200, 60), (120, 200, 90), (200, 120, 220), (90, 220, 200)]


def slice_contours(mask: np.ndarray, geometry: ImageGeometry, k: int) -> list[np.ndarray]:
    """The outlines of one (rows, cols) slice mask as (n, 3) LPS mm arrays, slice ``k`` of ``geometry``."""
    out = []
    for xy in mask_outlines(mask):
        zyx = np.column_stack([np.full(len(xy), float(k)), xy[:, 1], xy[:, 0]])
        out.append(geometry.index_to_physical(zyx))
    return out


def _roi_items(number: int, spec: SegmentSpec, labels: np.ndarray, geometry: ImageGeometry,
               sources: Sequence[Dataset], for_uid: str) -> tuple[Dataset, Dataset, Dataset] | None:  # fmt: skip
    """(StructureSetROI, ROIContour, RTROIObservations) items for one segment; None if it is empty."""
    mask = labels == spec.value
    contours = DicomSequence()
    for k in np.nonzero(mask.any(axis=(1, 2)))[0]:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sources[k].SOPClassUID
        ref.ReferencedSOPInstanceUID = sources[k].SOPInstanceUID
        for points in slice_contours(mask[k], geometry, int(k)):
            c = Dataset()
            c.ContourImageSequence = DicomSequence([ref])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [DSfloat(float(v), auto_format=True) for v in points.ravel()]
            contours.append(c)
    if not contours:
        return None
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = for_uid
    roi.ROIName = spec.label
    roi.ROIDescription = spec.meaning
    roi.ROIGenerationAlgorithm = "AUTOMATIC"
    contour = Dataset()
    contour.ROIDisplayColor = list(_COLOURS[(number - 1) % len(_COLOURS)])
    contour.ContourSequence = contours
    contour.ReferencedROINumber = number
    obs = Dataset()
    obs.ObservationNumber = number
    obs.ReferencedROINumber = number
    obs.RTROIInterpretedType = "ORGAN"
    obs.ROIInterpreter = ""
    return roi, contour, obs


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
) -> Path:
    """Write an RTSTRUCT with one ROI per segment present in ``labels``; returns the path.

    Raises
    ------
    DicomInputError
        If the labels are not on the source grid.
    """
    from rt_utils import ds_helper

    _check_alignment(labels, geometry, sources)
    check_references(sources, _OP)
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
    items = [_roi_items(n, s, labels, geometry, series, ds.FrameOfReferenceUID) for n, s in enumerate(segments, 1)]
    items = [it for it in items if it is not None]
    if not items:
        raise DicomInputError(
            f"{_OP}: expected at least one labelled voxel among {[s.label for s in segments]}; got none"
        )
    ds.StructureSetROISequence = DicomSequence([it[0] for it in items])
    ds.ROIContourSequence = DicomSequence([it[1] for it in items])
    ds.RTROIObservationsSequence = DicomSequence([it[2] for it in items])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def read_rtstruct(path: str | Path, sources: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """Rasterise every ROI back to bool (z, y, x) on the source grid (sources in slice order).

    Each contour goes to the source slice it references (else the one nearest along the normal); its
    LPS points are mapped into that slice's pixel plane from the slice's own ImagePositionPatient,
    ImageOrientationPatient and PixelSpacing, and a slice's contours are combined with the even-odd
    rule (so holes stay holes).

    Raises
    ------
    DicomInputError
        If the file is not an RTSTRUCT, or a contour lies on no source slice.
    """
    import pydicom

    ds = pydicom.dcmread(str(path))
    if "ROIContourSequence" not in ds or "StructureSetROISequence" not in ds:
        raise DicomInputError(f"RtStructReader: expected an RT Structure Set; got no ROIContourSequence [{path}]")
    ipp = np.array([[float(v) for v in h.ImagePositionPatient] for h in sources])
    iop = np.array([float(v) for v in sources[0].ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dy, dx = (float(v) for v in sources[0].PixelSpacing)  # PixelSpacing is (row spacing, column spacing)
    shape = (int(sources[0].Rows), int(sources[0].Columns))
    by_uid = {str(h.SOPInstanceUID): k for k, h in enumerate(sources)}
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for roi in ds.ROIContourSequence:
        per_slice: dict[int, list[np.ndarray]] = {}
        for c in roi.get("ContourSequence", []):
            pts = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
            refs = c.get("ContourImageSequence", [])
            k = by_uid.get(str(refs[0].ReferencedSOPInstanceUID)) if refs else None
            if k is None:
                k = int(np.argmin(np.abs((ipp - pts.mean(axis=0)) @ normal)))
            if abs(float((pts.mean(axis=0) - ipp[k]) @ normal)) > 1e-2:
                raise DicomInputError(f"RtStructReader: expected each contour on a source slice; got one "
                                      f"{float((pts.mean(axis=0) - ipp[k]) @ normal):.3f} mm off slice {k} [{path}]")
            rel = pts - ipp[k]
            per_slice.setdefault(k, []).append(np.column_stack([rel @ row / dx, rel @ col / dy]))
        mask = np.zeros((len(sources), *shape), dtype=bool)
        for k, polys in per_slice.items():
            mask[k] = fill_even_odd(polys, shape)
        out[names.get(int(roi.ReferencedROINumber), str(roi.ReferencedROINumber))] = mask
    return out
