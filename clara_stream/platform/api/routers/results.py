"""``/results``: output files of jobs and their export state per destination."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from clara_stream.platform.api.deps import get_service
from clara_stream.platform.schemas import ResultInfo
from clara_stream.platform.service import PlatformService

router = APIRouter(prefix="/results", tags=["results"])


@router.get("", response_model=list[ResultInfo])
def list_results(
    job_id: str | None = None,
    limit: int = Query(500, ge=1, le=100000),
    svc: PlatformService = Depends(get_service),
):
    if job_id is not None:
        svc.queue.row(job_id)  # 404 for an unknown job rather than an empty list
    return svc.results.results(job_id=job_id, limit=limit)


@router.get("/{result_id}", response_model=ResultInfo)
def get_result(result_id: int, svc: PlatformService = Depends(get_service)):
    return svc.results.result(result_id)


@router.post("/retry/{job_id}")
def retry_exports(job_id: str, svc: PlatformService = Depends(get_service)) -> dict:
    """Requeue a job's failed exports."""
    return {"job_id": job_id, "requeued": svc.results.retry(job_id)}
