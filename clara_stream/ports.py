"""The one vocabulary of port names, and of the metadata keys that travel with the data.

Operators and apps import these constants instead of spelling port names as strings, so a
writer can never read ``segmentation_image`` from a port called ``seg_image``. Singular names
carry one item, plurals a collection; the same noun in and out of one operator takes ``_in`` /
``_out``; extra ports take a role suffix (``mask_prior``) built with :func:`suffixed`.
"""

from __future__ import annotations

FRAME = "frame"  # decoded image
PACKET = "packet"  # encoded bitstream
TENSOR = "tensor"  # model input
LOGITS = "logits"  # raw model output
DETECTIONS = "detections"
MASK = "mask"
OVERLAY = "overlay"
STUDY = "study"
SERIES = "series"
VOLUME = "volume"
DATASET = "dataset"  # a DICOM object to write
PATHS = "paths"  # written files
REPORT = "report"
AUDIO = "audio"
TRANSCRIPT = "transcript"
STATUS = "status"

FRAME_IN, FRAME_OUT = "frame_in", "frame_out"
TENSOR_IN, TENSOR_OUT = "tensor_in", "tensor_out"
VOLUME_IN, VOLUME_OUT = "volume_in", "volume_out"
MASK_IN, MASK_OUT = "mask_in", "mask_out"

NOUNS: frozenset[str] = frozenset(
    {FRAME, PACKET, TENSOR, LOGITS, DETECTIONS, MASK, OVERLAY, STUDY, SERIES, VOLUME, DATASET,
     PATHS, REPORT, AUDIO, TRANSCRIPT, STATUS}
)


def suffixed(noun: str, role: str) -> str:
    """Return the port name for ``noun`` in a given role, e.g. ``suffixed(MASK, "prior")``.

    Raises
    ------
    ValueError
        If ``noun`` is not in the vocabulary or ``role`` is not a lowercase identifier.
    """
    if noun not in NOUNS:
        raise ValueError(f"ports.suffixed: expected a noun from the vocabulary; got {noun!r}")
    if not role.isidentifier() or role != role.lower():
        raise ValueError(f"ports.suffixed: expected a lowercase identifier role; got {role!r}")
    return f"{noun}_{role}"


def is_canonical(name: str) -> bool:
    """True when ``name`` is a vocabulary noun, optionally followed by ``_<role>``."""
    if name in NOUNS:
        return True
    noun, _, role = name.partition("_")
    return noun in NOUNS and bool(role) and role.replace("_", "").isalnum() and role == role.lower()


# -- metadata keys: what ``emit(..., meta=...)`` sets, ``get_meta`` reads and ``Contract(meta=...)`` names
FRAME_INFO = "frame_info"  # geometry.FrameInfo: pts, time base, index, source rate
FRAME_CLOCK = "frame_clock"  # time.perf_counter() when the decoder emitted the frame (latency start)
PACKET_CLOCK = "packet_clock"  # time.perf_counter() when the frame's packet was read (glass-to-glass start)
LETTERBOX = "letterbox"  # how a frame was fitted into the model input
GEOMETRY = "geometry"  # geometry.ImageGeometry: LPS origin, spacing, direction of a volume or image
DICOM_SOURCE = "dicom_source"  # the series a volume came from (headers, alignment), for derived objects
CROP_BOX = "crop_box"  # the voxel box a crop took from its input
REGIONS = "regions"  # the boxes a multi-model segmentation ran per region

META_KEYS: frozenset[str] = frozenset(
    {FRAME_INFO, FRAME_CLOCK, PACKET_CLOCK, LETTERBOX, GEOMETRY, DICOM_SOURCE, CROP_BOX, REGIONS}
)
