"""A DICOM series → one (z, y, x) volume with its exact LPS geometry (the SimpleITK convention).

Slices are sorted by their position along the slice normal (cross product of the row and column
cosines); the slice step comes from the positions, never from SliceThickness. Series that are not
one regular volume are refused with a clear :class:`~clara_stream.errors.DicomInputError` naming
the problem (mixed orientations, all at one position, too few slices, missing slices, irregular
steps, gantry tilt), or resampled onto a regular grid when configured.

Pixels (:mod:`.pixels`): native little-endian instances are read straight from the file offset found
by the header pass into a preallocated array (no second parse); compressed ones are decoded in a
thread pool (imagecodecs, else pydicom's decoders); big-endian and deflated ones go through pydicom.
Stored values match pydicom's ``pixel_array`` exactly (unused bits, J2K/JPEG-LS sign corrections).
Rescale slope/intercept give HU; the result is int16 when the rescaled range fits, else int32 or float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pydicom

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

from .pixels import PixelFormat, read_slices
from .study import DicomInstance, DicomSeries

__all__ = ["Volume", "VolumeSource", "series_to_volume", "slice_layout", "SliceLayout"]

Policy = Literal["error", "resample", "accept"]
_OP = "SeriesToVolume"


@dataclass
class VolumeSource:
    """Where a volume's slices came from (travels as ``dicom_source`` metadata to the DICOM writers).

    ``instances`` are in slice order; ``aligned`` is False when the volume was resampled, so that
    array slice k no longer is instance k.
    """

    series: DicomSeries
    instances: list[DicomInstance]
    notes: list[str] = field(default_factory=list)
    aligned: bool = True

    @property
    def headers(self) -> list[pydicom.Dataset]:
        return [i.header for i in self.instances]


@dataclass
class Volume:
    """A volume and where it came from.

    ``array`` is (z, y, x) in the modality's units (HU for CT); ``geometry`` is LPS;
    ``instances`` are the source instances in slice order (index k ↔ array[k] unless resampled);
    ``notes`` says what was done beyond a plain read (resampling, accepted irregularity).
    """

    array: np.ndarray
    geometry: ImageGeometry
    series: DicomSeries
    instances: list[DicomInstance]
    notes: list[str] = field(default_factory=list)

    @property
    def series_uid(self) -> str:
        return self.series.series_uid

    @property
    def source(self) -> VolumeSource:
        aligned = not any("resampled" in n for n in self.notes)
        return VolumeSource(self.series, self.instances, self.notes, aligned)


@dataclass
class SliceLayout:
    """Sorted instances and the geometry facts derived from their headers."""

    instances: list[DicomInstance]
    positions: np.ndarray  # (n, 3) LPS, sorted
    distances: np.ndarray  # (n,) along the normal
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing: tuple[float, float]  # (x, y) mm
    rows: int
    columns: int


def _floats(ds: pydicom.Dataset, keyword: str) -> list[float] | None:
    """A DS/IS attribute as floats, parsed from the raw bytes when pydicom has not converted it yet.

    pydicom's DSfloat construction (with validation) costs more than the rest of the geometry code;
    this is the hot path of a 500-slice series.
    """
    tag = _TAGS[keyword]
    if tag not in ds:
        return None
    raw = ds.get_item(tag)
    value = raw.value if raw is not None else None
    if isinstance(value, bytes):
        text = value.strip(b" \x00")
        return [float(v) for v in text.split(b"\\")] if text else None
    value = ds[tag].value
    if value is None or value == "":
        return None
    return [float(v) for v in value] if isinstance(value, list | pydicom.multival.MultiValue) else [float(value)]


_TAGS = {k: pydicom.datadict.tag_for_keyword(k) for k in (
    "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept",
    "SpacingBetweenSlices", "SliceThickness",
)}  # fmt: skip


def _raw(ds: pydicom.Dataset, tag: int) -> object:
    """An element's raw bytes (or its value once converted): cheap equality across instances."""
    elem = ds.get_item(tag)
    return None if elem is None else elem.value


def _err(rule: str, got: str, series: DicomSeries, problem: str) -> DicomInputError:
    exc = DicomInputError(f"{_OP}: expected {rule}; got {got} [series {series.series_uid}]")
    exc.problem = problem  # type: ignore[attr-defined]
    return exc


