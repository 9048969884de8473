"""The DICOM adapter: a C-ECHO/C-STORE SCP that feeds the instance store.

Associations are refused unless the calling AE title and host match a configured source and the
called AE title is a configured AE (or the adapter's own title, which answers C-ECHO only); while
the store's file system is below its low-space watermark; and beyond exactly
``max_associations`` at once. An instance gets a success status only after the whole dataset is
checked (:mod:`clara_stream.platform.validate`) and its bytes are fsync'ed and indexed.

Notes
-----
Two receive paths share the admission, store and settle logic here (``receive_path``):
``fast`` (default), our own upper-layer loop (:mod:`clara_stream.platform.fast_scp`), and
``pynetdicom``, pynetdicom's AE with its DUL/reactor threads. Either runs each association in
its own thread; the code here only touches the thread-safe :class:`InstanceStore` and
:class:`ConfigStore`. The TLS handshake also runs on that thread, with a timeout, so an idle or
half-open client never blocks the accept loop.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import uuid

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.sop_class import Verification

from clara_stream.errors import DicomInputError
from clara_stream.platform import pacing
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.db import DB_ERRORS
from clara_stream.platform.fast_scp import FastServer
from clara_stream.platform.instances import InstanceStore, file_head, space_shortfall
from clara_stream.platform.pynetdicom_scp import NoDelayAssociationServer, ReusePortAssociationServer
from clara_stream.platform.schemas import AeConfig
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import (
    DIMSE_SUCCESS,
    REJECT_BUSY,
    REJECT_CALLED_AE,
    REJECT_CALLING_AE,
    REJECT_LOW_SPACE,
    OutOfSpaceError,
    SopClassRefusedError,
    status_for,
)
from clara_stream.platform.validate import check_instance, is_uid

log = logging.getLogger(__name__)

#: pynetdicom's own limit counts threads still starting or ending, so it admits fewer than asked
#: under a burst; the adapter counts admitted associations itself and sets pynetdicom's out of reach.
_PYNETDICOM_NO_LIMIT = 1 << 20
#: how stale the per-C-STORE low-space answer may be (one statvfs per instance cost ~2 % of the path)
SPACE_CHECK_S = 0.1


def _failure(exc: BaseException) -> Dataset:
    rsp = Dataset()
    rsp.Status = status_for(exc).dimse
    rsp.ErrorComment = str(exc)[:64]
    return rsp


class DicomAdapter:
    """The SCP. ``start()`` binds and serves in a thread; ``port`` is the bound port.

    Parameters
    ----------
    settings : host, dicom_port, ae_title, max_associations, TLS files, keep_aborted.
    config : configured AE titles and sources (read once per association, at its request and its
        first C-STORE, so a REST edit applies from the next association on).
    store : where instances go.
    slots : the admission counter (a ``multiprocessing`` semaphore shared by acceptor processes);
        a private one of ``max_associations`` when None.
    reuse_port : bind with SO_REUSEPORT (several acceptor processes on one port).
    """

    def __init__(
        self,
        settings: PlatformSettings,
        config: ConfigStore,
        store: InstanceStore,
        *,
        slots=None,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.port: int | None = None
        self._server: NoDelayAssociationServer | FastServer | None = None
        self._thread: threading.Thread | None = None
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.maximum_associations = _PYNETDICOM_NO_LIMIT
        self.ae.maximum_pdu_size = 0
        self.ae.acse_timeout = settings.acse_timeout_s
        self.ae.dimse_timeout = settings.dimse_timeout_s
        self.ae.network_timeout = settings.network_timeout_s
        #: admitted associations; a multiprocessing semaphore when several acceptor processes share it
        self._slots = slots if slots is not None else threading.BoundedSemaphore(settings.max_associations)
        self._reuse_port = reuse_port
        self._space: tuple[float, str | None] | None = None
        self._unsettled: dict[str, bool] = {}  # association id -> released, when recording it failed
        self._unsettled_lock = threading.Lock()
        #: association id -> its called AE's config, read at its first C-STORE (a query and a
        #: pydantic parse per instance were ~10 % of the C-STORE path's Python)
        self._called: dict[str, AeConfig | None] = {}
        self._draining = threading.Event()  # set by stop(): refuse new associations, let others finish
        self._drained = threading.Event()  # never set: stop()'s interruptible wait
        self.ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        # Every storage SOP class (public, private, unknown) with the sender's first proposed transfer
        # syntax. pynetdicom's documented switch; listing 170 classes x 45 syntaxes instead costs a
        # ~0.3 s deepcopy per association. allowedSopClasses / ignoredSopClasses filter per AE.
        _config.UNRESTRICTED_STORAGE_SERVICE = True

    def ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not s.tls_enabled:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(s.tls_cert, s.tls_key)
        if s.tls_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(s.tls_ca)
        return ctx

    def start(self) -> int:
        if self.settings.receive_path == "fast":
            return self._start_fast()
        if self.settings.fast_poll:
            pacing.install()
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        self._server = self.ae.make_server(
            (self.settings.host, self.settings.dicom_port),
            evt_handlers=handlers,
            ssl_context=self.ssl_context(),
            server_class=ReusePortAssociationServer if self._reuse_port else NoDelayAssociationServer,
        )
        self._server.handshake_timeout_s = self.settings.tls_handshake_timeout_s
        self.ae._servers.append(self._server)  # so AE.shutdown() and server.shutdown() both work
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="dicom-scp", daemon=True)
        self._thread.start()
        log.info(
            "DICOM SCP %s listening on %s:%d%s",
            self.settings.ae_title,
            self.settings.host,
            self.port,
            " (TLS)" if self.settings.tls_enabled else "",
        )
        return self.port

    def _start_fast(self) -> int:
        s = self.settings
        self._server = FastServer(
            (s.host, s.dicom_port),
            self,
            self.ae.supported_contexts,
            acse_timeout_s=s.acse_timeout_s,
            network_timeout_s=s.network_timeout_s,
            handshake_timeout_s=s.tls_handshake_timeout_s,
            ssl_context=self.ssl_context(),
            reuse_port=self._reuse_port,
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="dicom-scp", daemon=True)
        self._thread.start()
        log.info("DICOM SCP %s listening on %s:%d%s (fast receive path)", s.ae_title, s.host, self.port,
                 " (TLS)" if s.tls_enabled else "")  # fmt: skip
        return self.port

    def sockets(self) -> list[socket.socket]:
        """The accepted sockets of the associations open now (either receive path)."""
        if isinstance(self._server, FastServer):
            return self._server.sockets()
        return [a.dul.socket.socket for a in self.ae.active_associations if a.dul.socket is not None]

    def active_count(self) -> int:
        """Associations admitted now (by every acceptor process sharing the slots)."""
        free = self._slots.get_value() if hasattr(self._slots, "get_value") else self._slots._value
        return self.settings.max_associations - free

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop: refuse new associations (transient, so senders retry), give those in progress up
        to ``drain_s`` to finish, then close the server (pynetdicom aborts any still open)."""
        self._draining.set()
        deadline = time.monotonic() + drain_s
        while self.active_count() > 0 and time.monotonic() < deadline:
            self._drained.wait(0.05)
        if self.active_count() > 0:
            log.warning("stopping with %d associations still open (drain_timeout_s passed)", self.active_count())
        if isinstance(self._server, FastServer):
            self._server.shutdown()
            if self._thread is not None:
                self._thread.join(timeout=10)
        else:
            self.ae.shutdown()
        self._server = None

    # -- handlers --------------------------------------------------------------------------
    def _on_requested(self, event: evt.Event) -> None:
        """pynetdicom path: admit or reject (pynetdicom would accept if this handler raised)."""
        pacing.PACER.busy()
        assoc = event.assoc
        rq = assoc.requestor.primitive
        reason, assoc_id = self.admit(rq.calling_ae_title.strip(), rq.called_ae_title.strip(), assoc.requestor.address)
        if reason is not None:
            self._reject(assoc, reason)
        else:
            assoc.clara_assoc_id, assoc.clara_slot = assoc_id, True

    def admit(self, calling: str, called: str, host: str) -> tuple[tuple[int, int, int] | None, str]:
        """(None, association id) with a slot taken, or (the A-ASSOCIATE-RJ reason, id).

        Fails closed: if the check itself fails (e.g. the database is unreadable) the answer is
        a transient refusal that says why in the log.
        """
        assoc_id = uuid.uuid4().hex[:12]
        try:
            return self._admission(calling, called, host), assoc_id
        except Exception as exc:  # refuse, transient, and say why
            log.error("refused association: admission check failed: %s", exc)
            return REJECT_BUSY, assoc_id

    def _admission(self, calling: str, called: str, host: str) -> tuple[int, int, int] | None:
        if self._draining.is_set():
            log.warning("refused association from %s@%s: the service is stopping", calling, host)
            return REJECT_BUSY
        if not self.config.source_allowed(calling, host):
            log.warning("refused association from %s@%s: not a configured source", calling, host)
            return REJECT_CALLING_AE
        if called != self.settings.ae_title and self.config.ae_by_title(called) is None:
            log.warning("refused association from %s@%s to %s: called AE not configured", calling, host, called)
            return REJECT_CALLED_AE
        if (short := self.space_problem()) is not None:
            log.warning("refused association from %s@%s: %s", calling, host, short)
            return REJECT_LOW_SPACE
        if not self._slots.acquire(False):  # positional: threading and multiprocessing agree
            log.warning(
                "refused association from %s@%s: %d associations already (max-associations)",
                calling,
                host,
                self.settings.max_associations,
            )
            return REJECT_BUSY
        return None

    def space_problem(self, *, max_age_s: float = 0.0) -> str | None:
        """Why the store cannot take more now (below the low-space watermark), or None.

        ``max_age_s``: reuse an answer that recent (the C-STORE path asks per instance; a full
        disk still answers 0xA700 through the failed write).
        """
        now = time.monotonic()
        cached = self._space
        if cached is not None and now - cached[0] <= max_age_s:
            return cached[1]
        s = self.settings
        answer = space_shortfall(self.store.store_dir, s.min_free_mb, s.min_free_percent)
        self._space = (now, answer)
        return answer

    @staticmethod
    def _reject(assoc, reason: tuple[int, int, int]) -> None:
        """Send A-ASSOCIATE-RJ and wait for the DUL to put it on the wire (as pynetdicom's own path)."""
        assoc.acse.send_reject(*reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _on_echo(self, event: evt.Event) -> int:
        return DIMSE_SUCCESS

    def _on_store(self, event: evt.Event) -> int | Dataset:
        """pynetdicom path: the C-STORE as pynetdicom decoded it."""
        pacing.PACER.busy()
        assoc, req = event.assoc, event.request
        return self.receive_instance(
            called=assoc.requestor.primitive.called_ae_title.strip(),
            calling=assoc.requestor.primitive.calling_ae_title.strip(),
            host=assoc.requestor.address,
            assoc_id=assoc.clara_assoc_id,
            sop_uid=str(req.AffectedSOPInstanceUID),
            sop_class=str(req.AffectedSOPClassUID),
            transfer_syntax=str(event.context.transfer_syntax),
            body=req.DataSet.getbuffer(),
        )

    def receive_instance(
        self,
        *,
        called: str,
        calling: str,
        host: str,
        assoc_id: str,
        sop_uid: str,
        sop_class: str,
        transfer_syntax: str,
        body: memoryview,
    ) -> int | Dataset:
        """Check, store durably and index one received dataset; the DIMSE status to answer.

        ``body`` is the dataset as it arrived (in ``transfer_syntax``); it is not kept.
        """
        try:
            if not (is_uid(sop_uid) and is_uid(sop_class)):
                # the UID becomes a file name: never let "../" or "/" through
                raise DicomInputError(
                    f"C-STORE: expected (0000,1000) and (0000,0002) to be UIDs of digits and dots "
                    f"(<= 64 chars); got {sop_uid[:70]!r}, {sop_class[:70]!r}"
                )
            if assoc_id in self._called:
                ae = self._called[assoc_id]
            else:
                ae = self._called[assoc_id] = self.config.ae_by_title(called)
            if ae is None:
                raise SopClassRefusedError(f"C-STORE: expected a configured AE; got {called} (echo only)")
            if sop_class in ae.ignored_sop_classes:
                return DIMSE_SUCCESS  # MIG semantics: accepted and dropped
            if ae.allowed_sop_classes and sop_class not in ae.allowed_sop_classes:
                raise SopClassRefusedError(f"C-STORE: expected SOP class in allowedSopClasses; got {sop_class}")
            # preamble + file meta, then the peer's dataset bytes as they arrived (no copy)
            head = file_head(sop_class, sop_uid, transfer_syntax)
            study, series = check_instance(head, body, sop_uid, sop_class, transfer_syntax)
            if (short := self.space_problem(max_age_s=SPACE_CHECK_S)) is not None:
                raise OutOfSpaceError(f"C-STORE: expected free space above the watermark; got {short}")
            self.store.store(
                [head, body],
                sop_uid=sop_uid,
                sop_class=sop_class,
                study_uid=study,
                series_uid=series,
                called_ae=called,
                calling_ae=calling,
                calling_host=host,
                assoc_id=assoc_id,
                grouping=ae.grouping,
            )
        except Exception as exc:  # every failure becomes a DIMSE status; the service keeps serving
            log.warning("C-STORE %s refused: %s", sop_uid, exc)
            return _failure(exc)
        return DIMSE_SUCCESS

    def _on_close(self, event: evt.Event) -> None:
        """pynetdicom path: the connection closed (admitted or not)."""
        assoc = event.assoc
        if getattr(assoc, "clara_slot", False):
            assoc.clara_slot = False
            self.association_ended(assoc.clara_assoc_id, bool(assoc.is_released))

    def association_ended(self, assoc_id: str, released: bool) -> None:
        """An admitted association ended: free its slot, record how (release or abort)."""
        self._called.pop(assoc_id, None)
        self._slots.release()
        with self._unsettled_lock:
            self._unsettled[assoc_id] = released
        self.settle()

    def settle(self) -> int:
        """Record how ended associations ended (release → complete, abort → drop or keep).

        Called at each close and again by the service's grouper loop, so instances of an
        association whose end could not be recorded (database or disk full) are settled once
        space returns, not left pending until a restart. Returns how many are still unsettled.
        """
        with self._unsettled_lock:
            todo = list(self._unsettled.items())
        for assoc_id, released in todo:
            try:
                if released:
                    self.store.release(assoc_id)
                else:
                    self.store.abort(assoc_id, keep=self.settings.keep_aborted)
            except (OSError, *DB_ERRORS) as exc:  # disk or database full: try again next pass
                log.warning("association %s: recording its end failed (%s); retried later", assoc_id, exc)
                continue
            with self._unsettled_lock:
                self._unsettled.pop(assoc_id, None)
        with self._unsettled_lock:
            return len(self._unsettled)
