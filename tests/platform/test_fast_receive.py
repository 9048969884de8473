"""The fast receive path spoken to byte by byte: a hand-written SCU (PS3.8 PDUs built with
``struct`` here, not by the code under test) drives the adapter's own upper layer.

Oracles: the exact dataset bytes sent (the stored file must hold them after its file meta),
pydicom reading the stored file, and pydicom decoding the C-STORE-RSP command set.
"""

from __future__ import annotations

import io
import logging
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

from clara_stream.platform.adapter import DicomAdapter
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import Database
from clara_stream.platform.instances import InstanceStore
from clara_stream.platform.schemas import AeConfig, SourceConfig

from .conftest import wait_until

VERIFICATION = "1.2.840.10008.1.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


def _uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\x00" if len(raw) % 2 else raw


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(called: str, calling: str, contexts: list[tuple[int, str, list[str]]], max_pdu: int = 0) -> bytes:
    """A-ASSOCIATE-RQ (PS3.8 §9.3.2) for ``contexts`` of (id, abstract syntax, transfer syntaxes)."""
    items = _item(0x10, APP_CONTEXT.encode())
    for cid, abstract, syntaxes in contexts:
        sub = _item(0x30, abstract.encode()) + b"".join(_item(0x40, ts.encode()) for ts in syntaxes)
        items += _item(0x20, bytes([cid, 0, 0, 0]) + sub)
    items += _item(0x50, _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4"))
    body = struct.pack(">HH16s16s32x", 1, 0, called.ljust(16).encode(), calling.ljust(16).encode()) + items
    return struct.pack(">BBI", 1, 0, len(body)) + body


def store_rq(message_id: int, sop_class: str, sop_uid: str) -> bytes:
    """A C-STORE-RQ command set, implicit VR little endian (PS3.7 §9.3.1.1)."""
    elems = [
        (0x0002, _uid(sop_class)),
        (0x0100, struct.pack("<H", 0x0001)),
        (0x0110, struct.pack("<H", message_id)),
        (0x0700, struct.pack("<H", 0)),
        (0x0800, struct.pack("<H", 0x0000)),
        (0x1000, _uid(sop_uid)),
    ]
    body = b"".join(struct.pack("<HHI", 0, e, len(v)) + v for e, v in elems)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def echo_rq(message_id: int) -> bytes:
    elems = [(0x0002, _uid(VERIFICATION)), (0x0100, b"\x30\x00"), (0x0110, struct.pack("<H", message_id))]
    elems.append((0x0800, struct.pack("<H", 0x0101)))
    body = b"".join(struct.pack("<HHI", 0, e, len(v)) + v for e, v in elems)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def pdv(cid: int, data: bytes, *, command: bool, last: bool) -> bytes:
    return struct.pack(">IBB", len(data) + 2, cid, int(command) | (2 if last else 0)) + data


def p_data(*pdvs: bytes) -> bytes:
    body = b"".join(pdvs)
    return struct.pack(">BBI", 4, 0, len(body)) + body


def split_file(path: str | Path) -> tuple[bytes, str, str, str]:
    """(dataset bytes exactly as in the file, SOP class, SOP instance, transfer syntax)."""
    raw = Path(path).read_bytes()
    fp = io.BytesIO(raw)
    read_preamble(fp, False)
    ts = str(_read_file_meta_info(fp).TransferSyntaxUID)
    ds = dcmread(path, stop_before_pixels=True)  # the dataset's own UIDs (some files' meta disagree)
    return raw[fp.tell() :], str(ds.SOPClassUID), str(ds.SOPInstanceUID), ts


class RawScu:
    """A TCP client that writes the PDUs it is given and reads PDUs back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(60)  # liveness guard only

    def send(self, data: bytes, chunk: int = 0) -> None:
        step = chunk or len(data)
        for i in range(0, len(data), step):
            self.sock.sendall(data[i : i + step])

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            got = self.sock.recv(n - len(out))
            if not got:
                raise ConnectionError("closed")
            out += got
        return out

    def pdu(self) -> tuple[int, bytes]:
        kind, _, length = struct.unpack(">BBI", self._exact(6))
        return kind, self._exact(length)

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def associate(self, contexts, max_pdu: int = 0, called: str = "INBOX") -> dict[int, tuple[int, str]]:
        """Associate; returns {context id: (result, transfer syntax)} from the A-ASSOCIATE-AC."""
        self.send(associate_rq(called, "PYSCU", contexts, max_pdu))
        kind, body = self.pdu()
        assert kind == 2, f"expected A-ASSOCIATE-AC; got PDU type {kind}"
        out, i = {}, 68
        while i < len(body):
            kind, length = body[i], struct.unpack(">H", body[i + 2 : i + 4])[0]
            if kind == 0x21:
                sub = body[i + 8 : i + 4 + length]
                out[body[i + 4]] = (body[i + 6], sub[4:].rstrip(b"\x00").decode())
            i += 4 + length
        return out

    def response(self) -> dict:
        """The next DIMSE response command set, decoded by pydicom (all its fragments)."""
        raw = b""
        while True:
            kind, body = self.pdu()
            assert kind == 4, f"expected P-DATA-TF; got PDU type {kind}"
            i = 0
            while i < len(body):
                n, control = struct.unpack(">I", body[i : i + 4])[0], body[i + 5]
                assert control & 1, "a response carries no dataset"
                raw += body[i + 6 : i + 4 + n]
                i += 4 + n
                if control & 2:
                    ds = read_dataset(io.BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
                    return {e.keyword: e.value for e in ds}

    def release(self) -> None:
        self.send(struct.pack(">BBI4x", 5, 0, 4))
        assert self.pdu()[0] == 6  # A-RELEASE-RP
        self.sock.close()


class Env:
    def __init__(self, settings) -> None:
        data = Path(settings.data_dir)
        self.settings = settings
        self.db = Database(data / "state.sqlite")
        self.config = ConfigStore(self.db)
        self.store = InstanceStore(self.db, data / "store")
        self.config.create("source", SourceConfig(name="py", ae_title="PYSCU", host_ip="127.0.0.1"))
        self.config.create("ae", AeConfig(name="inbox", ae_title="INBOX"))
        self.adapter = DicomAdapter(settings, self.config, self.store)
        self.port = self.adapter.start()

    def stored(self, sop_uid: str) -> Path:
        (row,) = self.db.query("SELECT path FROM instance WHERE sop_uid = ?", (sop_uid,))
        return Path(row["path"])

    def files(self) -> list[Path]:
        return [p for p in self.store.store_dir.rglob("*") if p.is_file()]


@pytest.fixture
def env(settings):
    assert settings.receive_path == "fast"  # the default this file is about
    e = Env(settings)
    yield e
    e.adapter.stop()


PYDICOM_FILES = ["CT_small.dcm", "rtplan.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"]
PYDICOM_FILES += ["image_dfl.dcm"]


def test_stored_files_hold_the_sent_dataset_bytes_exactly(env):
    """Six transfer syntaxes (explicit, implicit, big endian, J2K, RLE, deflated) on six contexts of
    one association, each dataset in 1000-byte PDVs (many PDUs), written to the socket 997 bytes
    at a time. Fails if a PDV header or PDU boundary is mis-counted, the read buffer's tail is lost
    when it is compacted, or a dataset lands under another context's transfer syntax."""
    files = [split_file(get_testdata_file(n, download=False)) for n in PYDICOM_FILES]
    scu = RawScu(env.port)
    accepted = scu.associate([(2 * i + 1, f[1], [f[3]]) for i, f in enumerate(files)])
    assert accepted == {2 * i + 1: (0, f[3]) for i, f in enumerate(files)}
    for i, (body, sop_class, sop_uid, _ts) in enumerate(files):
        cid = 2 * i + 1
        scu.send(p_data(pdv(cid, store_rq(i + 1, sop_class, sop_uid), command=True, last=True)))
        pieces = [body[k : k + 1000] for k in range(0, len(body), 1000)]
        last = len(pieces) - 1
        stream = b"".join(
            p_data(*(pdv(cid, p, command=False, last=k + j == last) for j, p in enumerate(pieces[k : k + 3])))
            for k in range(0, len(pieces), 3)
        )
        scu.send(stream, chunk=997)
        rsp = scu.response()
        assert (rsp["Status"], rsp["MessageIDBeingRespondedTo"], rsp["CommandField"]) == (0, i + 1, 0x8001)
        assert rsp["AffectedSOPInstanceUID"] == sop_uid
    scu.release()
    for (body, _, sop_uid, ts), name in zip(files, PYDICOM_FILES):
        stored = env.stored(sop_uid).read_bytes()
        assert stored.endswith(body) and len(stored) - len(body) < 400, name  # the meta, then the bytes sent
        ds, sent = dcmread(io.BytesIO(stored)), dcmread(get_testdata_file(name, download=False))
        assert str(ds.file_meta.TransferSyntaxUID) == ts and str(ds.file_meta.MediaStorageSOPInstanceUID) == sop_uid
        assert ds == sent, name  # every element, as pydicom reads them
        if "PixelData" in sent:
            assert ds.PixelData == sent.PixelData  # raw bytes


def test_command_and_dataset_share_pdus_and_the_command_is_fragmented(env, ct_small):
    """The command in two fragments over two PDUs, its last fragment and the first dataset PDVs in
    one PDU, odd PDV sizes, the stream dribbled 13 bytes at a time; then a C-ECHO on the
    Verification context. Fails if a PDU is assumed to hold one PDV, or command and dataset
    fragments of one PDU are told apart wrongly."""
    body, sop_class, sop_uid, ts = split_file(sorted(ct_small.iterdir())[0])
    scu = RawScu(env.port)
    assert scu.associate([(1, sop_class, [ts]), (3, VERIFICATION, [IMPLICIT])]) == {1: (0, ts), 3: (0, IMPLICIT)}
    cmd = store_rq(7, sop_class, sop_uid)
    cuts = [0, 1, 4093, 6000, len(body)]
    data = [pdv(1, body[a:b], command=False, last=b == len(body)) for a, b in zip(cuts, cuts[1:])]
    scu.send(p_data(pdv(1, cmd[:10], command=True, last=False)), chunk=13)
    scu.send(p_data(pdv(1, cmd[10:], command=True, last=True), data[0], data[1]), chunk=13)
    scu.send(p_data(*data[2:]), chunk=13)
    rsp = scu.response()
    assert rsp["Status"] == 0 and rsp["MessageIDBeingRespondedTo"] == 7
    scu.send(p_data(pdv(3, echo_rq(8), command=True, last=True)))
    rsp = scu.response()
    assert (rsp["CommandField"], rsp["Status"], rsp["MessageIDBeingRespondedTo"]) == (0x8030, 0, 8)
    scu.release()
    assert env.stored(sop_uid).read_bytes().endswith(body)


def test_max_pdu_of_the_peer_bounds_our_responses(env, ct_small):
    """A peer that receives at most 64-byte PDUs gets the C-STORE-RSP in fragments that fit.
    Fails if the peer's Maximum Length is ignored (one ~150-byte PDU)."""
    body, sop_class, sop_uid, ts = split_file(sorted(ct_small.iterdir())[1])
    scu = RawScu(env.port)
    scu.associate([(1, sop_class, [ts])], max_pdu=64)
    cmd = pdv(1, store_rq(1, sop_class, sop_uid), command=True, last=True)
    scu.send(p_data(cmd, pdv(1, body, command=False, last=True)))
    raw, sizes = b"", []
    while True:
        kind, pdu = scu.pdu()
        sizes.append(len(pdu))
        raw += pdu[6:]
        if pdu[5] & 2:
            break
    assert max(sizes) <= 64 and len(sizes) > 1
    assert read_dataset(io.BytesIO(raw), is_implicit_VR=True, is_little_endian=True).Status == 0
    scu.release()


@pytest.mark.parametrize("how", ["a-abort", "tcp-close"])
def test_abort_mid_dataset_stores_and_acknowledges_nothing(env, ct_small, how):
    """Half a dataset, then A-ABORT (or the connection dropped): no response was sent, no file, no
    temp file and no row remain. Fails if a partial dataset is stored, or a temp file is left."""
    body, sop_class, sop_uid, ts = split_file(sorted(ct_small.iterdir())[2])
    scu = RawScu(env.port)
    scu.associate([(1, sop_class, [ts])])
    scu.send(p_data(pdv(1, store_rq(1, sop_class, sop_uid), command=True, last=True)))
    scu.send(p_data(pdv(1, body[: len(body) // 2], command=False, last=False)))
    if how == "a-abort":
        scu.send(struct.pack(">BBI4B", 7, 0, 4, 0, 0, 0, 0))
        assert scu.closed()  # the SCP closed the connection without sending anything back
    scu.sock.close()
    wait_until(lambda: env.adapter.active_count() == 0, "the association ended")
    assert env.store.count() == 0 and env.files() == []


@pytest.mark.parametrize(
    "pdu, reason, logged",
    [
        (struct.pack(">BBI", 0x09, 0, 2) + b"\x00\x00", 1, "got PDU type 0x09"),
        (p_data(pdv(1, b"x" * 10, command=True, last=True))[:6] + struct.pack(">I", 999) + b"\x01\x03", 6, "PDV item"),
        (struct.pack(">BBI", 0x02, 0, 4) + b"\x00" * 4, 2, "got PDU type 0x02"),
        (p_data(pdv(5, b"x" * 10, command=True, last=True)), 6, "accepted presentation context; got 5"),
        (p_data(pdv(1, b"x" * 10, command=False, last=True)), 6, "expected a command before a dataset"),
    ],
    ids=["unknown-type", "pdv-longer-than-pdu", "unexpected-ac", "unknown-context", "dataset-without-command"],
)
def test_broken_pdus_get_a_provider_abort_with_the_reason_logged(env, ct_small, caplog, pdu, reason, logged):
    """Fails if a broken PDU is ignored, answered with the wrong A-ABORT source/reason, or not logged;
    the service goes on serving (a C-ECHO on a new association)."""
    _, sop_class, _, ts = split_file(sorted(ct_small.iterdir())[0])
    scu = RawScu(env.port)
    scu.associate([(1, sop_class, [ts])])
    with caplog.at_level(logging.WARNING, logger="clara_stream.platform.fast_scp"):
        scu.send(pdu)
        kind, body = scu.pdu()
        assert (kind, body[2], body[3]) == (7, 2, reason)  # A-ABORT, source: service provider
        scu.sock.close()  # the peer closes after an A-ABORT (the SCP waits for that, up to ARTIM)
        wait_until(lambda: env.adapter.active_count() == 0, "the association ended")
    assert any(logged in r.getMessage() and "A-ABORT" in r.getMessage() for r in caplog.records), caplog.text
    ok = RawScu(env.port)
    ok.associate([(1, VERIFICATION, [IMPLICIT])])
    ok.send(p_data(pdv(1, echo_rq(1), command=True, last=True)))
    assert ok.response()["Status"] == 0
    ok.release()


def test_refusals_and_timeouts_behave_as_on_the_pynetdicom_path(settings, caplog):
    """Unknown calling AE: A-ASSOCIATE-RJ (permanent, user, calling AE not recognised). A peer that
    never sends its request is cut after the ACSE timeout; an idle association after the network
    timeout, with an A-ABORT first; its slot comes back. Fails if either timeout is missing."""
    settings.acse_timeout_s, settings.network_timeout_s = 2.0, 2.0  # 0.5 s: a stalled test thread lost the race
    e = Env(settings)
    try:
        rq = RawScu(e.port)
        rq.send(associate_rq("INBOX", "INTRUDER", [(1, VERIFICATION, [IMPLICIT])]))
        kind, body = rq.pdu()
        assert (kind, body[1], body[2], body[3]) == (3, 1, 1, 3)
        silent = RawScu(e.port)
        assert silent.closed()  # ARTIM
        idle = RawScu(e.port)
        idle.associate([(1, VERIFICATION, [IMPLICIT])])
        assert e.adapter.active_count() == 1
        kind, body = idle.pdu()
        assert kind == 7 and idle.closed()
        wait_until(lambda: e.adapter.active_count() == 0, "the idle association's slot returned")
    finally:
        e.adapter.stop()


@pytest.mark.parametrize(
    "sop_class, sop_uid, ts",
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.45", "1.2.840.10008.1.2.4.91"),
    ],
)
def test_file_head_is_what_pydicom_writes(sop_class, sop_uid, ts):
    """Our hand-encoded File Meta Information equals pydicom's writer byte for byte (odd and even
    UID lengths). Fails if a UID is not padded, the group length is off, or the OB header is wrong."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pynetdicom.dsutils import create_file_meta

    from clara_stream.platform.instances import file_head

    ref = DicomBytesIO()
    ref.is_little_endian, ref.is_implicit_VR = True, False
    write_file_meta_info(ref, create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_uid, transfer_syntax=ts))
    assert file_head(sop_class, sop_uid, ts) == b"\x00" * 128 + b"DICM" + ref.getvalue()


def test_reader_keeps_bytes_across_buffer_refills():
    """The upper layer's reader on a 64-byte buffer (so headers straddle its end and it must move
    the unread tail to the front) parses a stream of P-DATA-TF PDUs whose PDVs are 1 to 200 bytes
    (small ones through the buffer, big ones straight from the socket). Fails if the tail is lost
    or duplicated when the buffer is refilled, or a payload edge is off by one."""
    from clara_stream.platform.upper_layer import Reader

    rng = np.random.default_rng(7)
    sizes = [200 if i % 7 == 0 else int(n) for i, n in enumerate(rng.integers(1, 40, 80))]  # mostly small
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    stream = b"".join(p_data(pdv(1 + 2 * (i % 3), p, command=False, last=i % 5 == 0)) for i, p in enumerate(payloads))
    a, b = socket.socketpair()
    with a, b:
        a.sendall(stream)  # all of it waits in the socket: refills fill the buffer to its end
        reader, got = Reader(b, size=64), []
        for i, p in enumerate(payloads):
            assert reader.header() == (4, len(p) + 6)
            assert reader.pdv_header() == (len(p) + 2, 1 + 2 * (i % 3), 2 if i % 5 == 0 else 0)
            dst = bytearray(len(p))
            reader.copy_into(memoryview(dst), len(p))
            got.append(bytes(dst))
    assert got == payloads
