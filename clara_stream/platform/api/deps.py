"""FastAPI dependencies: the one service instance lives on ``app.state`` (tests may override)."""

from __future__ import annotations

from fastapi import Request

from clara_stream.platform.service import PlatformService


def get_service(request: Request) -> PlatformService:
    """The running :class:`PlatformService`."""
    return request.app.state.service
