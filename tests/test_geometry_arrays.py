"""Geometry against SimpleITK (the reference), frame info, and the zero-copy array API."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from clara_stream import arrays
from clara_stream.geometry import FrameInfo, ImageGeometry

sitk = pytest.importorskip("SimpleITK")


def _oblique() -> ImageGeometry:
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return ImageGeometry((-120.5, 33.0, 7.25), (0.8, 0.9, 2.5), tuple(rot.reshape(-1)))


def test_index_to_physical_matches_simpleitk() -> None:
    geom = _oblique()
    image = geom.apply_to_sitk(sitk.Image(7, 6, 5, sitk.sitkInt16))  # x, y, z sizes
    for zyx in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        expected = image.TransformIndexToPhysicalPoint((zyx[2], zyx[1], zyx[0]))
        assert np.allclose(geom.index_to_physical(zyx), expected, atol=1e-9)
        assert np.allclose(geom.physical_to_index(expected), zyx, atol=1e-9)
    assert ImageGeometry.from_sitk(image).allclose(geom, atol=1e-12)


def test_geometry_round_trips_and_validates() -> None:
    geom = _oblique()
    assert ImageGeometry.from_dict(geom.to_dict()) == geom
    assert geom.distance_mm((0, 0, 0), (1, 0, 0)) == pytest.approx(2.5)
    crop = geom.cropped((1, 2, 3))
    assert np.allclose(crop.origin, geom.index_to_physical((1, 2, 3)))
    assert np.allclose(geom.ras_affine()[:2, 3], [-v for v in geom.origin[:2]])
    with pytest.raises(ValueError, match="spacing > 0"):
        ImageGeometry(spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        ImageGeometry(direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))


def test_frame_info() -> None:
    info = FrameInfo(pts=3003, time_base=Fraction(1, 90000), index=1, rate=Fraction(30000, 1001))
    assert info.time_s == pytest.approx(3003 / 90000)
    assert FrameInfo.from_dict(info.to_dict()) == info
    with pytest.raises(ValueError, match="index"):
        FrameInfo(pts=0, time_base=Fraction(1, 30), index=-1, rate=Fraction(30))


def test_host_paths_are_zero_copy_and_counted() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with arrays.count_copies() as c:
        assert arrays.asarray(a) is a
        assert arrays.to_host(a) is a
        view = arrays.asarray(memoryview(a))  # any __array_interface__/buffer producer
        assert arrays.shares_memory(view, a)
        assert arrays.array_module(a) is np
    assert c.count == 0
    with arrays.count_copies() as c:
        b = arrays.copy(a)
        arrays.ascontiguous(a[:, ::2])
    assert c.count == 2 and c.bytes == a.nbytes + a[:, ::2].nbytes
    assert not arrays.shares_memory(a, b)
    with pytest.raises(TypeError, match="expected an array"):
        arrays.asarray(object())


def test_dlpack_is_zero_copy() -> None:
    a = np.ones((8, 8), np.float32)
    b = arrays.asarray(type("D", (), {"__dlpack__": a.__dlpack__, "__dlpack_device__": a.__dlpack_device__})())
    assert arrays.shares_memory(a, b)


def test_without_gpu_device_paths_fail_clearly() -> None:
    if arrays.gpu_available():
        pytest.skip("a GPU is usable here; the cupy tests cover it")
    with pytest.raises(RuntimeError, match="CUDA device"):
        arrays.to_device(np.zeros(3))
    assert arrays.gpu_unavailable_reason()
    buf = arrays.pinned_empty((4, 4), np.float32)
    assert buf.shape == (4, 4) and buf.dtype == np.float32


@pytest.mark.gpu
def test_cupy_round_trip_counts_two_copies() -> None:
    import cupy

    a = np.arange(12, dtype=np.float32)
    with arrays.count_copies() as c:
        d = arrays.to_device(a)
        assert arrays.array_module(d) is cupy
        assert arrays.to_device(d) is d
        h = arrays.to_host(d)
    assert c.count == 2 and np.array_equal(h, a)
    view = arrays.asarray(type("C", (), {"__cuda_array_interface__": d.__cuda_array_interface__})())
    assert arrays.shares_memory(view, d)
    pinned = arrays.pinned_empty((16,), np.float32)
    pinned[:] = 1
    assert float(arrays.to_device(pinned).sum()) == 16
