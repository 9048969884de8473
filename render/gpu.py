"""cupy versions of the MPR and MIP kernels, used when a CUDA device is usable.

Same index-space conventions as :mod:`clara_stream.render.kernels` (pixel (r, c) samples
``base + c·du + r·dv``; rays step by ``dstep``). One CUDA thread per output pixel; the volume is
uploaded once per dataset and kept on the device (:func:`device_volume`).

Notes
-----
Checked only where a GPU is present (``tests/render/test_gpu.py`` is skipped otherwise); the CPU
kernels remain the reference.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_SRC = r"""
template <typename T>
__device__ float tri(const T* v, int nx, int ny, int nz, float x, float y, float z, float fill) {
    if (x < 0.f || y < 0.f || z < 0.f || x > nx - 1 || y > ny - 1 || z > nz - 1) return fill;
    int x0 = min((int)x, max(nx - 2, 0)), y0 = min((int)y, max(ny - 2, 0)), z0 = min((int)z, max(nz - 2, 0));
    int x1 = min(x0 + 1, nx - 1), y1 = min(y0 + 1, ny - 1), z1 = min(z0 + 1, nz - 1);
    float fx = x - x0, fy = y - y0, fz = z - z0;
    long sy = nx, sz = (long)nx * ny;
    #define V(a, b, c) (float)v[(long)(c) * sz + (long)(b) * sy + (a)]
    float c00 = V(x0, y0, z0) + (V(x1, y0, z0) - V(x0, y0, z0)) * fx;
    float c01 = V(x0, y1, z0) + (V(x1, y1, z0) - V(x0, y1, z0)) * fx;
    float c10 = V(x0, y0, z1) + (V(x1, y0, z1) - V(x0, y0, z1)) * fx;
    float c11 = V(x0, y1, z1) + (V(x1, y1, z1) - V(x0, y1, z1)) * fx;
    #undef V
    float a = c00 + (c01 - c00) * fy, b = c10 + (c11 - c10) * fy;
    return a + (b - a) * fz;
}

template <typename T>
__global__ void sample_plane(const T* v, int nx, int ny, int nz, const double* f, float* out, int w, int h,
                             float fill) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y * blockDim.y + threadIdx.y;
    if (c >= w || r >= h) return;
    float x = f[0] + c * f[3] + r * f[6], y = f[1] + c * f[4] + r * f[7], z = f[2] + c * f[5] + r * f[8];
    out[r * w + c] = tri(v, nx, ny, nz, x, y, z, fill);
}

template <typename T>
__global__ void mip(const T* v, const unsigned char* lab, const bool* hidden, int nx, int ny, int nz,
                    const double* f, int nsteps, float* out, int* arg, int w, int h, float fill) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y * blockDim.y + threadIdx.y;
    if (c >= w || r >= h) return;
    float px = f[0] + c * f[3] + r * f[6], py = f[1] + c * f[4] + r * f[7], pz = f[2] + c * f[5] + r * f[8];
    float best = fill; int where = -1;
    for (int t = 0; t < nsteps; ++t) {
        int x = (int)floorf(px + t * f[9] + 0.5f), y = (int)floorf(py + t * f[10] + 0.5f);
        int z = (int)floorf(pz + t * f[11] + 0.5f);
        if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz) continue;
        long i = ((long)z * ny + y) * nx + x;
        float s = (float)v[i];
        if (s > best && (lab == nullptr || !hidden[lab[i]])) { best = s; where = (int)i; }
    }
    out[r * w + c] = best; arg[r * w + c] = where;
}
"""
_TYPES = {
    np.dtype(np.int16): "short",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.float32): "float",
}


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when cupy imports and a CUDA device answers (and CLARA_STREAM_RENDER_GPU != 0)."""
    if os.environ.get("CLARA_STREAM_RENDER_GPU", "1") == "0":
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # cupy missing, no driver, or no device: the CPU kernels are used
        return False


_DISABLED: list[str] = []


def usable() -> bool:
    """A device answers and no GPU kernel has failed in this process."""
    return not _DISABLED and available()


def disable(exc: BaseException) -> None:
    """Stop using the GPU for the rest of the process after a kernel failed (logged once)."""
    if not _DISABLED:
        log.warning("render.gpu: falling back to the CPU kernels after %s: %s", type(exc).__name__, exc)
    _DISABLED.append(f"{type(exc).__name__}: {exc}")


@functools.cache
def _module() -> Any:
    import cupy

    names = [f"{k}<{t}>" for k in ("sample_plane", "mip") for t in _TYPES.values()]
    return cupy.RawModule(code=_SRC, options=("-std=c++14",), name_expressions=names)


def _kernel(name: str, dtype: np.dtype) -> Any:
    if np.dtype(dtype) not in _TYPES:
        raise TypeError(f"render.gpu: expected a volume dtype in {[str(t) for t in _TYPES]}; got {dtype}")
    return _module().get_function(f"{name}<{_TYPES[np.dtype(dtype)]}>")


def device_volume(data: np.ndarray) -> Any:
    """A cupy copy of ``data`` (callers cache it per dataset)."""
    import cupy

    return cupy.ascontiguousarray(cupy.asarray(data))


_LABELS: dict[int, Any] = {}


def _device_labels(labels: np.ndarray | None) -> Any:
    """Device copy of a label volume, cached by the host array's identity."""
    if labels is None:
        return None
    import cupy

    key = id(labels)
    if key not in _LABELS:
        _LABELS.clear()
        _LABELS[key] = cupy.asarray(np.ascontiguousarray(labels))
    return _LABELS[key]


def _launch(w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    block = (16, 16)
    return ((w + 15) // 16, (h + 15) // 16), block


def sample_plane(vol_d: Any, base, du, dv, width: int, height: int, fill: float) -> np.ndarray:
    """Trilinear plane samples on the GPU; returns a host float32 (height, width) array."""
    import cupy

    nz, ny, nx = vol_d.shape
    f = cupy.asarray(np.concatenate([base, du, dv]).astype(np.float64))
    out = cupy.empty((height, width), cupy.float32)
    grid, block = _launch(width, height)
    _kernel("sample_plane", vol_d.dtype)(
        grid,
        block,
        (vol_d, np.int32(nx), np.int32(ny), np.int32(nz), f, out, np.int32(width), np.int32(height), np.float32(fill)),
    )
    return cupy.asnumpy(out)


def mip(
    vol_d: Any, labels: np.ndarray | None, base, du, dv, dstep, nsteps: int, width: int, height: int, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """MIP on the GPU; returns host (image float32, label at the maximum uint8)."""
    import cupy

    nz, ny, nx = vol_d.shape
    f = cupy.asarray(np.concatenate([base, du, dv, dstep]).astype(np.float64))
    out = cupy.empty((height, width), cupy.float32)
    arg = cupy.empty((height, width), cupy.int32)
    grid, block = _launch(width, height)
    _kernel("mip", vol_d.dtype)(
        grid,
        block,
        (
            vol_d,
            np.int32(nx),
            np.int32(ny),
            np.int32(nz),
            f,
            np.int32(nsteps),
            out,
            arg,
            np.int32(width),
            np.int32(height),
            np.float32(fill),
        ),
    )
    img, where = cupy.asnumpy(out), cupy.asnumpy(arg)
    lab = np.zeros((height, width), np.uint8)
    if labels is not None:
        hit = where >= 0
        lab[hit] = labels.reshape(-1)[where[hit]]
    return img, lab
