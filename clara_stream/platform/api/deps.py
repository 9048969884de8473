"""FastAPI dependencies: the one service instance lives on ``app.state`` (tests may override)."""

from __future__ import annotations

import hmac

from fastapi import Request

from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import UnauthorizedError


def get_service(request: Request) -> PlatformService:
    """The running :class:`PlatformService`."""
    return request.app.state.service


def require_token(request: Request) -> None:
    """Refuse the call unless it carries the configured bearer token (no token configured: open)."""
    token = request.app.state.service.settings.api_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise UnauthorizedError("REST: expected header 'Authorization: Bearer <token>'; got none or a wrong token")
