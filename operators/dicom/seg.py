"""Write a label volume as a DICOM Segmentation (highdicom) aligned frame by frame with its source.

The label volume must lie on the source series' own grid (array[k] ↔ the k-th source instance in
slice order, as :func:`series_to_volume` returns it without resampling); the writer checks this from
the geometry instead of trusting it. Segment descriptions (label, SNOMED CT property type and
category) come from the app's config; new UIDs are generated under the configured root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from clara_stream.errors import DicomInputError
from clara_stream.geometry import ImageGeometry

__all__ = ["SegmentSpec", "segment_specs", "check_references", "write_dicom_seg", "read_dicom_seg"]

_OP = "DicomSegWriter"


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: the label value in the volume and its coded description."""

    value: int
    label: str
    code: str  # SNOMED CT code of the segmented property type
    meaning: str
    category_code: str = "123037004"  # SNOMED CT "Anatomical structure"
    category_meaning: str = "Anatomical Structure"
    scheme: str = "SCT"


def segment_specs(config: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[SegmentSpec]:
    """Parse app.yaml's ``segments`` (a mapping value → {label, code, meaning[, category_*]} or a list).

    Raises
    ------
    ValueError
        On a missing field or a duplicate/non-positive label value.
    """
    items = [{"value": k, **v} for k, v in config.items()] if isinstance(config, Mapping) else [dict(c) for c in config]
    specs, seen = [], set()
    for it in items:
        missing = [k for k in ("value", "label", "code", "meaning") if k not in it]
        if missing:
            raise ValueError(
                f"{_OP}: expected segment fields value, label, code, meaning; got {it!r} lacking {missing}"
            )
        value = int(it["value"])
        if value < 1 or value in seen:
            raise ValueError(f"{_OP}: expected unique segment values >= 1; got {value}")
        seen.add(value)
        specs.append(
            SegmentSpec(
                value, str(it["label"]), str(it["code"]), str(it["meaning"]),
                str(it.get("category_code", "123037004")), str(it.get("category_meaning", "Anatomical Structure")),
                str(it.get("scheme", "SCT")),
            )
        )  # fmt: skip
    return sorted(specs, key=lambda s: s.value)


def _check_alignment(labels: np.ndarray, geometry: ImageGeometry, sources: Sequence[Dataset]) -> None:
    if labels.ndim != 3 or labels.shape[0] != len(sources):
        raise DicomInputError(
            f"{_OP}: expected a (slices, rows, cols) label volume with one slice per source instance; "
            f"got shape {labels.shape} for {len(sources)} instances"
        )
    h = sources[0]
    if labels.shape[1:] != (int(h.Rows), int(h.Columns)):
        raise DicomInputError(f"{_OP}: expected slices of {int(h.Rows)}x{int(h.Columns)}; got {labels.shape[1:]}")
    for k in (0, len(sources) - 1):
        ipp = np.array([float(v) for v in sources[k].ImagePositionPatient])
        if not np.allclose(ipp, geometry.index_to_physical((k, 0, 0)), atol=1e-3):
            raise DicomInputError(
                f"{_OP}: expected the label volume on the source grid; got slice {k} at "
                f"{geometry.index_to_physical((k, 0, 0)).round(3).tolist()} mm, source at {ipp.round(3).tolist()} "
                "(was the volume resampled?)"
            )


#: What a derived object (SEG, RTSTRUCT) copies from every source instance to reference it.
REFERENCED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")


def check_references(sources: Sequence[Dataset], owner: str) -> None:
    """Refuse sources that a derived object cannot reference (a blank UID would crash or mislead later).

    Raises
    ------
    DicomInputError
        Naming the first empty attribute, its tag and the file.
    """
    for ds in sources:
        for k in REFERENCED:
            if not str(ds.get(k, "") or "").strip():
                tag = tag_for_keyword(k)
                raise DicomInputError(
                    f"{owner}: expected source instances with {k}; got it empty (anonymised without UIDs?) "
                    f"[({tag >> 16:04X},{tag & 0xFFFF:04X}) {k}, {getattr(ds, 'filename', '') or 'in memory'}]"
                )


def write_dicom_seg(
    path: str | Path,
    labels: np.ndarray,
    geometry: ImageGeometry,
    sources: Sequence[Dataset],
    segments: Sequence[SegmentSpec],
    *,
    uid_root: str,
    manufacturer: str,
    manufacturer_model_name: str,
    software_versions: str,
    device_serial_number: str,
    series_number: int = 901,
    series_description: str = "Segmentation",
    algorithm_name: str = "organ_segmentation",
    algorithm_version: str = "1",
    omit_empty_frames: bool = True,
) -> Path:
    """Write a BINARY DICOM SEG for the labels present in ``segments``; returns the path.

    Parameters
    ----------
    labels : uint8 (z, y, x) on the source grid; values not in ``segments`` are ignored.
    sources : source headers in slice order (pixels are not needed).
    uid_root : prefix for the new Series and SOP Instance UIDs.
    manufacturer, manufacturer_model_name, software_versions, device_serial_number : equipment
        identification of this software (from config, never invented here).

    Raises
    ------
    DicomInputError
        If the labels are not on the source grid or the sources lack Study/Series/SOP UIDs.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not segments:
        raise ValueError(f"{_OP}: expected at least one segment description; got none")
    _check_alignment(labels, geometry, sources)
    check_references(sources, _OP)
    algo = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version, family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = []
    seg_labels = np.zeros(labels.shape, dtype=np.uint8)
    for number, s in enumerate(segments, start=1):
        seg_labels[labels == s.value] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=s.label,
                segmented_property_category=hd.sr.CodedConcept(s.category_code, s.scheme, s.category_meaning),
                segmented_property_type=hd.sr.CodedConcept(s.code, s.scheme, s.meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algo,
            )
        )
    key = [str(sources[0].SeriesInstanceUID), algorithm_name, algorithm_version]
    seg = hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=seg_labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(uid_root, [*key, "series"]),
        series_number=int(series_number),
        sop_instance_uid=generate_uid(uid_root, [*key, "instance"]),
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name=manufacturer_model_name,
        software_versions=software_versions,
        device_serial_number=device_serial_number,
        series_description=series_description,
        omit_empty_frames=omit_empty_frames,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def read_dicom_seg(path: str | Path, sources: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """Read a SEG back as {segment label: bool (z, y, x)} on the source grid (sources in slice order)."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    uids = [str(s.SOPInstanceUID) for s in sources]
    out = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        arr = seg.get_pixels_by_source_instance(uids, segment_numbers=[number], assert_missing_frames_are_empty=True)
        out[label] = arr[..., 0].astype(bool)
    return out
