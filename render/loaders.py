"""Readers that turn files on disk into render datasets (volumes, slides, 2D images).

DICOM series are read with the volume pipeline's library (``clara_stream.operators.dicom``:
slice sorting, HU rescale, irregular steps and gantry tilt resampled) when it is installed, else
with SimpleITK (GDCM, J2K included); NIfTI and MetaImage (.mhd) with SimpleITK, so every volume
arrives in the same LPS convention. Label maps on another grid (e.g. a NIfTI label
map stored RAS-flipped) are resampled onto the image grid with nearest neighbour.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from clara_stream.render.dataconfig import to_rgb8
from clara_stream.render.volume import Volume

from clara_stream.geometry import ImageGeometry

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".scn")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MASK_WORDS = ("mask", "seg", "label")
MAX_VOXELS = 1024**3
MAX_IMAGE_PX = 1 << 28


def suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def detect(path: Path) -> str:
    """Format of a dataset path: seed, dicom, volume, slide or image.

    Raises
    ------
    ValueError
        If nothing renderable is recognised.
    """
    if path.is_dir():
        if (path / "config.meta").is_file() or _volume_files(path):
            return "seed"
        if dicom_files(path):
            return "dicom"
        raise ValueError(
            "datasets: expected a folder with config.meta, volume files (.mhd, .nii.gz, ...) or a DICOM "
            f"series; got {path}"
        )
    s = suffix(path)
    if s == ".dcm" or _is_dicom(path):
        return "image"  # one DICOM file: a 2D image (X-ray, a single slice)
    if s in VOLUME_SUFFIXES:
        return "volume"
    if s in SLIDE_SUFFIXES:
        return "slide"
    if s in IMAGE_SUFFIXES:
        return "image"
    raise ValueError(
        f"datasets: expected a file ending in {VOLUME_SUFFIXES + SLIDE_SUFFIXES + IMAGE_SUFFIXES}; got {path}"
    )


def _volume_files(folder: Path) -> list[Path]:
    """Volume files (.mhd, .nii(.gz), .mha, .nrrd) directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and suffix(p) in VOLUME_SUFFIXES)


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def dicom_files(folder: Path) -> list[Path]:
    """DICOM files (DICM preamble) in ``folder`` and its sub-folders, sorted; symlinks are kept as
    named so the caller can confine where they point."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and _is_dicom(p)]


def _header_fields(path: Path, sep: str) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """(``key → (value, line index)`` of a text header, its lines): the first 64 KiB up to a NUL
    byte or (NRRD) the blank line before attached data."""
    with open(path, "rb") as f:
        text = f.read(1 << 16).split(b"\x00", 1)[0].decode("latin-1")
    lines = text.splitlines()
    if sep == ":" and "" in lines:
        lines = lines[: lines.index("")]
    fields: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(lines):
        key, found, value = line.partition(sep)
        if found:
            fields.setdefault(key.strip().lower(), (value.strip(), i))
    return fields, lines


def _pattern_names(value: str) -> list[str] | None:
    """File names of a MetaImage/NRRD numbered pattern ``fmt min max step`` (None if not one)."""
    parts = value.split()
    if len(parts) < 4 or "%" not in parts[0]:
        return None
    try:
        lo, hi, step = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None
    if step == 0 or abs(hi - lo) // abs(step) > 100_000:
        raise ValueError(f"datasets: expected a file pattern of at most 100000 files; got {value!r}")
    return [parts[0] % i for i in range(lo, hi + (1 if step > 0 else -1), step)]


def referenced_files(path: Path) -> list[Path]:
    """The pixel-data files a volume header names, as the reader will open them (not resolved).

    MetaImage (``.mhd``) ``ElementDataFile`` and NRRD ``data file`` may name a file, a ``LIST`` or a
    numbered pattern, relative to the header or absolute; ``LOCAL`` / attached data names none.
    Callers confine each of these (see :meth:`DatasetRegistry.confine_files`).
    """
    s = suffix(path)
    if s in (".mhd", ".mha"):
        fields, lines = _header_fields(path, "=")
        value, line = fields.get("elementdatafile", ("", 0))
    elif s == ".nrrd":
        fields, lines = _header_fields(path, ":")
        value, line = fields.get("data file", fields.get("datafile", ("", 0)))
    else:
        return []
    if not value or value.upper() == "LOCAL":
        return []
    if value.split()[0].upper() == "LIST":
        names = [ln.strip() for ln in lines[line + 1 :] if ln.strip()]
    else:
        names = _pattern_names(value) or [value]
    return [Path(n) if Path(n).is_absolute() else path.parent / n for n in names]


def read_seed_meta(folder: Path) -> dict[str, Any]:
    """The seed layout's config.meta (JSON) with image/mask file names filled in when absent.

    Without config.meta, a folder of volume files works too (e.g. ``ct.nii.gz`` + ``seg.nii.gz``):
    a file whose name holds mask/seg/label is the label map, the first other one the image.
    """
    meta: dict[str, Any] = {}
    cfg = folder / "config.meta"
    if cfg.is_file():
        try:
            meta = json.loads(cfg.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"datasets: expected JSON in {cfg}; got {exc}") from exc
        if not isinstance(meta, dict):
            raise ValueError(f"datasets: expected a JSON object in {cfg}; got {type(meta).__name__}")
    if "arrays" in meta:  # ClaraViz DataConfig arrays (.npy with dimension orders)
        from clara_stream.render.dataconfig import array_entries

        entries = array_entries(meta, cfg)
        meta["image"] = entries["image"]["file"]
        if "mask" in entries:
            meta["mask"] = entries["mask"]["file"]
    files = _volume_files(folder)
    if "image" not in meta:
        images = [p for p in files if not any(w in p.name.lower() for w in MASK_WORDS)]
        if not images:
            raise ValueError(
                f"datasets: expected an image volume (.mhd/.nii.gz/..., name without mask/seg/label) in {folder}"
            )
        meta["image"] = images[0].name
    if "mask" not in meta:
        masks = [p for p in files if any(w in p.name.lower() for w in MASK_WORDS)]
        if masks:
            meta["mask"] = masks[0].name
    for key in ("image", "mask"):
        if key in meta and not (folder / meta[key]).resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"datasets: expected {key} inside {folder}; got {meta[key]!r}")
    return meta


def _to_volume_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype in (np.int16, np.uint8, np.uint16, np.float32):
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= -32768 and arr.max() <= 32767:
        return arr.astype(np.int16)
    return arr.astype(np.float32)


def _check_size(size: tuple[int, ...], where: Path) -> None:
    if int(np.prod(size)) > MAX_VOXELS:
        raise ValueError(f"datasets: expected at most {MAX_VOXELS} voxels; got {size} [{where}]")


def read_sitk(path: Path | list[Path]):
    import SimpleITK as sitk

    if isinstance(path, list):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(p) for p in path])
        return reader.Execute()
    return sitk.ReadImage(str(path))


def load_dicom_volume(folder: Path, mask: Path | None = None, files: list[Path] | None = None) -> tuple[Volume, str]:
    """(Volume, SeriesInstanceUID) of the largest image series in ``folder``.

    ``files`` (already confined by the caller) limits the read to those files; only they are opened.
    Uses ``clara_stream.operators.dicom`` when importable; SimpleITK otherwise.
    """
    files = files if files is not None else dicom_files(folder)
    try:
        from clara_stream.operators.dicom.series import series_to_volume
        from clara_stream.operators.dicom.study import scan_study
    except ImportError:  # volume extra not installed: GDCM through SimpleITK
        uid, ordered = dicom_series_files(folder, files)
        return load_volume(ordered, mask), uid
    index = scan_study(files, recursive=False)
    series = index.all_series()
    if not series:
        raise ValueError(f"datasets: expected a DICOM image series in {folder}; got none")
    best = max(series, key=len)
    vol = series_to_volume(best, irregular="resample", tilt="resample")
    _check_size(vol.array.shape, folder)
    return _with_mask(_to_volume_array(vol.array), vol.geometry, mask), best.series_uid


def dicom_series_files(folder: Path, allowed: list[Path]) -> tuple[str, list[Path]]:
    """(SeriesInstanceUID, ordered files) of the largest series in ``folder`` (GDCM ordering),
    keeping only the ``allowed`` (confined) files."""
    import SimpleITK as sitk

    keep = {str(p) for p in allowed}
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    names = {i: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), i) for i in ids}
    series = {i: [Path(p) for p in f if p in keep] for i, f in names.items()}
    series = {i: f for i, f in series.items() if f}
    if not series:
        raise ValueError(f"datasets: expected a DICOM image series in {folder}; got none")
    best = max(series, key=lambda i: len(series[i]))
    return best, series[best]


def load_volume(image: Path | list[Path], mask: Path | None = None) -> Volume:
    """Read an image volume (file or ordered DICOM files) and an optional label map.

    Raises
    ------
    ValueError
        If the image is not 3D, too large, or the mask cannot be placed on the image grid.
    """
    import SimpleITK as sitk

    img = read_sitk(image)
    where = image if isinstance(image, Path) else image[0].parent
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"datasets: expected a 3D single-channel volume; got {img.GetDimension()}D with "
            f"{img.GetNumberOfComponentsPerPixel()} components [{where}]"
        )
    _check_size(img.GetSize(), where)
    geom = ImageGeometry.from_sitk(img)
    return _with_mask(_to_volume_array(sitk.GetArrayFromImage(img)), geom, mask)


def _with_mask(data: np.ndarray, geom: ImageGeometry, mask: Path | None) -> Volume:
    """A Volume of ``data``; the label map (if any) is resampled onto its grid when it differs."""
    import SimpleITK as sitk

    labels = None
    if mask is not None:
        m = sitk.ReadImage(str(mask))
        if m.GetDimension() != 3:
            raise ValueError(f"datasets: expected a 3D label map; got {m.GetDimension()}D [{mask}]")
        size = tuple(reversed(data.shape))
        same = m.GetSize() == size and ImageGeometry.from_sitk(m).allclose(geom, atol=1e-3)
        if not same:
            ref = geom.apply_to_sitk(sitk.Image(size, sitk.sitkUInt8))
            m = sitk.Resample(m, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
        labels = sitk.GetArrayFromImage(m)
        if labels.min() < 0 or labels.max() > 255:
            raise ValueError(f"datasets: expected label values 0..255; got {labels.min()}..{labels.max()} [{mask}]")
        labels = labels.astype(np.uint8)
    return Volume(data, geom, labels)


def load_image(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """(RGB uint8, (µm per pixel along x, along y) or None) of a 2D image file (PNG/JPEG/BMP or one
    DICOM image).

    DICOM: modality LUT, then the file's VOI window (or a 0.5–99.5 % stretch), MONOCHROME1
    inverted; PixelSpacing (or ImagerPixelSpacing) gives the pixel size, anisotropic spacing is
    resampled to square pixels (:func:`square_pixels`), so shapes keep their aspect and distances are in mm.
    """
    import cv2

    if suffix(path) == ".dcm" or _is_dicom(path):
        return _load_dicom_image(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keep 16-bit depth, alpha and grey as stored
    if raw is None:
        raise ValueError(f"datasets: expected a readable 2D image; got {path}")
    if raw.ndim == 3 and raw.shape[2] in (3, 4):
        raw = raw[..., [2, 1, 0, 3][: raw.shape[2]]]  # OpenCV's BGR(A) → RGB(A)
    return to_rgb8(raw, "CXY"), None


def _load_dicom_image(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(str(path))
    if "PixelData" not in ds:
        raise ValueError(f"datasets: expected a DICOM image with PixelData; got {ds.get('SOPClassUID', '?')} [{path}]")
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    if str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME"):
        values = apply_modality_lut(arr, ds).astype(np.float32)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds).astype(np.float32)
        lo, hi = np.percentile(values, [0.5, 99.5])
        grey = np.clip((values - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            grey = 255 - grey
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        from pydicom.pixels import convert_color_space

        rgb = (
            arr
            if ds.PhotometricInterpretation == "RGB"
            else convert_color_space(arr, ds.PhotometricInterpretation, "RGB")
        )
        rgb = rgb if rgb.dtype == np.uint8 else to_rgb8(rgb, "CXY")  # 16-bit colour: scaled, not wrapped
    else:
        raise ValueError(f"datasets: expected a grey or RGB 2D DICOM image; got shape {arr.shape} [{path}]")
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if not spacing:
        return np.ascontiguousarray(rgb), None
    return square_pixels(rgb, float(spacing[0]), float(spacing[1]))


def square_pixels(rgb: np.ndarray, row_mm: float, col_mm: float) -> tuple[np.ndarray, tuple[float, float]]:
    """(image resampled to square pixels, (µm per pixel along x, along y)).

    DICOM PixelSpacing is (row spacing = between rows, vertical; column spacing = horizontal). The
    coarser axis is stretched (bilinear), so no detail is lost and circles stay circles; the µm per
    pixel returned are exact for the resampled grid (rounding the new size leaves them unequal by
    less than one pixel over the image).
    """
    import cv2

    if row_mm <= 0 or col_mm <= 0 or not (math.isfinite(row_mm) and math.isfinite(col_mm)):
        raise ValueError(f"datasets: expected PixelSpacing > 0; got ({row_mm}, {col_mm})")
    h, w = rgb.shape[:2]
    fine = min(row_mm, col_mm)
    nw, nh = max(1, round(w * col_mm / fine)), max(1, round(h * row_mm / fine))
    if (nw, nh) != (w, h):
        if nw * nh > MAX_IMAGE_PX:
            raise ValueError(f"datasets: expected at most {MAX_IMAGE_PX} pixels at square spacing; got {nw}x{nh}")
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb), (w * col_mm * 1000.0 / nw, h * row_mm * 1000.0 / nh)
