"""ClaraViz-style ``DataConfig`` arrays: a dimension order names what each axis of an array is.

The order lists axes from the fastest-varying in memory to the slowest, as ClaraViz does: the first
letter is the element — ``D`` density (intensity), ``M`` mask (labels), ``C`` colour channels —
and the rest are spatial, ``X``, ``Y`` and (volumes) ``Z``. So ``DXYZ`` is a numpy array of shape
(z, y, x, d), ``MXYZ`` a label volume, ``CXY`` a colour image (y, x, c). Any pixel type is accepted
and normalised here, once: volumes to the kernels' dtypes, colour images to RGB uint8 by the
rules of :func:`to_rgb8` (Clara Deploy's "color data type support").
"""

from __future__ import annotations

import numpy as np

ELEMENTS = {"D": "density", "M": "mask", "C": "color"}
#: Display colours of channels 0..5 of multi-channel (e.g. fluorescence) images.
CHANNEL_COLORS = np.array(
    [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)]
)


def parse_order(order: str) -> tuple[str, str]:
    """(element letter, spatial axes) of a dimension order such as ``DXYZ`` or ``CXY``.

    Raises
    ------
    ValueError
        Naming the rule: an element letter D/M/C first, then X, Y and optionally Z, each once.
    """
    o = str(order).upper()
    if len(o) < 3 or o[0] not in ELEMENTS or o[1:] not in ("XY", "XYZ"):
        raise ValueError(
            "dataconfig: expected dimension_order = element D/M/C then XY or XYZ (fastest axis first), "
            f"e.g. DXYZ, MXYZ, CXY; got {order!r}"
        )
    return o[0], o[1:]


def numpy_axes(order: str) -> tuple[str, ...]:
    """numpy (C-order) axis names of an order: slowest first, e.g. ``DXYZ`` → ('Z', 'Y', 'X', 'D')."""
    el, spatial = parse_order(order)
    return tuple(reversed(el + spatial))


def split(array: np.ndarray, order: str) -> tuple[str, np.ndarray]:
    """(element letter, array as (z, y, x, n) or (y, x, n)) of ``array`` laid out in ``order``.

    A missing element axis (shape without the trailing component count) is taken as one component.
    """
    el, spatial = parse_order(order)
    a = np.asarray(array)
    if a.ndim == len(spatial):
        a = a[..., None]
    if a.ndim != len(spatial) + 1:
        raise ValueError(
            f"dataconfig: expected a {len(spatial) + 1}D array (axes {numpy_axes(order)}) for {order}; "
            f"got shape {a.shape}"
        )
    if a.dtype.kind not in "biuf":
        raise ValueError(f"dataconfig: expected a numeric pixel type; got {a.dtype}")
    return el, a


def to_volume(array: np.ndarray, order: str) -> np.ndarray:
    """A (z, y, x) density (``D…XYZ``, first component) or label (``M…XYZ``) volume.

    Integers that fit int16 (or uint8/uint16) keep their values; other types become float32; labels
    must lie in 0..255.
    """
    el, a = split(array, order)
    if a.ndim != 4:
        raise ValueError(f"dataconfig: expected a volume order ending in XYZ; got {order}")
    if el == "C":
        raise ValueError(f"dataconfig: expected a D or M volume; got colour order {order}")
    v = a[..., 0]
    if el == "M":
        if v.min(initial=0) < 0 or v.max(initial=0) > 255 or (v.dtype.kind == "f" and not np.all(v == np.round(v))):
            raise ValueError("dataconfig: expected mask values as integers 0..255")
        return np.ascontiguousarray(v.astype(np.uint8))
    if v.dtype in (np.int16, np.uint8, np.uint16, np.float32):
        return np.ascontiguousarray(v)
    if v.dtype.kind in "biu" and v.size and v.min() >= -32768 and v.max() <= 32767:
        return np.ascontiguousarray(v.astype(np.int16))
    return np.ascontiguousarray(v.astype(np.float32))


def _unit(channel: np.ndarray) -> np.ndarray:
    """One channel scaled to 0..1 float: unsigned ints by their type's full range, floats already in
    0..1 as they are, anything else (signed ints, other floats) stretched from its min to its max."""
    c = channel
    if c.dtype == np.bool_:
        return c.astype(np.float32)
    if c.dtype.kind == "u":
        return c.astype(np.float32) / float(np.iinfo(c.dtype).max)
    f = c.astype(np.float32)
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 1.0)
    if c.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return f
    return (f - lo) / max(hi - lo, 1e-12)


