"""The volume reader's threads: slices read on two threads, the same ones from one volume to the next."""

from __future__ import annotations

import threading

import numpy as np
import pydicom
from clara_stream.operators.dicom import pixels as pixels_mod
from clara_stream.operators.dicom.series import series_to_volume
from clara_stream.operators.dicom.study import scan_study

from clara_stream.samples.ct import write_sample


def test_slices_are_read_on_two_threads_kept_between_volumes(tmp_path, monkeypatch):
    """Five reads of one series with ``workers=2`` each read slices in two threads, and together
    use at most the shared pool's threads: fails if the reader starts a pool per volume (ten
    threads here; each start costs milliseconds on a busy box) or reads on one thread only.
    The voxels stay pydicom's."""
    dicom = write_sample(tmp_path / "ct", shape=(9, 40, 56), shuffle_names=True)["dicom"]
    (series,) = scan_study(dicom).all_series()
    real = pixels_mod.read_pixels
    names: list[set[str]] = []

    def recording(inst, out, fmt, **kw):
        names[-1].add(threading.current_thread().name)
        return real(inst, out, fmt, **kw)

    monkeypatch.setattr(pixels_mod, "read_pixels", recording)
    for _ in range(5):
        names.append(set())
        vol = series_to_volume(series, workers=2, rescale=False)
    assert all(len(n) == 2 for n in names), names
    pool_threads = set().union(*names) - {threading.current_thread().name}
    assert 1 <= len(pool_threads) <= max(1, pixels_mod._POOL_SIZE - 1), pool_threads
    ref = np.stack([pydicom.dcmread(i.path).pixel_array for i in vol.instances])
    np.testing.assert_array_equal(vol.array, ref)


def test_a_forked_child_reads_with_a_pool_of_its_own(tmp_path):
    """A process forked after a volume was read (a prefork worker) reads the next volume too:
    fails (the child waits forever, stopped by the timeout) if it inherits the parent's pool,
    whose threads do not exist in the child."""
    import multiprocessing

    dicom = write_sample(tmp_path / "ct", shape=(6, 32, 48))["dicom"]
    (series,) = scan_study(dicom).all_series()
    series_to_volume(series, workers=2)  # the parent's pool now exists, its thread idle
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        shape = pool.apply_async(_read_shape, (dicom,)).get(timeout=60)
    assert shape == (6, 32, 48)


def _read_shape(dicom) -> tuple[int, ...]:
    (series,) = scan_study(dicom).all_series()
    return series_to_volume(series, workers=2).array.shape
