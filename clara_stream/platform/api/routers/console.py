"""The live console: static pages and scripts that read the REST API (nothing of the data is in the HTML).

Pages: ``/console`` (pipelines and jobs), ``/console/jobs/{id}`` (the execution view),
``/console/pipelines/{id}``. They are served without the token, like before; every API call they
make carries it (``/console#token=…``, kept per tab). Every response has a Content-Security-Policy
that allows only this origin's scripts and styles (no inline script), so data that reached the page
as text can never run.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from clara_stream.platform.status import NotFoundError

router = APIRouter(tags=["console"])

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}
#: the only files /console/static serves, with their types
STATIC = {"console.css": "text/css", "common.js": "text/javascript", "graph.js": "text/javascript",
          "index.js": "text/javascript", "job.js": "text/javascript", "pipeline.js": "text/javascript"}


def _file(name: str, media_type: str) -> Response:
    text = resources.files("clara_stream.platform.console").joinpath(name).read_text()
    return Response(text, media_type=media_type, headers=HEADERS)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console", include_in_schema=False)
def console() -> Response:
    """Pipelines (name, registered, queued) and jobs (id, status, priority, start, duration), live."""
    return _file("index.html", "text/html")


@router.get("/console/jobs/{job_id}", include_in_schema=False)
def job_page(job_id: str) -> Response:
    """A job's graph with per-operator state, messages and times; inputs, outputs, log, cancel, retry."""
    return _file("job.html", "text/html")


@router.get("/console/pipelines/{name}", include_in_schema=False)
def pipeline_page(name: str) -> Response:
    """A pipeline's graph, recent jobs with durations, failures with reasons."""
    return _file("pipeline.html", "text/html")


@router.get("/console/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFoundError(f"console: expected one of {sorted(STATIC)}; got {name!r}")
    return _file(name, STATIC[name])
