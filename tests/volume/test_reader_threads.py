"""The volume reader's threads: slices read on two threads, the same ones from one volume to the next."""

from __future__ import annotations

import threading

import numpy as np
import pydicom
from clara_stream.operators.dicom import series as series_mod
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
    real = series_mod.read_pixels
    names: list[set[str]] = []

    def recording(inst, out, fmt, **kw):
        names[-1].add(threading.current_thread().name)
        return real(inst, out, fmt, **kw)

    monkeypatch.setattr(series_mod, "read_pixels", recording)
    for _ in range(5):
        names.append(set())
        vol = series_to_volume(series, workers=2, rescale=False)
    assert all(len(n) == 2 for n in names), names
    pool_threads = set().union(*names) - {threading.current_thread().name}
    assert 1 <= len(pool_threads) <= max(1, series_mod._POOL_SIZE - 1), pool_threads
    ref = np.stack([pydicom.dcmread(i.path).pixel_array for i in vol.instances])
    np.testing.assert_array_equal(vol.array, ref)