def to_rgb8(image: np.ndarray, order: str = "CXY") -> np.ndarray:
    """An (H, W, 3) uint8 picture of a colour/multi-channel 2D image of any pixel type.

    1 channel: grey; 2: grey + alpha (alpha dropped); 3: RGB; 4: RGBA (alpha dropped); 5 or more:
    each channel in its :data:`CHANNEL_COLORS` colour, summed and clipped (fluorescence style).
    Each channel is scaled by :func:`_unit` before rounding to 0..255.
    """
    el, a = split(image, order)
    if a.ndim != 3:
        raise ValueError(f"dataconfig: expected a 2D order ending in XY; got {order}")
    n = a.shape[2]
    if n in (1, 2):
        g = _unit(a[..., 0])
        rgb = np.repeat(g[..., None], 3, axis=2)
    elif n in (3, 4):
        rgb = np.stack([_unit(a[..., k]) for k in range(3)], axis=2)
    else:
        if n > len(CHANNEL_COLORS):
            raise ValueError(f"dataconfig: expected at most {len(CHANNEL_COLORS)} channels; got {n}")
        rgb = sum(_unit(a[..., k])[..., None] * CHANNEL_COLORS[k] for k in range(n))
    return np.ascontiguousarray(np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8))


def array_entries(meta: dict, where: object) -> dict[str, dict]:
    """``{"image": entry, "mask": entry?}`` from a config.meta ``arrays`` list (ClaraViz DataConfig):
    each entry ``{"file": "x.npy", "dimension_order": "DXYZ", "element_size_mm": [x, y, z],
    "origin_mm": [..], "direction": [9 numbers]}``; one D or C array, at most one M array."""
    arrays = meta.get("arrays")
    if not isinstance(arrays, list) or not arrays or not all(isinstance(a, dict) for a in arrays):
        raise ValueError(f"dataconfig: expected 'arrays' as a list of objects; got {arrays!r} [{where}]")
    out: dict[str, dict] = {}
    for a in arrays:
        el, _ = parse_order(a.get("dimension_order", ""))
        if not str(a.get("file", "")).endswith(".npy"):
            raise ValueError(f"dataconfig: expected each array 'file' to be a .npy file; got {a.get('file')!r}")
        key = "mask" if el == "M" else "image"
        if key in out:
            raise ValueError(f"dataconfig: expected one {key} array; got two [{where}]")
        out[key] = a
    if "image" not in out:
        raise ValueError(f"dataconfig: expected a D (density) or C (colour) array; got only masks [{where}]")
    return out


def _load(folder, entry: dict) -> np.ndarray:
    return np.load(folder / entry["file"], allow_pickle=False)  # no pickles: data files never run code


def load_array_volume(folder, entries: dict[str, dict]):
    """The :class:`Volume` of a D…XYZ array (and M…XYZ labels on the same grid)."""
    from clara_stream.render.volume import Volume

    from clara_stream.geometry import ImageGeometry

    img = entries["image"]
    data = to_volume(_load(folder, img), img["dimension_order"])
    geom = ImageGeometry(
        tuple(img.get("origin_mm", (0.0, 0.0, 0.0))),
        tuple(img.get("element_size_mm", (1.0, 1.0, 1.0))),
        tuple(img.get("direction", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))),
    )
    labels = None
    if "mask" in entries:
        labels = to_volume(_load(folder, entries["mask"]), entries["mask"]["dimension_order"])
        if labels.shape != data.shape:
            raise ValueError(f"dataconfig: expected the mask on the image grid {data.shape}; got {labels.shape}")
    return Volume(data, geom, labels, has_geometry="element_size_mm" in img)


def load_array_image(folder, entries: dict[str, dict]) -> tuple[np.ndarray, tuple[float, float] | None]:
    """(RGB uint8, µm per pixel (x, y) or None) of a C…XY (or D…XY) 2D array."""
    img = entries["image"]
    rgb = to_rgb8(_load(folder, img), img["dimension_order"])
    size = img.get("element_size_mm")
    return rgb, ((float(size[0]) * 1000.0, float(size[1]) * 1000.0) if size else None)


def is_2d(entries: dict[str, dict]) -> bool:
    return parse_order(entries["image"]["dimension_order"])[1] == "XY"


def probe(folder, entries: dict[str, dict]) -> None:
    """Check each array's shape against its order without reading the pixels (memory-mapped)."""
    for key, e in entries.items():
        a = np.load(folder / e["file"], mmap_mode="r", allow_pickle=False)
        el, arr = split(a, e["dimension_order"])
        if key == "mask" and arr.ndim != 4:
            raise ValueError(f"dataconfig: expected the mask as M…XYZ; got {e['dimension_order']}")
        if arr.ndim == 3 and arr.shape[2] > len(CHANNEL_COLORS):
            raise ValueError(f"dataconfig: expected at most {len(CHANNEL_COLORS)} channels; got {arr.shape[2]}")
