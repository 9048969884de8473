"""FastAPI dependencies: the one service instance lives on ``app.state`` (tests may override)."""

from __future__ import annotations

import hmac

from fastapi import Request

from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import UnauthorizedError


def get_service(request: Request) -> PlatformService:
    """The running :class:`PlatformService`."""
    return request.app.state.service


def authorized(request: Request) -> bool:
    """True if the call carries the service's bearer token, or the service has none (loopback only)."""
    token = request.app.state.service.api_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def require_token(request: Request) -> None:
    """Refuse the call unless it carries the service's bearer token.

    The service has one whenever REST listens beyond loopback (given or generated); only a
    loopback-only service without a configured token is open.
    """
    if not authorized(request):
        raise UnauthorizedError("REST: expected header 'Authorization: Bearer <token>'; got none or a wrong token")
