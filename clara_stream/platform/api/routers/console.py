"""The live console page (static HTML polling ``/pipelines`` and ``/jobs``)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console", response_class=HTMLResponse)
def console() -> str:
    """Pipelines (name, registered, queued) and jobs (id, status, priority, start, duration), live."""
    return resources.files("clara_stream.platform.console").joinpath("index.html").read_text()
