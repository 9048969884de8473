"""Write a label volume as a new DICOM image series of the source's study, one instance per slice.

Clara Deploy's prostate pipeline hands the mask on as an ordinary image series so any PACS viewer
shows it: same SOP class as the source (MR or CT Image Storage), same patient, study and frame of
reference, and per slice the source's position, orientation, pixel spacing and thickness (copied,
never recomputed), so the mask lies exactly on the source. Pixels are the label values (uint16).
ImageType DERIVED\\SECONDARY\\<the source's value 3>; each instance names its source in
SourceImageSequence. UIDs come from ``uid_root`` and the source UIDs (a re-run writes the same
UIDs); the folder is written under a temporary name and renamed once complete.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

from .seg import _check_alignment, check_references

__all__ = ["write_mask_series", "SUPPORTED_SOP_CLASSES"]

SUPPORTED_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4": "MR", "1.2.840.10008.5.1.4.1.1.2": "CT"}
_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID",
    "PositionReferenceIndicator", "Modality", "BodyPartExamined", "PatientPosition", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SliceLocation", "SpacingBetweenSlices",
    # acquisition attributes the MR / CT Image IODs require (type 1/2), as the source had them
    "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "RepetitionTime", "EchoTime",
    "EchoTrainLength", "MagneticFieldStrength", "ImagingFrequency", "KVP", "AcquisitionNumber",
)  # fmt: skip


def write_mask_series(
    folder: str | Path,
    labels: np.ndarray,
    geometry: ImageGeometry,
    sources: Sequence[Dataset],
    *,
    uid_root: str,
    manufacturer: str,
    series_number: int = 903,
    series_description: str = "Segmentation mask",
) -> list[Path]:
    """Write ``labels`` (z, y, x), on the grid of ``sources`` (one header per slice), as ``folder/IM#####.dcm``.

    Raises
    ------
    DicomInputError
        If the labels are not on the source grid, a source lacks a UID to reference, or its SOP class
        is neither MR nor CT Image Storage.
    """
    _check_alignment(labels, geometry, sources)
    check_references(sources, "MaskSeriesWriter")
    sop_class = str(sources[0].SOPClassUID)
    if sop_class not in SUPPORTED_SOP_CLASSES:
        raise DicomInputError(f"MaskSeriesWriter: expected MR or CT Image Storage sources; got SOP class {sop_class} "
                              f"[(0008,0016) SOPClassUID]")  # fmt: skip
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise ValueError("MaskSeriesWriter: expected label values in 0..65535")
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    series_uid = generate_uid(uid_root, [str(sources[0].SeriesInstanceUID), "mask-series"])
    now = _dt.datetime.now()
    names = []
    for k, src in enumerate(sources):
        sop_uid = generate_uid(uid_root, [str(src.SOPInstanceUID), "mask-series"])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = src.get("SpecificCharacterSet", "ISO_IR 100")
        for key in _COPIED:
            if key in src:
                ds[key] = src[key]
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        third = list(src.get("ImageType", []))[2:3] or ["OTHER"]  # MR/CT IODs require value 3 (M, AXIAL, ...)
        ds.ImageType = ["DERIVED", "SECONDARY", *third]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series_uid, int(series_number), k + 1
        ds.SeriesDescription = series_description
        ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.Manufacturer = manufacturer
        ds.DerivationDescription = "segmentation mask: pixel value = label value"
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
        ds.SourceImageSequence = DicomSequence([ref])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = labels.shape[1], labels.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = "0.5", "1"
        ds.PixelData = np.ascontiguousarray(labels[k], dtype="<u2").tobytes()
        name = partial / f"IM{k + 1:05d}.dcm"
        pydicom.dcmwrite(name, ds, enforce_file_format=True)
        names.append(folder / name.name)
    if folder.exists():
        shutil.rmtree(folder)
    partial.replace(folder)
    return names
