"""``/jobs``: list, get, submit, cancel, and a job's worker log."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import PlainTextResponse

from clara_stream.platform.api.deps import get_service
from clara_stream.platform.schemas import JobInfo, JobStatus, JobSubmit
from clara_stream.platform.service import PlatformService

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=list[JobInfo])
def list_jobs(
    status_: JobStatus | None = Query(None, alias="status"),
    pipeline: str | None = None,
    limit: int = Query(200, ge=1, le=10000),
    svc: PlatformService = Depends(get_service),
):
    """Newest first."""
    return svc.queue.list(status=status_, pipeline=pipeline, limit=limit)


@router.post("", response_model=JobInfo, status_code=status.HTTP_201_CREATED)
def submit_job(req: JobSubmit, svc: PlatformService = Depends(get_service)):
    return svc.submit(req)


@router.get("/{job_id}", response_model=JobInfo)
def get_job(job_id: str, svc: PlatformService = Depends(get_service)):
    return svc.queue.get(job_id)


@router.post("/{job_id}/cancel", response_model=JobInfo)
def cancel_job(job_id: str, svc: PlatformService = Depends(get_service)):
    """Cancel a queued job, or stop a running one (its status turns 'cancelled' when it exits)."""
    return svc.cancel(job_id)


@router.get("/{job_id}/instances")
def job_instances(job_id: str, svc: PlatformService = Depends(get_service)) -> list[dict]:
    """The received DICOM instances a job was made from (empty for jobs submitted over REST).

    ``conflict`` is set where the same SOP Instance UID also arrived with other content or in
    another study/series (kept apart: the job saw only its own); ``state`` 'superseded' marks an
    older version of an instance that a newer one replaced in this group.
    """
    row = svc.queue.row(job_id)
    if row["group_id"] is None:
        return []
    rows = svc.db.query(
        "SELECT sop_uid, sop_class, study_uid, series_uid, calling_ae, calling_host, called_ae, received_at, size, "
        "state, conflict FROM instance WHERE group_id = ? ORDER BY id",
        (row["group_id"],),
    )
    return [dict(r) for r in rows]


@router.get("/{job_id}/attempts")
def job_attempts(job_id: str, svc: PlatformService = Depends(get_service)) -> list[dict]:
    """Each run of a job: worker, start, end and outcome (a worker lost mid-job shows as ``lost: …``)."""
    svc.queue.row(job_id)  # 404 for an unknown id
    rows = svc.db.query(
        "SELECT attempt, worker, started_at, finished_at, outcome FROM job_attempt WHERE job_id = ? ORDER BY id",
        (job_id,),
    )
    return [dict(r) for r in rows]


@router.get("/{job_id}/log", response_class=PlainTextResponse)
def job_log(job_id: str, svc: PlatformService = Depends(get_service)) -> str:
    """The latest worker log of the job (empty before it first ran)."""
    out = Path(svc.queue.get(job_id).output_dir).parent
    logs = sorted(out.glob("worker-*.log"), key=lambda p: int(p.stem.split("-")[1]))
    return logs[-1].read_text(errors="replace") if logs else ""
