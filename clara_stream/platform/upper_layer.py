"""The DICOM upper layer (PS3.8) of the storage SCP's fast receive path: framing and codecs.

pynetdicom runs every PDU of an association through its DUL and association reactor threads
(two polling threads per association; py-spy put them at ~2/3 of the receive path). The fast
path keeps pynetdicom for what must be right once per association — decoding the
A-ASSOCIATE-RQ, negotiating presentation contexts and encoding the A-ASSOCIATE-AC
(:mod:`pynetdicom.pdu`, :mod:`pynetdicom.presentation`), reused for a request of the same bytes
(:class:`Negotiations`) — and does the per-PDU work here, on the
association's one thread: PDUs read through one large ``recv_into`` buffer, PDV payloads copied
once into the message's buffer, the group-0000 command set decoded and the response encoded by
hand (implicit VR little endian, PS3.7 §6.3.1). The loop itself is :mod:`clara_stream.platform.fast_scp`.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_unrestricted

# PDU types (PS3.8 §9.3)
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 1, 2, 3, 4, 5, 6, 7
# A-ABORT reasons when the source is the service provider (PS3.8 §9.3.8)
ABORT_NOT_SPECIFIED, ABORT_UNRECOGNIZED_PDU, ABORT_UNEXPECTED_PDU, ABORT_INVALID_PARAMETER = 0, 1, 2, 6
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
#: the largest non-P-DATA PDU read whole (an A-ASSOCIATE-RQ of 128 contexts is far below)
MAX_CONTROL_PDU = 1 << 20
#: the largest command set (a C-STORE-RQ is ~200 bytes)
MAX_COMMAND = 1 << 16
# DIMSE command fields (PS3.7 §E)
C_STORE_RQ, C_STORE_RSP, C_ECHO_RQ, C_ECHO_RSP = 0x0001, 0x8001, 0x0030, 0x8030
NO_DATASET = 0x0101


class UpperLayerError(Exception):
    """The peer broke the protocol: answer A-ABORT with ``reason`` (the message says what broke)."""

    def __init__(self, message: str, reason: int = ABORT_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.reason = reason


class PeerClosed(ConnectionError):
    """The peer closed the TCP connection."""


class Reader:
    """Buffered reads from a socket: few large ``recv_into`` calls, payloads copied once.

    Big payloads bypass the buffer (``recv_into`` straight into the destination) when the buffer
    holds nothing else; the rest is one ``memmove`` per PDV.
    """

    def __init__(self, sock: socket.socket, size: int = 1 << 18) -> None:
        self.sock = sock
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.pos = self.end = 0

    def _recv(self) -> None:
        if self.pos == self.end:
            self.pos = self.end = 0
        elif self.end == len(self.buf):  # keep the unread tail, make room after it
            rest = self.end - self.pos
            self.view[:rest] = self.view[self.pos : self.end]
            self.pos, self.end = 0, rest
        got = self.sock.recv_into(self.view[self.end :])
        if not got:
            raise PeerClosed("the peer closed the connection")
        self.end += got

    def _need(self, n: int) -> None:
        if len(self.buf) - self.pos < n:  # not enough room after pos: move the tail to the front
            rest = self.end - self.pos
            self.view[:rest] = self.view[self.pos : self.end]
            self.pos, self.end = 0, rest
        while self.end - self.pos < n:
            self._recv()

    def header(self) -> tuple[int, int]:
        """(PDU type, PDU length) of the next PDU."""
        self._need(6)
        kind = self.buf[self.pos]
        (length,) = struct.unpack_from(">I", self.buf, self.pos + 2)
        self.pos += 6
        return kind, length

    def pdv_header(self) -> tuple[int, int, int]:
        """(item length, presentation context ID, message control header) of the next PDV item."""
        self._need(6)
        length, ctx, control = struct.unpack_from(">IBB", self.buf, self.pos)
        self.pos += 6
        return length, ctx, control

    def take(self, n: int) -> bytes:
        if n > len(self.buf):
            raise UpperLayerError(f"upper layer: expected a PDU of at most {len(self.buf)} bytes; got {n}")
        self._need(n)
        out = bytes(self.view[self.pos : self.pos + n])
        self.pos += n
        return out

    def copy_into(self, dst: memoryview, n: int) -> None:
        """The next ``n`` bytes into ``dst[:n]``."""
        off = min(n, self.end - self.pos)
        dst[:off] = self.view[self.pos : self.pos + off]
        self.pos += off
        while off < n:
            if n - off >= len(self.buf) // 4:  # big: straight from the socket, no buffer copy
                got = self.sock.recv_into(dst[off:n])
                if not got:
                    raise PeerClosed("the peer closed the connection mid-PDV")
                off += got
                continue
            self._recv()
            k = min(n - off, self.end - self.pos)
            dst[off : off + k] = self.view[self.pos : self.pos + k]
            self.pos += k
            off += k


# -- control PDUs --------------------------------------------------------------------------------
def reject_pdu(result: int, source: int, diagnostic: int) -> bytes:
    return struct.pack(">BBIBBBB", ASSOCIATE_RJ, 0, 4, 0, result, source, diagnostic)


def abort_pdu(source: int = 2, reason: int = ABORT_NOT_SPECIFIED) -> bytes:
    return struct.pack(">BBIBBBB", ABORT, 0, 4, 0, 0, source, reason)


RELEASE_RP_PDU = struct.pack(">BBI4x", RELEASE_RP, 0, 4)


@dataclass
class Negotiated:
    """An accepted association: who asked, the contexts accepted and the peer's PDU limit."""

    calling: str
    called: str
    contexts: dict[int, PresentationContext]
    peer_max_pdu: int  # 0: no limit
    accept: bytes  # the encoded A-ASSOCIATE-AC


