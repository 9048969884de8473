"""One table from exceptions to HTTP and DIMSE status codes.

Every service path (REST handlers, the C-STORE handler, the exporter) maps failures through
:func:`status_for`, so a given error reads the same over HTTP and over DICOM.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from clara_stream.errors import DicomInputError
from clara_stream.platform.validate import DatasetMismatchError

# DIMSE status codes (PS3.7 Annex C, PS3.4 B.2.3).
DIMSE_SUCCESS = 0x0000
DIMSE_PROCESSING_FAILURE = 0x0110
DIMSE_SOP_CLASS_NOT_SUPPORTED = 0x0122
DIMSE_OUT_OF_RESOURCES = 0xA700
DIMSE_DATASET_MISMATCH = 0xA900
DIMSE_CANNOT_UNDERSTAND = 0xC000

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service-user, calling AE title not recognised
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # permanent, service-user, called AE title not recognised
REJECT_NO_REASON = (0x01, 0x01, 0x01)  # permanent, service-user, no reason given (host not allowed)
REJECT_BUSY = (0x02, 0x03, 0x02)  # transient, service-provider (presentation), local limit exceeded
REJECT_LOW_SPACE = (0x02, 0x03, 0x01)  # transient, service-provider (presentation), temporary congestion

# HTTP status codes used by the REST API.
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_UNPROCESSABLE = 422
HTTP_INTERNAL = 500
HTTP_BAD_GATEWAY = 502
HTTP_INSUFFICIENT_STORAGE = 507


class PlatformError(Exception):
    """Base of the platform's own errors."""


class UnauthorizedError(PlatformError):
    """A REST call without the configured bearer token."""


class NotFoundError(PlatformError, LookupError):
    """No such configured entity, job or result."""


class ConflictError(PlatformError):
    """The request clashes with existing state (duplicate name or AE title, job already finished)."""


class InvalidRequestError(PlatformError, ValueError):
    """A request field is wrong; the message names the field."""


class PipelineFileError(InvalidRequestError):
    """An uploaded pipeline file refused before anything is stored (HTTP 400, gRPC INVALID_ARGUMENT)."""


class SopClassRefusedError(PlatformError):
    """The called AE does not accept this SOP class (allowedSopClasses / ignoredSopClasses)."""


class PeerError(PlatformError, ConnectionError):
    """A DICOM peer refused, aborted or did not answer."""


class OutOfSpaceError(PlatformError, OSError):
    """The store's file system is below its low-space watermark (or full)."""


@dataclass(frozen=True)
class StatusCode:
    """How one exception family reads over HTTP and DIMSE."""

    http: int
    dimse: int
    title: str


#: Most specific first; :func:`status_for` walks the exception's MRO.
STATUS_TABLE: dict[type[BaseException], StatusCode] = {
    UnauthorizedError: StatusCode(HTTP_UNAUTHORIZED, DIMSE_PROCESSING_FAILURE, "unauthorized"),
    NotFoundError: StatusCode(HTTP_NOT_FOUND, DIMSE_PROCESSING_FAILURE, "not found"),
    ConflictError: StatusCode(HTTP_CONFLICT, DIMSE_PROCESSING_FAILURE, "conflict"),
    InvalidRequestError: StatusCode(HTTP_UNPROCESSABLE, DIMSE_PROCESSING_FAILURE, "invalid request"),
    PipelineFileError: StatusCode(HTTP_BAD_REQUEST, DIMSE_PROCESSING_FAILURE, "invalid pipeline file"),
    SopClassRefusedError: StatusCode(HTTP_UNPROCESSABLE, DIMSE_SOP_CLASS_NOT_SUPPORTED, "SOP class refused"),
    DicomInputError: StatusCode(HTTP_UNPROCESSABLE, DIMSE_CANNOT_UNDERSTAND, "bad DICOM content"),
    PeerError: StatusCode(HTTP_BAD_GATEWAY, DIMSE_PROCESSING_FAILURE, "peer failure"),
    OutOfSpaceError: StatusCode(HTTP_INSUFFICIENT_STORAGE, DIMSE_OUT_OF_RESOURCES, "out of space"),
    DatasetMismatchError: StatusCode(HTTP_UNPROCESSABLE, DIMSE_DATASET_MISMATCH, "dataset does not match"),
    OSError: StatusCode(HTTP_INSUFFICIENT_STORAGE, DIMSE_OUT_OF_RESOURCES, "storage failure"),
    # "database or disk is full", "database is locked": the state store is out of resources
    sqlite3.OperationalError: StatusCode(HTTP_INSUFFICIENT_STORAGE, DIMSE_OUT_OF_RESOURCES, "database failure"),
    ValueError: StatusCode(HTTP_BAD_REQUEST, DIMSE_CANNOT_UNDERSTAND, "bad value"),
}
DEFAULT_STATUS = StatusCode(HTTP_INTERNAL, DIMSE_PROCESSING_FAILURE, "internal error")
try:  # the celery backend's PostgreSQL away (restart, failover): out of resources, as SQLite's
    import psycopg
except ImportError:  # the scale extra is not installed
    pass
else:
    STATUS_TABLE[psycopg.OperationalError] = STATUS_TABLE[sqlite3.OperationalError]


def status_for(exc: BaseException) -> StatusCode:
    """The status of the nearest class of ``exc`` in :data:`STATUS_TABLE` (else a 500 / 0x0110)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_TABLE:
            return STATUS_TABLE[cls]
    return DEFAULT_STATUS
