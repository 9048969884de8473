"""CT-like abdominal phantom written as a real DICOM CT series plus its label volume.

The phantom is built in patient coordinates (LPS, millimetres), so organ shapes do not depend on the
voxel grid: the same seed gives the same anatomy at 48 x 128² or at 200 x 512². Organs are smooth
ellipsoids/cylinders with seed-dependent position, size and contrast, plus Gaussian noise, so a small
segmentation network has to learn location and shape, not just a threshold.

Labels (value: name, SNOMED CT code of the property type):

====  ============  =========
0     background    -
1     liver         10200004
2     spleen        78961009
3     left kidney   18639004
4     right kidney  9846003
5     spine         421060004
====  ============  =========
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABELS", "write_sample", "make_phantom", "write_dicom_series"]

#: Label value -> (name, SNOMED CT code, SNOMED meaning); the SEG writer and the model use these.
LABELS: dict[int, tuple[str, str, str]] = {
    1: ("liver", "10200004", "Liver"),
    2: ("spleen", "78961009", "Spleen"),
    3: ("left kidney", "18639004", "Left kidney"),
    4: ("right kidney", "9846003", "Right kidney"),
    5: ("spine", "421060004", "Vertebral column"),
}

#: UID root for generated sample identifiers (pydicom's registered root, meant for generated UIDs).
DEFAULT_UID_ROOT = "1.2.826.0.1.3680043.8.498."

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_TRANSFER_SYNTAXES = {
    "explicit": "1.2.840.10008.1.2.1",
    "implicit": "1.2.840.10008.1.2",
    "rle": "1.2.840.10008.1.2.5",
    "j2k": "1.2.840.10008.1.2.4.90",
    "jpeg-lossless": "1.2.840.10008.1.2.4.57",  # encoded with imagecodecs (pydicom has no encoder for it)
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
}


def _uid_root() -> str:
    try:  # the core's config owns the site UID root once it lands
        from clara_stream import config  # type: ignore[attr-defined]

        root = getattr(config, "UID_ROOT", None) or getattr(config, "uid_root", None)
        if isinstance(root, str) and root:
            return root if root.endswith(".") else root + "."
    except ImportError:
        pass
    return DEFAULT_UID_ROOT


def make_phantom(
    shape: tuple[int, int, int] = (48, 128, 128),
    *,
    seed: int = 0,
    fov_mm: float = 380.0,
    z_extent_mm: float = 200.0,
    noise_hu: float = 15.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Build the phantom on a voxel grid.

    Parameters
    ----------
    shape : (z, y, x) voxel counts.
    seed : anatomy, contrast and noise seed.
    fov_mm : in-plane field of view (square), millimetres.
    z_extent_mm : cranio-caudal extent covered by the slices, millimetres.
    noise_hu : standard deviation of the added Gaussian noise, HU.

    Returns
    -------
    hu : int16 (z, y, x) Hounsfield units.
    labels : uint8 (z, y, x) label values (see ``LABELS``).
    geometry : dict with ``origin`` (x, y, z) mm LPS of voxel (0, 0, 0), ``spacing`` (x, y, z) mm and
        ``direction`` (row-major 3x3, columns are the x, y, z axes) — identity (axial slices).
    """
    nz, ny, nx = (int(v) for v in shape)
    if min(nz, ny, nx) < 2:
        raise ValueError(f"write_sample: expected shape with every axis >= 2; got {shape}")
    rng = np.random.default_rng(seed)
    sx, sy = fov_mm / nx, fov_mm / ny
    sz = round(z_extent_mm / nz, 6)  # values that survive the DICOM DS text form exactly
    sx, sy = round(sx, 6), round(sy, 6)
    origin = tuple(round(v, 6) for v in (-nx * sx / 2 + sx / 2, -ny * sy / 2 + sy / 2, -nz * sz / 2 + sz / 2))
    z = (origin[2] + sz * np.arange(nz, dtype=np.float32))[:, None, None]
    y = (origin[1] + sy * np.arange(ny, dtype=np.float32))[None, :, None]
    x = (origin[0] + sx * np.arange(nx, dtype=np.float32))[None, None, :]

    def jitter(v: float, s: float) -> float:
        return float(v + rng.uniform(-s, s))

    def scale() -> float:
        return float(rng.uniform(0.88, 1.12))

    hu = np.full((nz, ny, nx), -1000.0, dtype=np.float32)
    labels = np.zeros((nz, ny, nx), dtype=np.uint8)
    bx, by = 160.0 * scale(), 112.0 * scale()
    body = (x / bx) ** 2 + ((y - 5.0) / by) ** 2 <= 1.0
    inner = (x / (bx - 14.0)) ** 2 + ((y - 5.0) / (by - 14.0)) ** 2 <= 1.0
    body = np.broadcast_to(body, hu.shape)
    inner = np.broadcast_to(inner, hu.shape)
    hu[body] = -95.0 + rng.uniform(-10, 10)  # subcutaneous fat
    hu[inner] = 35.0 + rng.uniform(-10, 10)  # muscle / bowel soft tissue
    # a smooth low-frequency texture inside the body so organs are not on a flat background
    tex = 12.0 * np.sin(x / 23.0 + rng.uniform(0, 6)) * np.cos(y / 31.0 + rng.uniform(0, 6))
    hu += np.where(inner, np.broadcast_to(tex, hu.shape), 0.0).astype(np.float32)

    def ellipsoid(c: tuple[float, float, float], r: tuple[float, float, float]) -> np.ndarray:
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0

    s = scale()
    organs = [
        (1, ellipsoid((jitter(-68, 8), jitter(-8, 6), jitter(35, 10)), (62 * s, 58 * s, 55 * s)), 95.0),
        (2, ellipsoid((jitter(78, 6), jitter(35, 6), jitter(45, 10)), (28 * scale(), 38 * s, 40 * s)), 125.0),
        (3, ellipsoid((jitter(58, 5), jitter(55, 4), jitter(0, 10)), (24 * s, 21 * s, 42 * scale())), 185.0),
        (
            4,
            ellipsoid((jitter(-58, 5), jitter(55, 4), jitter(-10, 10)), (24 * s, 21 * s, 42 * scale())),
            180.0,
        ),
    ]
    for value, mask, mean_hu in organs:
        mask = mask & inner
        hu[mask] = mean_hu + rng.uniform(-12, 12)
        labels[mask] = value
    spine = np.broadcast_to(((x - jitter(0, 3)) ** 2 + (y - jitter(62, 3)) ** 2) <= (17.0 * s) ** 2, hu.shape)
    spine = spine & inner & (labels == 0)
    hu[spine] = 420.0 + rng.uniform(-40, 40)
    labels[spine] = 5
    hu += rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    geometry = {
        "origin": origin,
        "spacing": (sx, sy, sz),
        "direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    }
    return hu, labels, geometry


def write_dicom_series(
    hu: np.ndarray,
    geometry: dict[str, Any],
    out_dir: Path,
    *,
    seed: int = 0,
    transfer_syntax: str = "explicit",
    uid_root: str | None = None,
    patient_id: str = "PHANTOM-CT",
    shuffle_names: bool = False,
    modality: str = "CT",
    description: str = "Phantom abdomen",
    body_part: str = "ABDOMEN",
) -> list[Path]:
    """Write ``hu`` (z, y, x) as one CT Image Storage file per slice (unsigned 12-bit, intercept -1024).

    ``modality="MR"`` writes MR Image Storage instead: ``hu`` then holds signal values 0..4095, stored
    as they are (no rescale), with the MR acquisition attributes of a 2D T2 spin-echo series.

    UIDs are generated deterministically from ``seed`` under ``uid_root``, so a re-run writes the same
    study. ``transfer_syntax`` is one of explicit, implicit, rle, j2k, jpeg-lossless, jpeg-ls.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    if transfer_syntax not in _TRANSFER_SYNTAXES:
        raise ValueError(
            f"write_sample: expected transfer_syntax in {sorted(_TRANSFER_SYNTAXES)}; got {transfer_syntax!r}"
        )
    root = uid_root or _uid_root()
    nz, ny, nx = hu.shape
    key = [str(seed), str(hu.shape), patient_id]
    study_uid = generate_uid(root, [*key, "study"])
    series_uid = generate_uid(root, [*key, "series"])
    for_uid = generate_uid(root, [*key, "frame-of-reference"])
    sx, sy, sz = geometry["spacing"]
    ox, oy, oz = geometry["origin"]
    d = geometry["direction"]
    row, col, normal = np.array(d[0::3]), np.array(d[1::3]), np.array(d[2::3])
    when = _dt.datetime(2026, 1, 1, 8, 0, 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    if modality not in ("CT", "MR"):
        raise ValueError(f"write_dicom_series: expected modality CT or MR; got {modality!r}")
    mr = modality == "MR"
    sop_class = _MR_IMAGE_STORAGE if mr else _CT_IMAGE_STORAGE
    stored = (hu.astype(np.int32) + (0 if mr else 1024)).clip(0, 4095).astype(np.uint16)
    order = np.random.default_rng(seed + 7919).permutation(nz) if shuffle_names else np.arange(nz)
    paths = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        sop_uid = generate_uid(root, [*key, "instance", str(k)])
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = UID(_TRANSFER_SYNTAXES["explicit"])
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M" if mr else "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = "clara-stream phantom"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = description
        ds.SeriesDescription = f"{description} {modality}"
        ds.PatientName = f"Phantom^{modality}"
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = body_part
        if mr:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "SK", ""
            ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime = "2D", "4000", "100"
            ds.EchoTrainLength, ds.MagneticFieldStrength, ds.ImagingFrequency = "16", "3", "127.7"
        else:
            ds.KVP = "120"
        ds.SliceThickness = f"{sz:.6f}"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ipp = np.array([ox, oy, oz]) + k * sz * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{float(ipp @ normal):.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if mr:
            ds.WindowCenter, ds.WindowWidth = "500", "1000"
        else:
            ds.WindowCenter, ds.WindowWidth = "40", "400"
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.PixelData = stored[k].tobytes()
        if transfer_syntax == "implicit":
            ds.file_meta.TransferSyntaxUID = UID(_TRANSFER_SYNTAXES["implicit"])
        elif transfer_syntax in ("rle", "j2k"):
            ds.compress(UID(_TRANSFER_SYNTAXES[transfer_syntax]), stored[k], generate_instance_uid=False)
        elif transfer_syntax in ("jpeg-lossless", "jpeg-ls"):
            import imagecodecs
            from pydicom.encaps import encapsulate

            encode = imagecodecs.ljpeg_encode if transfer_syntax == "jpeg-lossless" else imagecodecs.jpegls_encode
            ds.PixelData = encapsulate([encode(stored[k])])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = UID(_TRANSFER_SYNTAXES[transfer_syntax])
        path = out_dir / f"IM{int(order[k]) + 1:05d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def write_sample(
    out_dir: Path,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = (48, 128, 128),
    transfer_syntax: str = "explicit",
    noise_hu: float = 15.0,
    shuffle_names: bool = False,
    uid_root: str | None = None,
    **options: Any,
) -> dict[str, Path]:
    """Write a phantom CT study: a DICOM series, its label volume (.mhd/.raw) and a labels JSON.

    Parameters
    ----------
    out_dir : folder to write; created if missing. Layout: ``dicom/IM#####.dcm``, ``labels.mhd`` +
        ``labels.raw`` (uint8, same geometry as the series), ``labels.json``.
    seed : anatomy/noise seed; the same seed writes byte-identical files and identical UIDs.
    shape : (z, y, x) voxel counts; (48, 128, 128) default, (200, 512, 512) for the benchmark.
    transfer_syntax : explicit (default), implicit, rle, j2k, jpeg-lossless (Process 14) or jpeg-ls.
    noise_hu, shuffle_names, uid_root : see ``make_phantom`` / ``write_dicom_series``.
    options : ``fov_mm``, ``z_extent_mm`` passed to ``make_phantom``.

    Returns
    -------
    {"dicom": series folder, "labels": label .mhd, "label_names": labels JSON}
    """
    unknown = set(options) - {"fov_mm", "z_extent_mm"}
    if unknown:
        raise ValueError(f"write_sample: expected options among fov_mm, z_extent_mm; got {sorted(unknown)}")
    if isinstance(shape, str):
        shape = tuple(int(v) for v in shape.replace("x", ",").split(","))  # CLI form "48x128x128"
    out_dir = Path(out_dir)
    hu, labels, geometry = make_phantom(tuple(shape), seed=int(seed), noise_hu=float(noise_hu), **options)
    dicom_dir = out_dir / "dicom"
    write_dicom_series(
        hu,
        geometry,
        dicom_dir,
        seed=int(seed),
        transfer_syntax=transfer_syntax,
        uid_root=uid_root,
        shuffle_names=bool(shuffle_names),
    )
    labels_path = out_dir / "labels.mhd"
    from clara_stream.geometry import ImageGeometry
    from clara_stream.operators.volume.mhd import write_mhd

    write_mhd(labels_path, labels, ImageGeometry.from_dict(geometry))
    names_path = out_dir / "labels.json"
    names = {
        "labels": {str(v): {"name": n, "snomed_code": c, "snomed_meaning": m} for v, (n, c, m) in LABELS.items()},
        "background": 0,
    }
    names_path.write_text(json.dumps(names, indent=2) + "\n")
    return {"dicom": dicom_dir, "labels": labels_path, "label_names": names_path}
