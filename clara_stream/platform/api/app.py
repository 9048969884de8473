"""The FastAPI app: routers per resource, errors mapped through the status table."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from clara_stream import __version__
from clara_stream.errors import DicomInputError
from clara_stream.loopback import is_loopback, refusal
from clara_stream.platform.api.deps import require_token
from clara_stream.platform.api.routers import config, console, health, jobs, pipelines, results
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import PlatformError, status_for

log = logging.getLogger(__name__)


def create_app(service: PlatformService, *, manage: bool = True) -> FastAPI:
    """The REST app over ``service``.

    Parameters
    ----------
    service : the platform service the routes read and drive.
    manage : start the service on app start-up and stop it on shutdown (False when the caller does).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage and not service.started:
            service.start()
        try:
            yield
        finally:
            if manage:
                service.stop()

    app = FastAPI(
        title="clara-stream platform",
        version=__version__,
        lifespan=lifespan,
        description="DICOM adapter configuration, jobs, results and the live console.",
    )
    app.state.service = service

    async def _error(request: Request, exc: Exception) -> JSONResponse:
        code = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if code.http == 401 else None
        return JSONResponse(status_code=code.http, content={"detail": str(exc), "error": code.title}, headers=headers)

    for exc_type in (PlatformError, DicomInputError, ValueError, OSError):
        app.add_exception_handler(exc_type, _error)
    loopback_only = is_loopback(service.settings.http_host)

    @app.middleware("http")
    async def _this_machine(request: Request, call_next):  # noqa: ANN202 - Starlette's middleware shape
        why = refusal("REST", request.headers.get("host", ""), request.headers.get("origin"),
                      loopback_only=loopback_only, has_token=service.api_token is not None)
        if why:
            title = "Misdirected Request" if why[0] == 421 else "Forbidden"
            return JSONResponse(status_code=why[0], content={"error": title, "detail": why[1]})
        return await call_next(request)
    for r in (health.router, console.router):
        app.include_router(r)
    for r in (config.router, pipelines.router, jobs.router, results.router):
        app.include_router(r, dependencies=[Depends(require_token)])
    return app
