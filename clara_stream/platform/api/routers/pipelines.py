"""``/pipelines``: registered pipelines (app + resource needs) with queue depth.

``POST /pipelines`` creates one from an uploaded pipeline file: a JSON :class:`PipelineUpload`
(``{"pipelineFile": "<yaml>", "name": …}``) or the YAML itself (``Content-Type: application/yaml``,
options as query parameters); see :mod:`clara_stream.platform.pipeline_uploads` for the rule.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from clara_stream.platform.api.deps import get_service
from clara_stream.platform.pipeline_files import graph_of
from clara_stream.platform.pipeline_uploads import FIELD, MAX_BYTES, check_put, create_pipeline
from clara_stream.platform.schemas import PipelineConfig, PipelineInfo, PipelineUpload
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import InvalidRequestError, PipelineFileError

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[PipelineInfo])
def list_pipelines(svc: PlatformService = Depends(get_service)):
    return svc.config.pipelines()


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
#: bodies are read up to this much; the file inside is then held to MAX_BYTES (the same answer as gRPC's)
BODY_LIMIT = 4 * MAX_BYTES


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes (never read whole first)."""
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PipelineFileError(f"{FIELD}: expected at most {MAX_BYTES} bytes; got a body over {limit}")
    return bytes(body)


@router.post("", response_model=PipelineConfig)
async def create_from_file(request: Request, name: str | None = Query(None), cpu_memory_mb: int = Query(512),
                           gpu_memory_mb: int = Query(0), max_retries: int = Query(0),
                           timeout_s: float | None = Query(None), overrides: list[str] = Query([], alias="set"),
                           svc: PlatformService = Depends(get_service)):  # fmt: skip
    """Create (or replace) a pipeline from an uploaded pipeline file, checked before anything is stored."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            item = PipelineUpload.model_validate_json(await _bounded_body(request, BODY_LIMIT))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise PipelineFileError(f"{field}: expected {first['msg'].lower()}") from None
    elif kind in YAML_TYPES:
        raw = await _bounded_body(request, BODY_LIMIT)
        try:
            item = PipelineUpload(pipeline_file=raw.decode("utf-8"), name=name, cpu_memory_mb=cpu_memory_mb,
                                  gpu_memory_mb=gpu_memory_mb, max_retries=max_retries, timeout_s=timeout_s,
                                  overrides=overrides)
        except UnicodeDecodeError as exc:
            raise PipelineFileError(f"{FIELD}: expected UTF-8 YAML text; got a byte 0x{raw[exc.start]:02x} at "
                                    f"offset {exc.start}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PipelineFileError(f"{first['loc'][0]}: expected {first['msg'].lower()}") from None
    else:
        raise PipelineFileError(f"content-type: expected application/json or one of {list(YAML_TYPES)}; "
                                f"got {kind or 'none'!r}")
    return await run_in_threadpool(create_pipeline, svc, item)


@router.get("/{name}", response_model=PipelineConfig)
def get_pipeline(name: str, svc: PlatformService = Depends(get_service)):
    return svc.config.pipeline(name)


@router.put("/{name}", response_model=PipelineConfig)
def put_pipeline(name: str, item: PipelineConfig, svc: PlatformService = Depends(get_service)):
    """Register (or replace) a pipeline."""
    if item.name != name:
        raise InvalidRequestError(f"name: expected {name!r} as in the URL; got {item.name!r}")
    check_put(svc, item)
    return svc.config.put_pipeline(item)


@router.delete("/{name}", response_model=PipelineConfig)
def delete_pipeline(name: str, svc: PlatformService = Depends(get_service)):
    return svc.config.delete_pipeline(name)


@router.get("/{name}/graph")
def pipeline_graph(name: str, svc: PlatformService = Depends(get_service)) -> dict:
    """Operators (typed ports) and edges, from the same description as `clara-stream graph` (in a subprocess:
    the service never imports an app)."""
    return graph_of(svc.config.pipeline(name))

