"""MetaImage (.mhd + .raw) and NIfTI writers/readers that keep the LPS geometry exact.

MetaImage stores ITK's convention directly (Offset = origin, ElementSpacing, TransformMatrix = the
direction matrix written column by column as ITK does), so SimpleITK reads back the same geometry.
NIfTI is RAS: the affine is the LPS one with x and y negated; the array is stored (x, y, z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clara_stream.geometry import ImageGeometry

__all__ = ["write_mhd", "read_mhd", "write_nifti", "read_nifti", "write_volume"]

_MET_TYPES = {
    "uint8": "MET_UCHAR", "int8": "MET_CHAR", "uint16": "MET_USHORT", "int16": "MET_SHORT",
    "uint32": "MET_UINT", "int32": "MET_INT", "float32": "MET_FLOAT", "float64": "MET_DOUBLE",
}  # fmt: skip
_NP_TYPES = {v: k for k, v in _MET_TYPES.items()}


def _fmt(values) -> str:
    return " ".join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in values)


def write_mhd(path: str | Path, array: np.ndarray, geometry: ImageGeometry) -> tuple[Path, Path]:
    """Write ``array`` (z, y, x) as ``path`` (.mhd header) + a .raw beside it; returns both paths.

    Raises
    ------
    ValueError
        If the array is not 3D or its dtype has no MetaImage element type.
    """
    path = Path(path)
    if path.suffix != ".mhd":
        raise ValueError(f"MhdWriter: expected a .mhd path; got {str(path)!r}")
    if array.ndim != 3:
        raise ValueError(f"MhdWriter: expected a (z, y, x) array; got shape {array.shape}")
    kind = str(array.dtype.newbyteorder("=")) if array.dtype.byteorder not in "=|" else str(array.dtype)
    if kind == "bool":
        array, kind = array.astype(np.uint8), "uint8"
    if kind not in _MET_TYPES:
        raise ValueError(f"MhdWriter: expected a dtype among {sorted(_MET_TYPES)}; got {array.dtype}")
    raw = path.with_suffix(".raw")
    d = geometry.direction_matrix
    nz, ny, nx = array.shape
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"TransformMatrix = {_fmt(d.T.ravel())}",
        f"Offset = {_fmt(geometry.origin)}",
        "CenterOfRotation = 0 0 0",
        f"ElementSpacing = {_fmt(geometry.spacing)}",
        f"DimSize = {nx} {ny} {nz}",
        f"ElementType = {_MET_TYPES[kind]}",
        f"ElementDataFile = {raw.name}",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n")
    np.ascontiguousarray(array, dtype=np.dtype(kind).newbyteorder("<")).tofile(raw)
    return path, raw


def read_mhd(path: str | Path) -> tuple[np.ndarray, ImageGeometry]:
    """Read an uncompressed 3D .mhd/.raw pair written by us or by ITK; returns (array z,y,x, geometry)."""
    path = Path(path)
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip()
    if fields.get("NDims") != "3" or fields.get("CompressedData", "False") == "True":
        raise ValueError(f"MhdReader: expected an uncompressed 3D MetaImage; got {fields} [{path}]")
    nx, ny, nz = (int(v) for v in fields["DimSize"].split())
    dtype = np.dtype(_NP_TYPES[fields["ElementType"]])
    dtype = dtype.newbyteorder(">" if fields.get("BinaryDataByteOrderMSB", "False") == "True" else "<")
    data_file = path.parent / fields["ElementDataFile"]
    array = np.fromfile(data_file, dtype=dtype, count=nx * ny * nz).reshape(nz, ny, nx)
    m = np.array([float(v) for v in fields.get("TransformMatrix", "1 0 0 0 1 0 0 0 1").split()]).reshape(3, 3).T
    origin = tuple(float(v) for v in fields.get("Offset", fields.get("Origin", "0 0 0")).split())
    spacing = tuple(float(v) for v in fields.get("ElementSpacing", "1 1 1").split())
    return array.astype(dtype.newbyteorder("="), copy=False), ImageGeometry(origin, spacing, tuple(m.ravel()))


def write_nifti(path: str | Path, array: np.ndarray, geometry: ImageGeometry) -> Path:
    """Write (z, y, x) as NIfTI-1 (.nii or .nii.gz) with the RAS affine (qform and sform)."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(array).transpose(2, 1, 0), geometry.ras_affine())
    img.set_qform(geometry.ras_affine(), code=1)
    img.set_sform(geometry.ras_affine(), code=1)
    nib.save(img, str(path))
    return path


def read_nifti(path: str | Path) -> tuple[np.ndarray, ImageGeometry]:
    """Read a NIfTI written with any affine; returns (array z, y, x, LPS geometry)."""
    import nibabel as nib

    img = nib.load(str(path))
    a = np.diag([-1.0, -1.0, 1.0]) @ img.affine[:3, :3]
    spacing = np.linalg.norm(a, axis=0)
    origin = np.diag([-1.0, -1.0, 1.0]) @ img.affine[:3, 3]
    return np.asarray(img.dataobj).transpose(2, 1, 0), ImageGeometry(tuple(origin), tuple(spacing),
                                                                      tuple((a / spacing).ravel()))  # fmt: skip


def write_volume(path: str | Path, array: np.ndarray, geometry: ImageGeometry) -> list[Path]:
    """Write by suffix: .mhd (+ .raw), .nii or .nii.gz; returns the files written."""
    path = Path(path)
    if path.suffix == ".mhd":
        return list(write_mhd(path, array, geometry))
    if path.name.endswith((".nii", ".nii.gz")):
        return [write_nifti(path, array, geometry)]
    raise ValueError(f"MhdWriter: expected a .mhd, .nii or .nii.gz path; got {str(path)!r}")
