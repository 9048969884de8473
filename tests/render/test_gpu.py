"""cupy kernels agree with the CPU kernels (run only where a CUDA device is usable)."""

from __future__ import annotations

import numpy as np
import pytest
from clara_stream.render import gpu, kernels

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _need_gpu():
    if not gpu.available():
        pytest.skip("no usable CUDA device (cupy kernels are exercised on GPU machines only)")


def test_gpu_plane_matches_cpu():
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 2000, (40, 60, 70)).astype(np.int16)
    base, du, dv = np.array([2.5, 3.0, 5.5]), np.array([0.6, 0.1, 0.2]), np.array([-0.1, 0.55, 0.15])
    cpu = np.empty((80, 90), np.float32)
    kernels.sample_plane(data, base, du, dv, cpu, np.float32(-1e9))
    dev = gpu.sample_plane(gpu.device_volume(data), base, du, dv, 90, 80, -1e9)
    inside = (cpu > -1e8) & (dev > -1e8)
    assert inside.sum() > 3000
    np.testing.assert_allclose(dev[inside], cpu[inside], atol=0.05)


def test_gpu_mip_matches_cpu():
    rng = np.random.default_rng(1)
    data = rng.integers(-1000, 2000, (30, 40, 50)).astype(np.int16)
    labels = (data > 1500).astype(np.uint8)
    base, du, dv = np.array([-10.0, -5.0, -8.0]), np.array([0.7, 0.0, 0.1]), np.array([0.0, 0.1, 0.6])
    dstep = np.array([0.2, 0.9, 0.1])
    img = np.empty((60, 70), np.float32)
    lab = np.empty((60, 70), np.uint8)
    hidden = np.zeros(256, bool)
    hidden[1] = True  # the brightest voxels are label 1: hidden, they leave the projection
    kernels.mip(data, labels, hidden, kernels.block_max(data), base, du, dv, dstep, 200, img, lab, np.float32(-1e9))
    dimg, dlab = gpu.mip(gpu.device_volume(data), labels, hidden, base, du, dv, dstep, 200, 70, 60, -1e9)
    assert (img[img > -1e8] <= 1500).all()
    np.testing.assert_array_equal(dimg, img)
    np.testing.assert_array_equal(dlab, lab)
