"""pynetdicom's association servers for the SCP's pynetdicom receive path (``receive_path``).

Nagle off on every accepted socket; the TLS handshake (with a timeout) on the association's own
thread, never on the accept thread; optionally SO_REUSEPORT so acceptor processes share a port.
"""

from __future__ import annotations

import logging
import socket
import ssl

from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Threaded association server: Nagle off on every accepted socket; TLS handshake (with a
    timeout) on the association's own thread, never on the accept thread."""

    handshake_timeout_s: float = 10.0

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def process_request_thread(self, request, client_address) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(self.handshake_timeout_s)
                request.do_handshake()
                request.settimeout(None)
            except (OSError, ValueError) as exc:  # timeout, reset, bad certificate, plain TCP
                log.warning("TLS handshake with %s failed: %s", client_address, exc)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


class ReusePortAssociationServer(NoDelayAssociationServer):
    """The same, bound with SO_REUSEPORT so several acceptor processes share one port (the kernel
    spreads connections over them; see :mod:`clara_stream.platform.acceptors`)."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
