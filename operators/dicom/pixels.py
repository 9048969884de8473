"""Stored pixel values of single-frame greyscale instances, exactly as pydicom's ``pixel_array``
(:func:`read_pixels` for one, :func:`read_slices` for a volume's slices on a kept thread pool).

Three paths, fastest first: native little-endian pixels read straight from the file offset the
header pass found; JPEG 2000 / JPEG Lossless / JPEG-LS decoded with imagecodecs (it releases the
GIL, so a thread pool scales); everything else (RLE, big endian, deflated, odd cases) through
pydicom itself. The first two then apply pydicom 3's corrections (``pydicom.pixels.decoders.base``)
so all three give the same values:

* JPEG 2000 (MONOCHROME): when the codestream's signedness differs from PixelRepresentation, shift
  left then right by ``itemsize*8 - precision`` (``J2K_pixelrep_mismatch.dcm``: -2000..1896);
* JPEG-LS with PixelRepresentation 1: the same shift with the codestream's precision;
* otherwise, when BitsAllocated > BitsStored: the bits above BitsStored are ignored — signed data is
  sign-extended from bit BitsStored-1, unsigned data masked (pydicom uses BitsStored, not HighBit).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom

from clara_stream.errors import DicomInputError

from .study import DicomInstance

__all__ = ["PixelFormat", "read_pixels", "read_slices"]

_OP = "SeriesToVolume"
_J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
_JLS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
#: Encapsulated syntaxes decoded with imagecodecs (it also covers JPEG Lossless, which pydicom cannot
#: decode without pylibjpeg-libjpeg or GDCM).
_IMAGECODECS = {
    **dict.fromkeys(_J2K, "jpeg2k_decode"), **dict.fromkeys(_JLS, "jpegls_decode"),
    "1.2.840.10008.1.2.4.57": "ljpeg_decode", "1.2.840.10008.1.2.4.70": "ljpeg_decode",
}  # fmt: skip


class PixelFormat:
    """The stored-pixel facts of a series (from its first instance), checked once."""

    def __init__(self, h: pydicom.Dataset) -> None:
        self.bits_allocated = int(h.get("BitsAllocated", 16))
        if self.bits_allocated not in (8, 16, 32):
            raise DicomInputError(f"{_OP}: expected BitsAllocated 8, 16 or 32; got {self.bits_allocated}")
        self.signed = int(h.get("PixelRepresentation", 0)) == 1
        self.bits_stored = int(h.get("BitsStored", self.bits_allocated) or self.bits_allocated)
        if not 1 <= self.bits_stored <= self.bits_allocated:
            raise DicomInputError(f"{_OP}: expected 1 <= BitsStored <= BitsAllocated {self.bits_allocated}; "
                                  f"got {self.bits_stored}")  # fmt: skip
        self.monochrome = str(h.get("PhotometricInterpretation", "MONOCHROME2")).startswith("MONOCHROME")
        self.dtype = np.dtype(f"{'i' if self.signed else 'u'}{self.bits_allocated // 8}")

    @property
    def value_range(self) -> tuple[int, int]:
        """Smallest and largest stored value after the corrections."""
        if self.signed:
            return -(2 ** (self.bits_stored - 1)), 2 ** (self.bits_stored - 1) - 1
        return 0, 2**self.bits_stored - 1

    def ignore_unused_bits(self, out: np.ndarray) -> None:
        """pydicom's unused-bits correction, in place, on one slice of this format's item size."""
        _shift(out, self.bits_allocated - self.bits_stored, self.signed)


def _shift(out: np.ndarray, bits: int, signed: bool) -> None:
    """Left then right shift by ``bits`` in the signed (sign-extend) or unsigned (mask) sense."""
    if bits <= 0:
        return
    size = out.dtype.itemsize
    if signed:
        view = out.view(f"i{size}")
        np.left_shift(view, bits, out=view)
        np.right_shift(view, bits, out=view)
    else:
        view = out.view(f"u{size}")
        np.bitwise_and(view, (1 << (size * 8 - bits)) - 1, out=view)


def _read_native(inst: DicomInstance, out: np.ndarray) -> bool:
    """Read native pixels straight into ``out`` (one slice); False if this instance needs a decoder."""
    if inst.pixel_offset is None or inst.pixel_length is None or out.nbytes > inst.pixel_length:
        return False
    with open(inst.path, "rb", buffering=0) as f:
        f.seek(inst.pixel_offset)
        n = f.readinto(memoryview(out).cast("B"))
    return n == out.nbytes


def _codestream_params(ts: str, frame: bytes) -> tuple[int | None, bool | None]:
    """(precision, is_signed) from a JPEG 2000 SIZ or JPEG-LS SOF55 marker (None where absent)."""
    if ts in _J2K:
        from pydicom.pixels.utils import get_j2k_parameters

        p = get_j2k_parameters(frame)
        return p.get("precision"), p.get("is_signed")
    i = frame.find(b"\xff\xf7")  # JPEG-LS SOF55: FF F7, length (2), precision (1)
    return (frame[i + 4], None) if i >= 0 and i + 4 < len(frame) else (None, None)


def _read_imagecodecs(inst: DicomInstance, out: np.ndarray, fmt: PixelFormat) -> bool:
    """Decode a single-frame encapsulated instance with imagecodecs into ``out``, corrected like pydicom.

    False when this path does not apply or the codec fails (pydicom then decodes it or names the error).
    """
    name = _IMAGECODECS.get(inst.transfer_syntax)
    if name is None or inst.encapsulated_offset is None or not fmt.monochrome:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    from pydicom.encaps import generate_frames

    with open(inst.path, "rb", buffering=0) as f:
        f.seek(inst.encapsulated_offset)
        data = f.read()
    try:
        frame = next(generate_frames(data, number_of_frames=1))
        arr = getattr(imagecodecs, name)(frame)
    except (ValueError, RuntimeError, StopIteration):  # pydicom's decoders then decode it or name the error
        return False
    if arr.shape != out.shape or arr.dtype.itemsize != fmt.dtype.itemsize:
        return False
    slab = out.view(fmt.dtype) if out.dtype.itemsize == fmt.dtype.itemsize else None
    if slab is None:
        return False
    slab[...] = arr.view(fmt.dtype)  # same bits, the DICOM signedness
    ts = inst.transfer_syntax
    if ts in _J2K or (ts in _JLS and fmt.signed):
        precision, is_signed = _codestream_params(ts, frame)
        precision = precision or fmt.bits_stored
        is_signed = fmt.signed if is_signed is None else is_signed
        if ts in _JLS or is_signed != fmt.signed:
            _shift(slab, fmt.dtype.itemsize * 8 - precision, fmt.signed)
    else:
        fmt.ignore_unused_bits(slab)
    return True


def _read_pydicom(inst: DicomInstance, out: np.ndarray) -> None:
    ds = pydicom.dcmread(inst.path)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # decoder plugins raise many types; name the file and the syntax
        raise DicomInputError(
            f"{_OP}: expected decodable Pixel Data; got {type(exc).__name__}: {exc} "
            f"[{inst.path.name}, transfer syntax {inst.transfer_syntax}]"
        ) from exc
    if arr.shape != out.shape:
        raise DicomInputError(f"{_OP}: expected one frame {out.shape}; got {arr.shape} [{inst.path.name}]")
    out[...] = arr


def read_pixels(inst: DicomInstance, out: np.ndarray, fmt: PixelFormat, *, native_only: bool = False) -> bool:
    """Fill ``out`` (one (rows, cols) slice) with the instance's stored values, as pydicom gives them.

    ``out`` has the item size of ``fmt`` (any signedness: values that fit are the same bits). With
    ``native_only`` only the direct read is tried (False: the caller decodes it later, in a pool).

    Raises
    ------
    DicomInputError
        If pydicom cannot decode the instance (names the file and the transfer syntax).
    """
    if _read_native(inst, out):
        fmt.ignore_unused_bits(out)
        return True
    if native_only:
        return False
    if not _read_imagecodecs(inst, out, fmt):
        _read_pydicom(inst, out)
    return True


_POOL_SIZE = min(8, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _in_runs(fn, runs: list[Sequence[int]]) -> list[int]:
    """``fn`` over each run, the first in this thread and the others on the shared reader pool
    (kept between volumes: starting threads per volume costs milliseconds on a busy box)."""
    global _pool
    if len(runs) > 1:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, _POOL_SIZE - 1), thread_name_prefix="dicom-pixels")
    futures = [_pool.submit(fn, r) for r in runs[1:]] if len(runs) > 1 else []
    out = fn(runs[0]) if runs else []
    for f in futures:
        out += f.result()
    return sorted(out)


def read_slices(
    instances: Sequence[DicomInstance],
    buf: np.ndarray,
    fmt: PixelFormat,
    *,
    workers: int | None = None,
    shift: np.integer | None = None,
) -> None:
    """Fill ``buf[k]`` with instance k's stored values (as :func:`read_pixels`), ``shift`` added.

    Native slices are read in one contiguous run per thread, each slice shifted while still in
    cache; compressed ones are then dealt out to the threads in turn. Reads, numpy and the codecs
    release the GIL; the calling thread takes the first run, a pool kept between volumes the others.

    Parameters
    ----------
    workers : threads (default: CPU count, at most 8; 1: the calling thread only).
    shift : added to every slice in place (an integer intercept on an int16 volume), or None.
    """
    n = len(instances)
    threads = max(1, min(workers or _POOL_SIZE, _POOL_SIZE, n))

    def native(ks: Sequence[int]) -> list[int]:
        left = []
        for k in ks:
            if not read_pixels(instances[k], buf[k], fmt, native_only=True):
                left.append(k)
            elif shift is not None:
                buf[k] += shift
        return left

    def decode(ks: Sequence[int]) -> list[int]:
        for k in ks:
            read_pixels(instances[k], buf[k], fmt)
        return []

    pending = _in_runs(native, [range(n * i // threads, n * (i + 1) // threads) for i in range(threads)])
    if pending:
        _in_runs(decode, [pending[i::threads] for i in range(min(threads, len(pending)))])
        if shift is not None:
            buf[pending] += shift