def slice_layout(series: DicomSeries, *, min_slices: int = 3, orientation_tol: float = 1e-4) -> SliceLayout:
    """Sort a series along its slice normal and check it has one orientation and distinct positions.

    Raises
    ------
    DicomInputError
        ``problem`` attribute: ``empty``, ``geometry-missing``, ``mixed-orientation``, ``mixed-size``,
        ``not-a-volume`` (all at one position), ``duplicate-position``, ``slice-count``.
    """
    inst = series.instances
    if not inst:
        raise _err("at least one image instance", "none", series, "empty")
    geo = []
    for i in inst:
        values = [_floats(i.header, k) for k in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")]
        for key, v, n in zip(("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"), values, (6, 3, 2),
                             strict=True):  # fmt: skip
            if v is None or len(v) != n:
                raise _err(f"{key} with {n} values", f"{v} in {i.path.name}", series, "geometry-missing")
        geo.append(values)
    iops = np.array([g[0] for g in geo])
    distinct = [iops[0]]
    if np.abs(iops - iops[0]).max() > orientation_tol:  # rare: collect the distinct orientations for the message
        for v in iops[1:]:
            if not any(np.abs(v - d).max() <= orientation_tol for d in distinct):
                distinct.append(v)
    if len(distinct) > 1:
        shown = "; ".join(str(np.round(d, 4).tolist()) for d in distinct[:3])
        raise _err("one ImageOrientationPatient (0020,0037) for the whole series",
                   f"{len(distinct)} orientations: {shown}", series, "mixed-orientation")  # fmt: skip
    sizes = {(_raw(i.header, 0x00280010), _raw(i.header, 0x00280011)) for i in inst}  # equal bytes: equal values
    if len(sizes) > 1:  # raw and converted values mixed, or a real difference: compare the values
        sizes = {(int(i.header.get("Rows", 0) or 0), int(i.header.get("Columns", 0) or 0)) for i in inst}
    spacings = {tuple(round(v, 6) for v in g[2]) for g in geo}
    if len(sizes) > 1 or len(spacings) > 1:
        sizes = {(int(i.header.get("Rows", 0) or 0), int(i.header.get("Columns", 0) or 0)) for i in inst}
        raise _err("one Rows x Columns and PixelSpacing", f"{sorted(sizes)} / {sorted(spacings)}", series,
                   "mixed-size")  # fmt: skip
    row, col = iops[0][:3], iops[0][3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    pos = np.array([g[1] for g in geo])
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    pos, dist = pos[order], dist[order]
    inst = [inst[k] for k in order]
    steps = np.diff(dist)
    if len(inst) > 1 and np.all(np.abs(dist - dist[0]) < 1e-3):
        raise _err("instances at distinct positions along the slice normal",
                   f"all {len(inst)} at {dist[0]:.3f} mm (not a volume)", series, "not-a-volume")  # fmt: skip
    if np.any(steps < 1e-3):
        k = int(np.argmax(steps < 1e-3))
        raise _err("one instance per slice position",
                   f"{inst[k].path.name} and {inst[k + 1].path.name} both at {dist[k]:.3f} mm "
                   "(several acquisitions, echoes or time points in one series?)",
                   series, "duplicate-position")  # fmt: skip
    if len(inst) < min_slices:
        raise _err(f"at least {min_slices} slices for a volume", f"{len(inst)}", series, "slice-count")
    ps = geo[int(order[0])][2]
    return SliceLayout(inst, pos, dist, row, col, normal, (ps[1], ps[0]), int(inst[0].header.Rows),
                       int(inst[0].header.Columns))  # fmt: skip


def _check_steps(lay: SliceLayout, series: DicomSeries, rel_tol: float) -> str | None:
    """None if the steps are regular, else a description (and the problem code in the text)."""
    steps = np.diff(lay.distances)
    if steps.size < 2:
        return None  # one or two slices: nothing to compare
    smallest = float(steps.min())
    if np.all(np.abs(steps - np.median(steps)) <= rel_tol * np.median(steps) + 1e-3):
        return None
    ratios = steps / smallest
    uniq = sorted({round(float(s), 3) for s in steps})
    if np.all(np.abs(ratios - np.rint(ratios)) < 0.05):
        missing = int(np.sum(np.rint(ratios) - 1))
        return f"missing-slices: steps of {uniq} mm ({missing} slice(s) missing at a {smallest:.3f} mm step)"
    return f"irregular-spacing: steps of {uniq} mm"


def _tilt_deg(lay: SliceLayout) -> float:
    if len(lay.instances) < 2:
        return 0.0
    v = lay.positions[-1] - lay.positions[0]
    cosang = abs(float(v @ lay.normal)) / float(np.linalg.norm(v))
    return float(np.degrees(np.arccos(min(1.0, cosang))))


def _rescale(inst: DicomInstance) -> tuple[float, float]:
    slope, intercept = _floats(inst.header, "RescaleSlope"), _floats(inst.header, "RescaleIntercept")
    return (slope[0] if slope else 1.0) or 1.0, intercept[0] if intercept else 0.0


def series_to_volume(
    series: DicomSeries,
    *,
    irregular: Policy = "error",
    tilt: Policy = "error",
    min_slices: int = 3,
    spacing_rel_tol: float = 0.01,
    tilt_tol_deg: float = 0.05,
    workers: int | None = None,
    rescale: bool = True,
) -> Volume:
    """Build the volume of one series.

    Parameters
    ----------
    series : from :func:`scan_study`.
    irregular : what to do with missing slices or irregular steps: ``error`` (default) refuses;
        ``resample`` interpolates linearly onto the smallest step; ``accept`` keeps the slices and
        uses the mean step (what SimpleITK's ImageSeriesReader does, with only a warning).
    tilt : gantry tilt (slices sheared along the normal): ``error``, ``resample`` (shift each slice
        in plane onto an orthogonal grid), or ``accept`` (SimpleITK behaviour: geometry is wrong).
    min_slices : fewest slices that make a volume (default 3).
    spacing_rel_tol : allowed relative deviation of a step from the median step.
    tilt_tol_deg : angles between the slice stack axis and the normal below this are not a tilt.
    workers : threads reading and decoding pixels (default: CPU count, at most 8; 1: this thread only).
    rescale : apply RescaleSlope/Intercept (HU for CT); False keeps stored values.

    Returns
    -------
    Volume: array (z, y, x), int16 when the rescaled range fits, int32 for wider integers, float32
    for non-integer or per-slice rescale; geometry in LPS with origin at the first slice.

    Raises
    ------
    DicomInputError
        With ``.problem`` one of those of :func:`slice_layout`, or ``missing-slices``,
        ``irregular-spacing``, ``gantry-tilt``, ``pixel-format``.
    """
    for name, v in (("irregular", irregular), ("tilt", tilt)):
        if v not in ("error", "resample", "accept"):
            raise ValueError(f"{_OP}: expected {name} in error, resample, accept; got {v!r}")
    lay = slice_layout(series, min_slices=min_slices)
    notes: list[str] = []
    step_issue = _check_steps(lay, series, spacing_rel_tol)
    if step_issue and irregular == "error":
        code, text = step_issue.split(": ", 1)
        raise _err("a constant slice step along the normal", text, series, code)
    angle = _tilt_deg(lay)
    if angle > tilt_tol_deg and tilt == "error":
        raise _err("slices stacked along their normal (no gantry tilt)",
                   f"a tilt of {angle:.2f} degrees", series, "gantry-tilt")  # fmt: skip
    h0 = lay.instances[0].header
    if int(h0.get("SamplesPerPixel", 1)) != 1 or int(h0.get("NumberOfFrames", 1) or 1) != 1:
        raise _err("single-frame greyscale instances", f"SamplesPerPixel {h0.get('SamplesPerPixel')}, "
                   f"NumberOfFrames {h0.get('NumberOfFrames', 1)}", series, "pixel-format")  # fmt: skip
    fmt = PixelFormat(h0)
    stored = fmt.dtype
    n, rows, cols = len(lay.instances), lay.rows, lay.columns
    scales = [_rescale(i) for i in lay.instances] if rescale else [(1.0, 0.0)] * n
    slope, intercept = scales[0]
    uniform = all(s == scales[0] for s in scales)
    integral = uniform and slope == 1.0 and intercept == int(intercept)
    lo, hi = fmt.value_range
    fits16 = integral and stored.itemsize <= 2 and -32768 <= lo + intercept and hi + intercept <= 32767
    if fits16 and stored.itemsize == 2 and (fmt.signed or fmt.bits_stored < 16):
        buf = np.empty((n, rows, cols), dtype=np.int16)  # uint16 below 2**15 has the same bits: read in place
    else:
        buf = np.empty((n, rows, cols), dtype=stored)
    in_place = integral and buf.dtype == np.int16 and intercept != 0
    shift = np.int16(intercept) if in_place else None
    read_slices(lay.instances, buf, fmt, workers=workers, shift=shift)
    if integral and buf.dtype == np.int16:
        array = buf
    elif integral:
        wide = np.int16 if fits16 else np.int32
        array = buf.astype(wide)
        if intercept:
            array += wide(intercept)
    else:
        array = buf.astype(np.float32)
        for k, (s, b) in enumerate(scales):
            if s != 1.0:
                array[k] *= np.float32(s)
            if b:
                array[k] += np.float32(b)
    if n > 1:
        step = float(np.linalg.norm(lay.positions[-1] - lay.positions[0]) / (n - 1))
    else:  # one slice: what GDCM reports (SpacingBetweenSlices, else SliceThickness, else 1 mm)
        step = (_floats(h0, "SpacingBetweenSlices") or _floats(h0, "SliceThickness") or [1.0])[0] or 1.0
    if angle > tilt_tol_deg and tilt == "resample":
        array = _untilt(array, lay)
        step = float((lay.distances[-1] - lay.distances[0]) / (n - 1))
        notes.append(f"gantry tilt of {angle:.2f} degrees resampled onto an orthogonal grid")
    elif angle > tilt_tol_deg:
        notes.append(f"gantry tilt of {angle:.2f} degrees accepted: geometry is approximate")
    if step_issue and irregular == "resample":
        array, step = _regularise(array, lay.distances)
        notes.append(f"{step_issue.split(': ', 1)[1]}; resampled to a {step:.4f} mm step")
    elif step_issue:
        notes.append(f"{step_issue.split(': ', 1)[1]}; accepted with the mean step {step:.4f} mm")
    direction = np.stack([lay.row, lay.col, lay.normal], axis=1)
    geometry = ImageGeometry(tuple(lay.positions[0]), (*lay.pixel_spacing, step), tuple(direction.ravel()))
    return Volume(array, geometry, series, lay.instances, notes)


def _untilt(array: np.ndarray, lay: SliceLayout) -> np.ndarray:
    from scipy.ndimage import shift

    out = np.empty(array.shape, dtype=np.float32 if array.dtype.kind == "f" else array.dtype)
    fill = float(array.min())
    for k in range(array.shape[0]):
        d = lay.positions[k] - lay.positions[0]
        dx, dy = float(d @ lay.row) / lay.pixel_spacing[0], float(d @ lay.col) / lay.pixel_spacing[1]
        out[k] = shift(array[k].astype(np.float32), (dy, dx), order=1, cval=fill).round().astype(out.dtype) \
            if out.dtype.kind != "f" else shift(array[k], (dy, dx), order=1, cval=fill)  # fmt: skip
    return out


def _regularise(array: np.ndarray, dist: Sequence[float]) -> tuple[np.ndarray, float]:
    dist = np.asarray(dist, dtype=np.float64)
    step = float(np.diff(dist).min())
    m = int(round((dist[-1] - dist[0]) / step)) + 1
    targets = dist[0] + step * np.arange(m)
    hi = np.clip(np.searchsorted(dist, targets, side="left"), 1, len(dist) - 1)
    lo = hi - 1
    w = ((targets - dist[lo]) / (dist[hi] - dist[lo])).astype(np.float32)[:, None, None]
    out = array[lo].astype(np.float32) * (1 - w) + array[hi].astype(np.float32) * w
    if array.dtype.kind != "f":
        out = np.rint(out).astype(array.dtype)
    return out, step
