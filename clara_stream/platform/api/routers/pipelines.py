"""``/pipelines``: registered pipelines (app + resource needs) with queue depth."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from clara_stream.platform.api.deps import get_service
from clara_stream.platform.pipeline_files import graph_of
from clara_stream.platform.schemas import PipelineConfig, PipelineInfo
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import InvalidRequestError

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[PipelineInfo])
def list_pipelines(svc: PlatformService = Depends(get_service)):
    return svc.config.pipelines()


@router.get("/{name}", response_model=PipelineConfig)
def get_pipeline(name: str, svc: PlatformService = Depends(get_service)):
    return svc.config.pipeline(name)


@router.put("/{name}", response_model=PipelineConfig)
def put_pipeline(name: str, item: PipelineConfig, svc: PlatformService = Depends(get_service)):
    """Register (or replace) a pipeline."""
    if item.name != name:
        raise InvalidRequestError(f"name: expected {name!r} as in the URL; got {item.name!r}")
    return svc.config.put_pipeline(item)


@router.delete("/{name}", response_model=PipelineConfig)
def delete_pipeline(name: str, svc: PlatformService = Depends(get_service)):
    return svc.config.delete_pipeline(name)


@router.get("/{name}/graph")
def pipeline_graph(name: str, svc: PlatformService = Depends(get_service)) -> dict:
    """Operators (typed ports) and edges, from the same description as `clara-stream graph` (in a subprocess:
    the service never imports an app)."""
    return graph_of(svc.config.pipeline(name))

