"""CPU render kernels, JIT-compiled with numba (parallel over output rows).

All kernels take the volume in (z, y, x) order and describe the output image by an affine map
in *continuous (x, y, z) index space*: pixel (row r, column c) samples
``base + c * du + r * dv`` (and, for ray casting, steps ``t * dstep`` along the ray).
Callers convert from LPS mm once per frame (see :mod:`clara_stream.render.views`).

Notes
-----
Compiled on first use and cached on disk (``cache=True``); numba's thread count follows
``NUMBA_NUM_THREADS``. cupy versions live in :mod:`clara_stream.render.gpu`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_JIT = {"nogil": True, "cache": True, "fastmath": True}


@nb.njit(**_JIT, inline="always")
def _trilinear(vol, x, y, z, fill):  # pragma: no cover - compiled
    nz, ny, nx = vol.shape
    if x < 0.0 or y < 0.0 or z < 0.0 or x > nx - 1 or y > ny - 1 or z > nz - 1:
        return fill
    x0 = min(int(x), nx - 2) if nx > 1 else 0
    y0 = min(int(y), ny - 2) if ny > 1 else 0
    z0 = min(int(z), nz - 2) if nz > 1 else 0
    x1 = min(x0 + 1, nx - 1)
    y1 = min(y0 + 1, ny - 1)
    z1 = min(z0 + 1, nz - 1)
    fx = x - x0
    fy = y - y0
    fz = z - z0
    c00 = vol[z0, y0, x0] * (1.0 - fx) + vol[z0, y0, x1] * fx
    c01 = vol[z0, y1, x0] * (1.0 - fx) + vol[z0, y1, x1] * fx
    c10 = vol[z1, y0, x0] * (1.0 - fx) + vol[z1, y0, x1] * fx
    c11 = vol[z1, y1, x0] * (1.0 - fx) + vol[z1, y1, x1] * fx
    c0 = c00 * (1.0 - fy) + c01 * fy
    c1 = c10 * (1.0 - fy) + c11 * fy
    return c0 * (1.0 - fz) + c1 * fz


TILE = 32  # output pixels per tile edge: a tile's voxel footprint stays in cache on oblique planes


@nb.njit(**_JIT, parallel=True)
def sample_plane_nearest(vol, base, du, dv, out, fill):  # pragma: no cover - compiled
    """Nearest-neighbour samples (for label maps) on a plane into ``out`` (H, W)."""
    h, w = out.shape
    nz, ny, nx = vol.shape
    for r in nb.prange(h):
        for c in range(w):
            x = int(math.floor(base[0] + r * dv[0] + c * du[0] + 0.5))
            y = int(math.floor(base[1] + r * dv[1] + c * du[1] + 0.5))
            z = int(math.floor(base[2] + r * dv[2] + c * du[2] + 0.5))
            if 0 <= x < nx and 0 <= y < ny and 0 <= z < nz:
                out[r, c] = vol[z, y, x]
            else:
                out[r, c] = fill


@nb.njit(**_JIT, inline="always")
def _clip_ray(px, py, pz, sx, sy, sz, nx, ny, nz, nsteps, pad=0.0):  # pragma: no cover - compiled
    """Step range [t0, t1) of the ray p + t·s inside the index box [-pad, n - 1 + pad] (slab method).

    ``pad`` 0 for trilinear samples (the box of voxel centres); 0.5 for nearest samples, whose
    voxels reach half a voxel beyond the centres (without it a ray skips an edge layer).
    """
    t0 = 0.0
    t1 = float(nsteps)
    for p, s, n in ((px, sx, nx), (py, sy, ny), (pz, sz, nz)):
        if abs(s) < 1e-12:
            if p < -pad or p > n - 1 + pad:
                return 0, 0
        else:
            a = (-pad - p) / s
            b = (n - 1 + pad - p) / s
            if a > b:
                a, b = b, a
            t0 = max(t0, a)
            t1 = min(t1, b)
    if t1 < t0:
        return 0, 0
    return int(math.ceil(t0)), int(math.floor(t1)) + 1


@nb.njit(**_JIT, parallel=True)
def sample_plane(vol, base, du, dv, out, fill):  # pragma: no cover - compiled
    """Trilinear samples of ``vol`` on a plane into ``out`` (H, W) float32, in 32×32 tiles.

    Each row's inside span is found analytically (slab clip), so the inner loop has no bounds test.
    """
    h, w = out.shape
    nz, ny, nx = vol.shape
    ty_n = (h + TILE - 1) // TILE
    tx_n = (w + TILE - 1) // TILE
    for t in nb.prange(ty_n * tx_n):
        r0 = (t // tx_n) * TILE
        c0 = (t % tx_n) * TILE
        c1 = min(c0 + TILE, w)
        for r in range(r0, min(r0 + TILE, h)):
            bx = base[0] + r * dv[0]
            by = base[1] + r * dv[1]
            bz = base[2] + r * dv[2]
            lo, hi = _clip_ray(bx, by, bz, du[0], du[1], du[2], nx, ny, nz, w)
            lo = max(lo, c0)
            hi = min(hi, c1)
            for c in range(c0, min(lo, c1)):
                out[r, c] = fill
            for c in range(max(hi, c0), c1):
                out[r, c] = fill
            for c in range(lo, hi):
                x = bx + c * du[0]
                y = by + c * du[1]
                z = bz + c * du[2]
                x0 = min(max(int(x), 0), max(nx - 2, 0))
                y0 = min(max(int(y), 0), max(ny - 2, 0))
                z0 = min(max(int(z), 0), max(nz - 2, 0))
                x1 = min(x0 + 1, nx - 1)
                y1 = min(y0 + 1, ny - 1)
                z1 = min(z0 + 1, nz - 1)
                fx = x - x0
                fy = y - y0
                fz = z - z0
                c00 = vol[z0, y0, x0] + (vol[z0, y0, x1] - vol[z0, y0, x0]) * fx
                c01 = vol[z0, y1, x0] + (vol[z0, y1, x1] - vol[z0, y1, x0]) * fx
                c10 = vol[z1, y0, x0] + (vol[z1, y0, x1] - vol[z1, y0, x0]) * fx
                c11 = vol[z1, y1, x0] + (vol[z1, y1, x1] - vol[z1, y1, x0]) * fx
                a = c00 + (c01 - c00) * fy
                b = c10 + (c11 - c10) * fy
                out[r, c] = a + (b - a) * fz


BLOCK = 8  # edge of the max blocks MIP uses to skip voxels that cannot raise the maximum


def block_max(vol: np.ndarray) -> np.ndarray:
    """Per-8³-block maxima of ``vol`` (edge blocks padded with the volume minimum)."""
    nz, ny, nx = vol.shape
    pz, py, px = (-nz) % BLOCK, (-ny) % BLOCK, (-nx) % BLOCK
    v = np.pad(vol, ((0, pz), (0, py), (0, px)), constant_values=vol.min()) if pz or py or px else vol
    z, y, x = v.shape
    return np.ascontiguousarray(v.reshape(z // BLOCK, BLOCK, y // BLOCK, BLOCK, x // BLOCK, BLOCK).max(axis=(1, 3, 5)))


@nb.njit(**_JIT, inline="always")
def _steps_to_leave_block(p, s, b):  # pragma: no cover - compiled
    """Ray steps until nearest-voxel index along one axis leaves block ``b`` (inf if parallel)."""
    if s > 1e-12:
        return ((b + 1) * BLOCK - 0.5 - p) / s
    if s < -1e-12:
        return (b * BLOCK - 0.5 - p) / s
    return 1e30


@nb.njit(**_JIT, parallel=True)
def mip(vol, labels, hidden, bmax, base, du, dv, dstep, nsteps, out, out_label, fill):  # pragma: no cover
    """Maximum intensity projection (nearest samples) and the label at the maximum.

    Voxels whose label is ``hidden`` (bool per label value, 256) are left out, so "remove ribs"
    removes them from the projection too. ``bmax`` (from :func:`block_max`) lets a ray jump over
    any 8³ block whose maximum cannot beat the best value found so far (exact).
    """
    h, w = out.shape
    nz, ny, nx = vol.shape
    has_labels = labels.shape[0] == nz
    for r in nb.prange(h):
        for c in range(w):
            px = base[0] + r * dv[0] + c * du[0]
            py = base[1] + r * dv[1] + c * du[1]
            pz = base[2] + r * dv[2] + c * du[2]
            t0, t1 = _clip_ray(px, py, pz, dstep[0], dstep[1], dstep[2], nx, ny, nz, nsteps, 0.5)
            best = fill
            lab = 0
            t = t0
            while t < t1:
                fx = px + t * dstep[0]
                fy = py + t * dstep[1]
                fz = pz + t * dstep[2]
                x = int(math.floor(fx + 0.5))
                y = int(math.floor(fy + 0.5))
                z = int(math.floor(fz + 0.5))
                if x < 0 or y < 0 or z < 0 or x >= nx or y >= ny or z >= nz:
                    t += 1
                    continue
                bx = x // BLOCK
                by = y // BLOCK
                bz = z // BLOCK
                if bmax[bz, by, bx] <= best:
                    k = min(
                        _steps_to_leave_block(fx, dstep[0], bx),
                        _steps_to_leave_block(fy, dstep[1], by),
                        _steps_to_leave_block(fz, dstep[2], bz),
                    )
                    t += max(1, int(k) + 1)
                    continue
                v = vol[z, y, x]
                if v > best:
                    if has_labels:
                        lv = labels[z, y, x]
                        if not hidden[lv]:
                            best = v
                            lab = lv
                    else:
                        best = v
                t += 1
            out[r, c] = best
            out_label[r, c] = lab


@nb.njit(**_JIT, parallel=True)
def composite(vol, labels, base, du, dv, dstep, nsteps, lut, lut_lo, lut_scale, label_rgba, grad_scale, out):
    """Front-to-back emission-absorption ray casting (trilinear samples) into ``out`` (H, W, 3).

    ``lut`` (N, 4) maps intensity to RGBA per step; ``label_rgba`` (256, 4) gives a label's colour
    and opacity multiplier (alpha 0 = hidden). Visible samples are lit by a headlight from the
    central-difference gradient (``grad_scale`` = 1/spacing per x, y, z). Rays stop at 0.98 opacity.
    """  # pragma: no cover
    slen = math.sqrt(dstep[0] ** 2 + dstep[1] ** 2 + dstep[2] ** 2) + 1e-12
    h, w = out.shape[0], out.shape[1]
    nz, ny, nx = vol.shape
    nlut = lut.shape[0]
    has_labels = labels.shape[0] == nz
    for r in nb.prange(h):
        for c in range(w):
            px = base[0] + r * dv[0] + c * du[0]
            py = base[1] + r * dv[1] + c * du[1]
            pz = base[2] + r * dv[2] + c * du[2]
            t0, t1 = _clip_ray(px, py, pz, dstep[0], dstep[1], dstep[2], nx, ny, nz, nsteps)
            cr = 0.0
            cg = 0.0
            cb = 0.0
            a = 0.0
            for t in range(t0, t1):
                x = px + t * dstep[0]
                y = py + t * dstep[1]
                z = pz + t * dstep[2]
                v = _trilinear(vol, x, y, z, -1e30)
                i = int((v - lut_lo) * lut_scale)
                if i < 0:
                    continue
                if i >= nlut:
                    i = nlut - 1
                sa = lut[i, 3]
                if sa <= 0.0:
                    continue
                sr = lut[i, 0]
                sg = lut[i, 1]
                sb = lut[i, 2]
                if has_labels:
                    lab = labels[int(z + 0.5), int(y + 0.5), int(x + 0.5)]
                    la = label_rgba[lab, 3]
                    if la <= 0.0:
                        continue
                    if lab > 0 and label_rgba[lab, 0] >= 0.0:  # colour < 0: keep the TF colour
                        sr = label_rgba[lab, 0]
                        sg = label_rgba[lab, 1]
                        sb = label_rgba[lab, 2]
                    sa = sa * la
                    if sa > 1.0:
                        sa = 1.0
                xi = min(max(int(x + 0.5), 1), nx - 2)
                yi = min(max(int(y + 0.5), 1), ny - 2)
                zi = min(max(int(z + 0.5), 1), nz - 2)
                gx = (float(vol[zi, yi, xi + 1]) - float(vol[zi, yi, xi - 1])) * grad_scale[0]
                gy = (float(vol[zi, yi + 1, xi]) - float(vol[zi, yi - 1, xi])) * grad_scale[1]
                gz = (float(vol[zi + 1, yi, xi]) - float(vol[zi - 1, yi, xi])) * grad_scale[2]
                gn = math.sqrt(gx * gx + gy * gy + gz * gz)
                shade = 1.0
                if gn > 1e-6:
                    ndotl = abs(
                        gx * dstep[0] * grad_scale[0] + gy * dstep[1] * grad_scale[1] + gz * dstep[2] * grad_scale[2]
                    ) / (gn * slen)
                    shade = 0.25 + 0.75 * min(ndotl, 1.0)
                sr *= shade
                sg *= shade
                sb *= shade
                wgt = (1.0 - a) * sa
                cr += wgt * sr
                cg += wgt * sg
                cb += wgt * sb
                a += wgt
                if a > 0.98:
                    break
            out[r, c, 0] = cr
            out[r, c, 1] = cg
            out[r, c, 2] = cb