def decode_request(raw: bytes) -> A_ASSOCIATE:
    """The A-ASSOCIATE primitive of an encoded A-ASSOCIATE-RQ PDU (header included)."""
    pdu = A_ASSOCIATE_RQ()
    try:
        pdu.decode(raw)
        return pdu.to_primitive()
    except (ValueError, AssertionError, struct.error, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise UpperLayerError(f"A-ASSOCIATE-RQ: expected a well-formed PDU; got {type(exc).__name__}: {exc}") from None


def negotiate(rq: A_ASSOCIATE, supported: list[PresentationContext], max_pdu: int = 0) -> Negotiated:
    """Accept ``rq``: every storage-like context with its first proposed transfer syntax, the
    others against ``supported`` (pynetdicom's unrestricted storage negotiation, as its SCP)."""
    roles = {
        item.sop_class_uid: (item.scu_role, item.scp_role)
        for item in rq.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
    results, ac_roles = negotiate_unrestricted(rq.presentation_context_definition_list, supported, roles)
    ac = A_ASSOCIATE()
    ac.application_context_name = rq.application_context_name
    ac.calling_ae_title = rq.calling_ae_title
    ac.called_ae_title = rq.called_ae_title
    ac.result, ac.result_source = 0x00, 0x01
    ac.presentation_context_definition_results_list = results
    ml = MaximumLengthNotification()
    ml.maximum_length_received = max_pdu
    ic = ImplementationClassUIDNotification()
    ic.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    iv = ImplementationVersionNameNotification()
    iv.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    ac.user_information = [ml, ic, iv, *ac_roles]
    pdu = A_ASSOCIATE_AC()
    pdu.from_primitive(ac)
    return Negotiated(
        calling=rq.calling_ae_title.strip(),
        called=rq.called_ae_title.strip(),
        contexts={cx.context_id: cx for cx in results if cx.result == 0x00},
        peer_max_pdu=rq.maximum_length_received or 0,
        accept=pdu.encode(),
    )


class _Kept:
    """One request's decode and negotiation, made once even when its senders arrive together."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.request: A_ASSOCIATE | None = None
        self.error: str | None = None
        self.negotiated: Negotiated | None = None


class Negotiations:
    """Decoded A-ASSOCIATE-RQs and their negotiation, kept by the request's exact bytes.

    pynetdicom's PDU classes validate every UID through pydicom: a storescu request of 128
    presentation contexts took 5–10 ms to decode and 3–7 ms to negotiate, GIL-bound, per
    association. A sender that associates again proposes the same bytes (same AE titles, same
    contexts), and decoding and negotiation are functions of those bytes and ``supported`` alone,
    so the answer is reused; senders arriving together wait for the one decode. Requests over
    ``max_bytes`` are never kept; at most ``size`` are (the oldest goes first).
    """

    def __init__(self, supported: list[PresentationContext], *, size: int = 32, max_bytes: int = 1 << 16) -> None:
        self.supported, self.size, self.max_bytes = supported, size, max_bytes
        self._kept: dict[bytes, _Kept] = {}
        self._lock = threading.Lock()
        self.decoded = 0  # requests decoded (not found kept): for tests and logs

    def request(self, raw: bytes) -> A_ASSOCIATE:
        """The A-ASSOCIATE primitive of an encoded A-ASSOCIATE-RQ (header included)."""
        return self._entry(raw)[1]

    def accept(self, raw: bytes) -> Negotiated:
        """The negotiated association for the request ``raw`` (after it was admitted)."""
        entry, rq = self._entry(raw)
        with entry.lock:
            if entry.negotiated is None:
                entry.negotiated = negotiate(rq, self.supported)
            return entry.negotiated

    def _entry(self, raw: bytes) -> tuple[_Kept, A_ASSOCIATE]:
        with self._lock:
            entry = self._kept.get(raw)
            mine = entry is None
            if mine:
                entry = _Kept()
                self.decoded += 1
                if len(raw) <= self.max_bytes:
                    if len(self._kept) >= self.size:
                        self._kept.pop(next(iter(self._kept)))
                    self._kept[raw] = entry
        if mine:
            try:
                entry.request = decode_request(raw)
            except UpperLayerError as exc:
                entry.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - any other decode failure is a malformed request too
                entry.error = f"A-ASSOCIATE-RQ: expected a well-formed request; got {type(exc).__name__}: {exc}"
            finally:
                entry.ready.set()
        else:
            entry.ready.wait()
        if entry.error is not None:
            raise UpperLayerError(entry.error)
        return entry, entry.request


# -- DIMSE command sets (group 0000, implicit VR little endian) ---------------------------------
@dataclass
class Command:
    field: int
    message_id: int
    has_dataset: bool
    sop_class: str
    sop_instance: str


def decode_command(raw: bytes | bytearray) -> Command:
    """The elements of a command set the SCP acts on; a malformed one is a protocol error."""
    values: dict[int, bytes] = {}
    i, n = 0, len(raw)
    while i < n:
        if n - i < 8:
            raise UpperLayerError(f"DIMSE command: expected whole elements; got {n - i} stray bytes at the end")
        group, elem, length = struct.unpack_from("<HHI", raw, i)
        if group != 0 or i + 8 + length > n:
            raise UpperLayerError(
                f"DIMSE command: expected group 0000 elements within {n} bytes; got ({group:04X},{elem:04X}) "
                f"of length {length} at offset {i}"
            )
        values[elem] = bytes(raw[i + 8 : i + 8 + length])
        i += 8 + length

    def us(elem: int, name: str) -> int:
        v = values.get(elem)
        if v is None or len(v) != 2:
            raise UpperLayerError(f"DIMSE command: expected (0000,{elem:04X}) {name} as US; got {v!r}")
        return struct.unpack("<H", v)[0]

    def ui(elem: int) -> str:
        return values.get(elem, b"").rstrip(b"\x00 ").decode("ascii", "replace")

    field = us(0x0100, "CommandField")
    return Command(
        field=field,
        message_id=us(0x0110, "MessageID"),
        has_dataset=us(0x0800, "CommandDataSetType") != NO_DATASET,
        sop_class=ui(0x0002),
        sop_instance=ui(0x1000),
    )


def _element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(value)) + value


def _text(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def encode_response(
    field: int, message_id: int, sop_class: str, status: int, sop_instance: str = "", comment: str | None = None
) -> bytes:
    """A C-STORE-RSP / C-ECHO-RSP command set (PS3.7 §9.3.1.2, §9.3.5.2)."""
    body = [
        _element(0x0002, _text(sop_class, b"\x00")),
        _element(0x0100, struct.pack("<H", field)),
        _element(0x0120, struct.pack("<H", message_id)),
        _element(0x0800, struct.pack("<H", NO_DATASET)),
        _element(0x0900, struct.pack("<H", status)),
    ]
    if comment:
        body.append(_element(0x0902, _text(comment[:64], b" ")))
    if sop_instance:
        body.append(_element(0x1000, _text(sop_instance, b"\x00")))
    joined = b"".join(body)
    return _element(0x0000, struct.pack("<I", len(joined))) + joined


def command_pdus(context_id: int, command: bytes, peer_max_pdu: int) -> list[bytes]:
    """``command`` as P-DATA-TF PDUs of at most ``peer_max_pdu`` bytes (0: one PDU)."""
    step = max(1, peer_max_pdu - 6) if peer_max_pdu else len(command)
    pieces = [command[i : i + step] for i in range(0, len(command), step)]
    out = []
    for k, piece in enumerate(pieces):
        control = 0x03 if k == len(pieces) - 1 else 0x01  # command; last fragment
        item = struct.pack(">IBB", len(piece) + 2, context_id, control) + piece
        out.append(struct.pack(">BBI", P_DATA_TF, 0, len(item)) + item)
    return out
