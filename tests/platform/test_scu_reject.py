"""``peer_reject`` sees an A-ASSOCIATE-RJ even when pynetdicom's requestor misses it.

pynetdicom 3.0's requestor waits for its DUL thread to connect and then checks that the socket
is connected. A peer that rejects fast (our fast SCP, dcmtk) can have its RJ read and the socket
closed by the DUL thread before the requestor looks; the requestor then aborts quietly, leaving
``is_rejected`` false. That made ``test_acceptor_processes_share_the_port_and_the_exact_limit``
fail 1 run in ~15 on a loaded box. Here the race is forced against dcmtk's storescp: the
requestor is held back until its DUL has closed the socket.
"""

from __future__ import annotations

import subprocess
import threading

import pytest
from pynetdicom import AE, transport
from pynetdicom.sop_class import CTImageStorage

from clara_stream.platform.scu import echo, peer_reject
from clara_stream.platform.status import PeerError

from .conftest import NODELAY_ENV, pick_port, stop_pid, wait_port, wait_until


class _LateReady(threading.Event):
    """The socket's "connected" event, whose waiter wakes only after the DUL closed the socket."""

    def __init__(self, sock: transport.AssociationSocket) -> None:
        super().__init__()
        self.sock = sock

    def wait(self, timeout: float | None = None) -> bool:
        ok = super().wait(timeout)
        wait_until(lambda: self.sock.socket is None, "the DUL closing the socket after the RJ", 20, 0.01)
        return ok


@pytest.fixture
def refusing_storescp(dcmtk, tmp_path):
    port = pick_port()
    proc = subprocess.Popen(
        [dcmtk.storescp, "--refuse", "-aet", "DEST", str(port)],
        cwd=tmp_path,
        env=NODELAY_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        stop_pid(proc)


def _associate(port: int):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = 20
    return ae.associate("127.0.0.1", port, ae_title="DEST")


def test_a_reject_read_before_the_requestor_looked_is_still_reported(refusing_storescp, monkeypatch):
    plain = _associate(refusing_storescp)
    expected = peer_reject(plain)
    assert expected is not None and not plain.is_established

    real_init = transport.AssociationSocket.__init__

    def late_init(self, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        self._ready = _LateReady(self)

    monkeypatch.setattr(transport.AssociationSocket, "__init__", late_init)
    raced = _associate(refusing_storescp)
    assert not raced.is_established
    rj = peer_reject(raced)
    assert rj is not None, "the RJ that pynetdicom's DUL read must be reported"
    assert (rj.result, rj.result_source, rj.diagnostic) == (
        expected.result,
        expected.result_source,
        expected.diagnostic,
    )


def test_no_reject_when_established_or_nobody_listens(storescp):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    established = ae.associate("127.0.0.1", storescp.port, ae_title=storescp.ae_title)
    try:
        assert established.is_established and peer_reject(established) is None
    finally:
        established.release()
    nobody = ae.associate("127.0.0.1", pick_port(), ae_title="DEST")
    assert not nobody.is_established and peer_reject(nobody) is None


def test_the_exporter_names_the_reject_reason(refusing_storescp):
    with pytest.raises(PeerError, match=r"got rejected \("):
        echo("127.0.0.1", refusing_storescp, "DEST")
