"""The fast receive path against real senders: dcmtk storescu (several transfer syntaxes and SOP
classes, 16 KB and 128 KB PDUs), Orthanc as an SCU (its REST ``/modalities/…/store``), pynetdicom
as an SCU, and 16 KB / 256 KB PDUs from the hand-written SCU. pydicom reading the files we sent is
the oracle for every stored one; Pixel Data is compared as raw bytes (or as pixels where the
sender converted the transfer syntax).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE

from clara_stream.platform.schemas import SourceConfig

from .conftest import NODELAY_ENV
from .test_fast_receive import Env, RawScu, p_data, pdv, split_file, store_rq

FILES = ["JPEG2000.dcm", "SC_rgb_rle.dcm", "MR_small_bigendian.dcm", "rtplan.dcm"]


@pytest.fixture
def env(settings):
    e = Env(settings)
    e.config.create("source", SourceConfig(name="dcmtk", ae_title="STORESCU", host_ip="127.0.0.1"))
    e.config.create("source", SourceConfig(name="orthanc", ae_title="ORTHANC", host_ip="127.0.0.1"))
    yield e
    e.adapter.stop()


@pytest.fixture
def mixed(tmp_path, ct_small) -> list[Path]:
    """Four CT slices (explicit VR LE) and pydicom's J2K, RLE, big-endian MR and implicit RT Plan."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted(ct_small.iterdir())[:4]:
        shutil.copy(p, folder / p.name)
    for name in FILES:
        shutil.copy(get_testdata_file(name, download=False), folder / name)
    return sorted(folder.iterdir())


def _assert_stored_as_sent(env: Env, sent: list[Path]) -> None:
    assert env.store.count() == len(sent)
    for path in sent:
        src = dcmread(path)
        stored = dcmread(env.stored(str(src.SOPInstanceUID)))
        if "PixelData" in src and stored.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID:
            assert stored.PixelData == src.PixelData, path.name  # raw bytes, compressed or not
        elif "PixelData" in src:  # the sender converted it (e.g. big → little endian): same pixels
            np.testing.assert_array_equal(stored.pixel_array, src.pixel_array)
        for elem in src:
            if elem.tag != 0x7FE00010:
                assert stored[elem.tag].value == elem.value, (path.name, elem.keyword)


@pytest.mark.parametrize("pdu", [16384, 131072])  # storescu's range ends at 128 KB
def test_dcmtk_storescu_mixed_syntaxes_and_pdu_sizes(env, dcmtk, mixed, pdu):
    """storescu -R: uncompressed files (explicit LE CT, big-endian MR, implicit RT Plan: several
    contexts), then the J2K file (-xw) and the RLE file (-xr) in their own syntaxes. Fails if a
    context's transfer syntax is mixed up with another's, a compressed dataset is altered, or
    PDUs of either size are framed wrongly."""
    compressed = {"JPEG2000.dcm": "-xw", "SC_rgb_rle.dcm": "-xr"}
    runs = [([p for p in mixed if p.name not in compressed], [])]
    runs += [([p for p in mixed if p.name == name], [flag]) for name, flag in compressed.items()]
    for files, flags in runs:
        r = subprocess.run(
            [dcmtk.storescu, "-R", *flags, "-aet", "STORESCU", "-aec", "INBOX", "--max-send-pdu", str(pdu)]
            + ["127.0.0.1", str(env.port), *map(str, files)],
            env=NODELAY_ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
    _assert_stored_as_sent(env, mixed)
    j2k = dcmread(env.stored(str(dcmread(next(p for p in mixed if p.name == "JPEG2000.dcm")).SOPInstanceUID)))
    assert j2k.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"  # stored as sent, not decoded


def test_orthanc_as_scu_stores_to_us(env, orthanc, mixed):
    """Orthanc's C-STORE SCU (REST /modalities/{id}/store) delivers every instance intact."""
    api = httpx.Client(base_url=f"http://127.0.0.1:{orthanc.http_port}", timeout=60)
    ids = [api.post("/instances", content=p.read_bytes()).raise_for_status().json()["ID"] for p in mixed]
    api.put("/modalities/clara", json={"AET": "INBOX", "Host": "127.0.0.1", "Port": env.port}).raise_for_status()
    r = api.post("/modalities/clara/store", json={"Resources": ids, "Synchronous": True})
    assert r.status_code == 200, r.text
    _assert_stored_as_sent(env, mixed)


def test_pynetdicom_scu_each_file_in_its_own_syntax(env, mixed):
    ae = AE(ae_title="PYSCU")
    for p in mixed:
        ds = dcmread(p, stop_before_pixels=True)
        ae.add_requested_context(str(ds.SOPClassUID), [str(ds.file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", env.port, ae_title="INBOX")
    assert assoc.is_established
    assert [int(assoc.send_c_store(dcmread(p)).Status) for p in mixed] == [0] * len(mixed)
    assoc.release()
    _assert_stored_as_sent(env, mixed)


@pytest.mark.parametrize("pdu", [16 << 10, 256 << 10])
def test_large_instance_in_16k_and_256k_pdus(env, tmp_path, pdu):
    """A 512² CT slice (525 KB) in PDUs of one PDV each: the 256 KB ones take the read path that
    bypasses the buffer. Fails if that path drops or duplicates bytes at its edges."""
    from clara_stream.samples.ct import write_sample

    path = sorted(write_sample(tmp_path / "ct", shape=(2, 512, 512))["dicom"].iterdir())[0]
    body, sop_class, sop_uid, ts = split_file(path)
    scu = RawScu(env.port)
    scu.associate([(1, sop_class, [ts])], max_pdu=16384)
    step = pdu - 6
    pieces = [body[k : k + step] for k in range(0, len(body), step)]
    scu.send(p_data(pdv(1, store_rq(1, sop_class, sop_uid), command=True, last=True)))
    scu.send(b"".join(p_data(pdv(1, p, command=False, last=i == len(pieces) - 1)) for i, p in enumerate(pieces)))
    assert scu.response()["Status"] == 0
    scu.release()
    stored = env.stored(sop_uid).read_bytes()
    assert stored.endswith(body) and dcmread(path).PixelData == dcmread(env.stored(sop_uid)).PixelData


def test_cli_names_the_receive_paths_and_refuses_others(tmp_path):
    """``dicom serve --receive-path`` is validated at start-up: an unknown path exits non-zero naming
    the setting and both choices (fails if the flag is dropped or not validated)."""
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "clara_stream.cli", "dicom", "serve", "--data-dir", str(tmp_path / "d")]
        + ["--dicom-port", "0", "--http-port", "0", "--receive-path", "native"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "receive_path" in out and "'fast' or 'pynetdicom'" in out, out[-2000:]
