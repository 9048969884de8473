"""The storage SCP's fast receive path: one thread per association, no reactor threads.

:class:`FastServer` accepts on the DICOM port (Nagle off, optional SO_REUSEPORT for acceptor
processes, TLS handshake with a timeout on the association's own thread) and runs
:class:`Association` for each connection: A-ASSOCIATE-RQ within the ACSE timeout (ARTIM), the
adapter's admission check (A-ASSOCIATE-RJ with its reason), presentation contexts negotiated by
pynetdicom (once per distinct request, :class:`~clara_stream.platform.upper_layer.Negotiations`),
then P-DATA-TF PDUs read straight into the message buffers
(:mod:`clara_stream.platform.upper_layer`). A C-STORE's dataset is handed to the adapter only when
its last fragment arrived; the C-STORE-RSP goes out only after the adapter returned, i.e. after
validation, fdatasync, link and index. C-ECHO, A-RELEASE and A-ABORT are answered as PS3.8 says; a
broken PDU gets A-ABORT with the reason logged; an idle peer is cut after the network timeout. What
an association stored is settled by the adapter when it ends (released: complete; aborted, cut or
timed out: dropped unless ``keep_aborted``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from typing import TYPE_CHECKING

from pynetdicom.presentation import PresentationContext

from clara_stream.platform import upper_layer as ul

if TYPE_CHECKING:  # the handler: admit, receive_instance, association_ended
    from clara_stream.platform.adapter import DicomAdapter as Handler

log = logging.getLogger(__name__)

#: the largest dataset one C-STORE may carry (work per request is bounded)
MAX_DATASET_BYTES = 4 << 30


class Association:
    """One connection: negotiate, then serve C-ECHO/C-STORE until release, abort or timeout."""

    def __init__(
        self,
        sock: socket.socket,
        host: str,
        handler: Handler,
        negotiations: ul.Negotiations,
        *,
        acse_timeout_s: float,
        network_timeout_s: float,
    ) -> None:
        self.sock, self.host, self.handler, self.negotiations = sock, host, handler, negotiations
        self.acse_timeout_s, self.network_timeout_s = acse_timeout_s, network_timeout_s
        self.reader = ul.Reader(sock)
        self.data = bytearray()  # the dataset buffer: made at the first C-STORE, reused by the next ones
        self.send_lock = threading.Lock()
        self.assoc_id: str | None = None
        self.released = False
        self.said_last = False  # A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT sent: the peer closes next

    def send(self, *pdus: bytes) -> None:
        with self.send_lock:
            for pdu in pdus:
                self.sock.sendall(pdu)
                self.said_last |= pdu[0] in (ul.ASSOCIATE_RJ, ul.RELEASE_RP, ul.ABORT)

    def run(self) -> None:
        try:
            self._run()
        except ul.UpperLayerError as exc:
            log.warning("A-ABORT to %s (reason %d): %s", self.host, exc.reason, exc)
            self._send_quietly(ul.abort_pdu(2, exc.reason))
        except TimeoutError:
            if self.assoc_id is None:  # ARTIM expired before a request: close (PS3.8 AA-2), as pynetdicom
                log.warning("closed connection from %s: no A-ASSOCIATE-RQ within the ACSE timeout", self.host)
            else:
                log.warning("A-ABORT to %s: no PDU within the network timeout", self.host)
                self._send_quietly(ul.abort_pdu(2, ul.ABORT_NOT_SPECIFIED))
        except (ul.PeerClosed, OSError) as exc:
            if self.assoc_id and not self.released:
                log.warning("association %s from %s ended without release: %s", self.assoc_id, self.host, exc)
        finally:
            try:
                if self.assoc_id is not None:
                    self.handler.association_ended(self.assoc_id, self.released)
            finally:
                self._close()

    def _close(self) -> None:
        """Close; after our last PDU, first let the peer close (ARTIM, PS3.8 Sta13), so a peer that
        is still reading never sees the connection reset before it read that PDU."""
        try:
            if self.said_last:
                self.sock.settimeout(self.acse_timeout_s)
                while self.sock.recv(4096):
                    pass  # whatever the peer still sends after our last word is dropped
        except OSError:
            pass  # ARTIM expired or the peer reset: close anyway
        finally:
            self.sock.close()

    def _send_quietly(self, pdu: bytes) -> None:
        try:
            self.send(pdu)
        except OSError:
            pass  # the peer is gone already; nothing more to tell it

    def abort(self) -> None:
        """Cut the association from another thread (service stop): A-ABORT, then shut the socket."""
        self._send_quietly(ul.abort_pdu(0, ul.ABORT_NOT_SPECIFIED))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its own thread

    def _run(self) -> None:
        self.sock.settimeout(self.acse_timeout_s)  # ARTIM: the request must come this soon
        kind, length = self.reader.header()
        if kind != ul.ASSOCIATE_RQ:
            raise ul.UpperLayerError(
                f"upper layer: expected A-ASSOCIATE-RQ first; got PDU type {kind}", ul.ABORT_UNEXPECTED_PDU
            )
        if length > ul.MAX_CONTROL_PDU:
            raise ul.UpperLayerError(f"A-ASSOCIATE-RQ: expected at most {ul.MAX_CONTROL_PDU} bytes; got {length}")
        raw = struct.pack(">BBI", kind, 0, length) + self.reader.take(length)
        rq = self.negotiations.request(raw)
        if rq.application_context_name != ul.APPLICATION_CONTEXT:
            log.warning("refused association from %s: application context %s", self.host, rq.application_context_name)
            self.send(ul.reject_pdu(1, 1, 2))  # permanent, service user, application context not supported
            return
        reject, assoc_id = self.handler.admit(rq.calling_ae_title.strip(), rq.called_ae_title.strip(), self.host)
        if reject is not None:
            self.send(ul.reject_pdu(*reject))
            return
        self.assoc_id = assoc_id  # admitted: a slot is held until association_ended
        self.assoc = self.negotiations.accept(raw)
        self.send(self.assoc.accept)
        self.sock.settimeout(self.network_timeout_s)
        self._serve()

    def _serve(self) -> None:
        command = bytearray()
        cmd: ul.Command | None = None  # a C-STORE whose dataset is arriving
        cmd_ctx = filled = 0
        while True:
            kind, length = self.reader.header()
            if kind == ul.RELEASE_RQ:
                self.reader.take(length)
                self.released = True
                self.send(ul.RELEASE_RP_PDU)
                return
            if kind == ul.ABORT:
                self.reader.take(min(length, 4))
                log.info("association %s from %s aborted by the peer", self.assoc_id, self.host)
                return
            if kind != ul.P_DATA_TF:
                known = kind in (ul.ASSOCIATE_RQ, ul.ASSOCIATE_AC, ul.ASSOCIATE_RJ, ul.RELEASE_RP)
                raise ul.UpperLayerError(
                    f"upper layer: expected P-DATA-TF, A-RELEASE-RQ or A-ABORT; got PDU type 0x{kind:02X}",
                    ul.ABORT_UNEXPECTED_PDU if known else ul.ABORT_UNRECOGNIZED_PDU,
                )
            left = length
            while left:
                if left < 6:
                    raise ul.UpperLayerError(f"P-DATA-TF: expected PDV items filling {length} bytes; {left} left over")
                item, ctx, control = self.reader.pdv_header()
                if item < 2 or item + 4 > left:
                    raise ul.UpperLayerError(f"P-DATA-TF: expected a PDV item length 2..{left - 4}; got {item}")
                left -= item + 4
                if ctx not in self.assoc.contexts:
                    raise ul.UpperLayerError(f"P-DATA-TF: expected an accepted presentation context; got {ctx}")
                n = item - 2
                if control & 0x01:  # command fragment
                    if cmd is not None:
                        raise ul.UpperLayerError("P-DATA-TF: expected the C-STORE's dataset; got a command fragment")
                    if len(command) + n > ul.MAX_COMMAND:
                        raise ul.UpperLayerError(f"DIMSE command: expected at most {ul.MAX_COMMAND} bytes")
                    command += self.reader.take(n)
                    if control & 0x02:
                        cmd = self._command(ctx, ul.decode_command(command))
                        command.clear()
                        cmd_ctx, filled = ctx, 0
                    continue
                if cmd is None or ctx != cmd_ctx:
                    raise ul.UpperLayerError(f"P-DATA-TF: expected a command before a dataset on context {ctx}")
                if filled + n > len(self.data):
                    self._grow(filled + n, filled)
                self.reader.copy_into(memoryview(self.data)[filled:], n)
                filled += n
                if control & 0x02:
                    self._store(ctx, cmd, filled)
                    cmd = None

    def _grow(self, need: int, keep: int) -> None:
        if need > MAX_DATASET_BYTES:
            raise ul.UpperLayerError(f"C-STORE: expected a dataset of at most {MAX_DATASET_BYTES} bytes; got more")
        bigger = bytearray(max(need, min(2 * len(self.data), MAX_DATASET_BYTES), 1 << 20))
        bigger[:keep] = memoryview(self.data)[:keep]
        self.data = bigger

    def _command(self, ctx: int, c: ul.Command) -> ul.Command | None:
        """Answer a C-ECHO now; a C-STORE waits for its dataset (returned); anything else aborts."""
        if c.field == ul.C_ECHO_RQ and not c.has_dataset:
            self._respond(ctx, ul.encode_response(ul.C_ECHO_RSP, c.message_id, c.sop_class or "1.2.840.10008.1.1", 0))
            return None
        if c.field == ul.C_STORE_RQ and c.has_dataset:
            return c
        raise ul.UpperLayerError(
            f"DIMSE: expected C-ECHO-RQ or C-STORE-RQ with a dataset; got command 0x{c.field:04X}",
            ul.ABORT_UNEXPECTED_PDU,
        )

    def _store(self, ctx: int, c: ul.Command, size: int) -> None:
        body = memoryview(self.data)[:size]
        try:
            rsp = self.handler.receive_instance(
                called=self.assoc.called,
                calling=self.assoc.calling,
                host=self.host,
                assoc_id=self.assoc_id,
                sop_uid=c.sop_instance,
                sop_class=c.sop_class,
                transfer_syntax=str(self.assoc.contexts[ctx].transfer_syntax[0]),
                body=body,
            )
        finally:
            body.release()
        status, comment = (rsp, None) if isinstance(rsp, int) else (int(rsp.Status), rsp.get("ErrorComment"))
        self._respond(
            ctx, ul.encode_response(ul.C_STORE_RSP, c.message_id, c.sop_class, status, c.sop_instance, comment)
        )

    def _respond(self, ctx: int, command: bytes) -> None:
        self.send(*ul.command_pdus(ctx, command, self.assoc.peer_max_pdu))


class FastServer:
    """Accepts DICOM connections and runs an :class:`Association` thread for each."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        supported: list[PresentationContext],
        *,
        acse_timeout_s: float,
        network_timeout_s: float,
        handshake_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.handler, self.ssl_context = handler, ssl_context
        self.negotiations = ul.Negotiations(supported)
        self.acse_timeout_s, self.network_timeout_s = acse_timeout_s, network_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(address)
        self.socket.listen(128)
        self.server_address = self.socket.getsockname()
        self._open: dict[socket.socket, Association | None] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def serve_forever(self) -> None:
        while not self._closed.is_set():
            try:
                client, address = self.socket.accept()
            except OSError:
                if self._closed.is_set():
                    return
                raise
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open[client] = None
            threading.Thread(
                target=self._connection, args=(client, address[0]), name="dicom-assoc", daemon=True
            ).start()

    def _connection(self, client: socket.socket, host: str) -> None:
        sock = client
        try:
            if self.ssl_context is not None:
                try:
                    sock = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
                    sock.settimeout(self.handshake_timeout_s)
                    sock.do_handshake()
                except (OSError, ValueError) as exc:  # timeout, reset, bad certificate, plain TCP
                    log.warning("TLS handshake with %s failed: %s", host, exc)
                    sock.close()
                    return
            assoc = Association(
                sock,
                host,
                self.handler,
                self.negotiations,
                acse_timeout_s=self.acse_timeout_s,
                network_timeout_s=self.network_timeout_s,
            )
            with self._lock:
                self._open[client] = assoc
            if self._closed.is_set():
                assoc.abort()
            assoc.run()
        finally:
            with self._lock:
                self._open.pop(client, None)

    def sockets(self) -> list[socket.socket]:
        """The accepted sockets of the connections open now."""
        with self._lock:
            return list(self._open)

    def shutdown(self) -> None:
        """Stop accepting and abort every open association."""
        self._closed.set()
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the accept() of serve_forever
        except OSError:
            pass  # not connected: close() below is enough
        self.socket.close()
        with self._lock:
            open_now = list(self._open.items())
        for client, assoc in open_now:
            if assoc is not None:
                assoc.abort()
            else:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed meanwhile
