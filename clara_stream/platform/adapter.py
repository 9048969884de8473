"""The DICOM adapter: a pynetdicom C-ECHO/C-STORE SCP that feeds the instance store.

Associations are refused unless the calling AE title and host match a configured source and the
called AE title is a configured AE (or the adapter's own title, which answers C-ECHO only).
An instance gets a success status only after its bytes are fsync'ed and indexed.

Notes
-----
pynetdicom runs each association in its own thread; handlers here only touch the thread-safe
:class:`InstanceStore` and :class:`ConfigStore`.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import ssl
import threading
import uuid

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.dsutils import encode_file_meta
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from clara_stream.errors import DicomInputError
from clara_stream.platform.configstore import ConfigStore
from clara_stream.platform.instances import InstanceStore
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.status import (
    DIMSE_SUCCESS,
    REJECT_CALLED_AE,
    REJECT_CALLING_AE,
    SopClassRefusedError,
    status_for,
)

log = logging.getLogger(__name__)

_PREFIX = 64 * 1024
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Threaded association server that turns Nagle off on every accepted socket (then TLS)."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(client, server_side=True)
        return client, address


def parse_header(head: bytes, body: memoryview | bytes, sop_uid: str, sop_class: str) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID) of an encoded instance, checked against the request.

    ``head`` is the preamble + file meta, ``body`` the dataset. The first 64 KiB of the dataset
    are parsed first (the UIDs precede the pixel data); the whole dataset only if they are not
    all there.

    Raises
    ------
    DicomInputError
        The bytes do not parse, a UID is missing or empty, or the dataset's SOP Class/Instance UID
        differ from the C-STORE request's.
    """
    try:
        ds = dcmread(io.BytesIO(head + bytes(body[:_PREFIX])), stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        if len(body) > _PREFIX and any(k not in ds for k in _HEADER_TAGS):
            ds = dcmread(io.BytesIO(head + bytes(body)), stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError) as exc:
        raise DicomInputError(
            f"C-STORE: expected a decodable dataset; got {type(exc).__name__}: {exc} [SOP Instance {sop_uid}]"
        ) from None
    for keyword, tag in (("StudyInstanceUID", "0020,000D"), ("SeriesInstanceUID", "0020,000E")):
        if not str(ds.get(keyword, "") or "").strip():
            raise DicomInputError(f"C-STORE: expected ({tag}) {keyword}; got none [SOP Instance {sop_uid}]")
    if str(ds.get("SOPInstanceUID", "")) != sop_uid:
        raise DicomInputError(
            f"C-STORE: expected (0008,0018) SOPInstanceUID {sop_uid} as requested; got {ds.get('SOPInstanceUID')!r}"
        )
    if str(ds.get("SOPClassUID", "")) != sop_class:
        raise DicomInputError(
            f"C-STORE: expected (0008,0016) SOPClassUID {sop_class} as requested; got "
            f"{ds.get('SOPClassUID')!r} [SOP Instance {sop_uid}]"
        )
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


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
    config : configured AE titles and sources (read per association, so REST edits apply at once).
    store : where instances go.
    on_stored : optional callback after each stored instance (the service wakes the grouper).
    """

    def __init__(self, settings: PlatformSettings, config: ConfigStore, store: InstanceStore) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.port: int | None = None
        self._server: NoDelayAssociationServer | None = None
        self._thread: threading.Thread | None = None
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.maximum_associations = settings.max_associations
        self.ae.maximum_pdu_size = 0
        self.ae.acse_timeout = 30
        self.ae.dimse_timeout = 120
        self.ae.network_timeout = 120
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
            server_class=NoDelayAssociationServer,
        )
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

    def stop(self) -> None:
        """Stop listening and close the server (open associations are aborted by pynetdicom)."""
        self.ae.shutdown()
        self._server = None

    # -- handlers --------------------------------------------------------------------------
    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        rq = assoc.requestor.primitive
        calling, called = rq.calling_ae_title.strip(), rq.called_ae_title.strip()
        host = assoc.requestor.address
        assoc.clara_assoc_id = uuid.uuid4().hex[:12]
        if not self.config.source_allowed(calling, host):
            log.warning("refused association from %s@%s: not a configured source", calling, host)
            self._reject(assoc, REJECT_CALLING_AE)
        elif called != self.settings.ae_title and self.config.ae_by_title(called) is None:
            log.warning("refused association from %s@%s to %s: called AE not configured", calling, host, called)
            self._reject(assoc, REJECT_CALLED_AE)

    @staticmethod
    def _reject(assoc, reason: tuple[int, int, int]) -> None:
        """Send A-ASSOCIATE-RJ and wait for the DUL to put it on the wire (as pynetdicom's own path)."""
        assoc.acse.send_reject(*reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _on_echo(self, event: evt.Event) -> int:
        return DIMSE_SUCCESS

    def _on_store(self, event: evt.Event) -> int | Dataset:
        assoc = event.assoc
        req = event.request
        sop_uid, sop_class = str(req.AffectedSOPInstanceUID), str(req.AffectedSOPClassUID)
        called = assoc.requestor.primitive.called_ae_title.strip()
        try:
            if not (_UID_RE.match(sop_uid) and _UID_RE.match(sop_class) and len(sop_uid) <= 64):
                # the UID becomes a file name: never let "../" or "/" through
                raise DicomInputError(
                    f"C-STORE: expected (0000,1000) and (0000,0002) to be UIDs of digits and dots "
                    f"(<= 64 chars); got {sop_uid[:70]!r}, {sop_class[:70]!r}"
                )
            ae = self.config.ae_by_title(called)
            if ae is None:
                raise SopClassRefusedError(f"C-STORE: expected a configured AE; got {called} (echo only)")
            if sop_class in ae.ignored_sop_classes:
                return DIMSE_SUCCESS  # MIG semantics: accepted and dropped
            if ae.allowed_sop_classes and sop_class not in ae.allowed_sop_classes:
                raise SopClassRefusedError(f"C-STORE: expected SOP class in allowedSopClasses; got {sop_class}")
            # preamble + file meta, then the peer's dataset bytes as they arrived (no copy)
            head = b"\x00" * 128 + b"DICM" + encode_file_meta(event.file_meta)
            body = event.request.DataSet.getbuffer()
            study, series = parse_header(head, body, sop_uid, sop_class)
            self.store.store(
                [head, body],
                sop_uid=sop_uid,
                sop_class=sop_class,
                study_uid=study,
                series_uid=series,
                called_ae=called,
                calling_ae=assoc.requestor.primitive.calling_ae_title.strip(),
                calling_host=assoc.requestor.address,
                assoc_id=assoc.clara_assoc_id,
                grouping=ae.grouping,
            )
        except Exception as exc:  # every failure becomes a DIMSE status; the service keeps serving
            log.warning("C-STORE %s refused: %s", sop_uid, exc)
            return _failure(exc)
        return DIMSE_SUCCESS

    def _on_close(self, event: evt.Event) -> None:
        assoc = event.assoc
        assoc_id = getattr(assoc, "clara_assoc_id", None)
        if assoc_id is None:
            return
        if assoc.is_released:
            self.store.release(assoc_id)
        else:
            self.store.abort(assoc_id, keep=self.settings.keep_aborted)
