"""Instance-store recovery: the files are the truth, the index is rebuilt where a crash cut it."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydicom import dcmread

from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.instances import InstanceStore, durable_write
from clara_stream.platform.jobs import JobQueue
from clara_stream.platform.schemas import AeConfig


def test_recover_promotes_complete_temp_files_and_indexes_orphans(tmp_path, ct_small):
    db = Database(tmp_path / "s.sqlite")
    config = ConfigStore(db)
    config.create("ae", AeConfig(name="a", ae_title="ORGANSEG", timeout=1, workflows=["organ_segmentation"]))
    store = InstanceStore(db, tmp_path / "store")
    files = sorted(ct_small.iterdir())
    first = dcmread(files[0], stop_before_pixels=True)
    folder = store.path_for("ORGANSEG", first.StudyInstanceUID, first.SeriesInstanceUID, "x").parent
    folder.mkdir(parents=True)
    uids = [str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files[:4]]
    data = [f.read_bytes() for f in files[:4]]
    # 0: complete temp file whose rename was lost; 1: partial temp file; 2: file without index row
    (folder / f"{uids[0]}.dcm.abc.{len(data[0])}.tmp").write_bytes(data[0])
    (folder / f"{uids[1]}.dcm.abc.{len(data[1])}.tmp").write_bytes(data[1][: len(data[1]) // 2])
    shutil.copy(files[2], folder / f"{uids[2]}.dcm")
    (folder / "junk.dcm").write_bytes(b"not dicom")
    misplaced = store.store_dir / "ORGANSEG" / "9.9" / "9.9.9" / "moved.dcm"  # its UIDs say another folder
    misplaced.parent.mkdir(parents=True)
    shutil.copy(files[4], misplaced)
    # 3: indexed normally, still pending (its association was cut by our crash)
    store.store(
        [data[3]],
        sop_uid=uids[3],
        sop_class="1.2.840.10008.5.1.4.1.1.2",
        study_uid="1.2",
        series_uid="1.2.3",
        called_ae="ORGANSEG",
        calling_ae="X",
        calling_host="127.0.0.1",
        assoc_id="zz",
        grouping="0020,000D",
    )

    done = InstanceStore(db, tmp_path / "store").recover(config)
    assert done == {"promoted": 1, "deleted": 1, "indexed": 2, "completed": 1}
    assert (folder / f"{uids[0]}.dcm").read_bytes() == data[0]
    assert not list(folder.glob("*.tmp"))
    indexed = {r["sop_uid"] for r in db.query("SELECT sop_uid FROM instance WHERE state = 'complete'")}
    assert indexed == {uids[0], uids[2], uids[3]}
    assert (folder / "junk.dcm").exists()  # not an instance: left for a person to look at
    assert misplaced.exists()  # indexed nowhere: its folder would put it under the wrong study
    jobs = store.close_ready_groups(config, JobQueue(db, tmp_path / "jobs"), now=10**10)
    assert len(jobs) == 2  # the phantom study + the study "1.2" of the hand-indexed row


def test_durable_write_handles_many_parts(tmp_path):
    parts = [b"a" * 10, memoryview(b"b" * 100000), b"", b"c"]
    size = durable_write(tmp_path / "x.dcm", parts, tag="t")
    assert size == 100011 and (tmp_path / "x.dcm").read_bytes() == b"a" * 10 + b"b" * 100000 + b"c"
    assert not list(Path(tmp_path).glob("*.tmp"))


def test_exclusive_publish_never_replaces_a_stored_file(tmp_path):
    """Fails if the publish step is a rename: a concurrent writer of the same key would silently
    replace the first patient's file."""
    import pytest

    target = tmp_path / "x.dcm"
    durable_write(target, [b"first"], tag="a", exclusive=True)
    with pytest.raises(FileExistsError):
        durable_write(target, [b"second"], tag="b", exclusive=True)
    assert target.read_bytes() == b"first" and not list(tmp_path.glob("*.tmp"))


def test_pacer_shortens_pynetdicom_polls_only_while_busy(monkeypatch):
    """Fails if idle associations spin (short sleeps outside the busy window) or if the pacing
    touches sleeps longer than pynetdicom's 1 ms poll."""
    from clara_stream.platform import pacing

    asked: list[float] = []
    monkeypatch.setattr(pacing.time, "sleep", asked.append)
    pacer = pacing.Pacer(short_s=0.00005, window_s=3600)
    pacer.sleep(0.001)  # idle: the library's own poll
    pacer.busy()
    pacer.sleep(0.001)
    pacer.sleep(0.0001)
    pacer.sleep(0.1)  # not a poll: untouched
    pacer.busy_until = 0.0  # the window has passed
    pacer.sleep(0.001)
    assert asked == [0.001, 0.00005, 0.00005, 0.1, 0.001]
    assert pacer.monotonic is pacing.time.monotonic  # every other time function is the real one
