"""``/jobs``: list, get, submit, cancel, retry; a job's operators, graph, output files and worker log."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import FileResponse, PlainTextResponse

from clara_stream.platform import execution
from clara_stream.platform.api.deps import get_service
from clara_stream.platform.grpc.payloads import confined
from clara_stream.platform.jobs import FINISHED
from clara_stream.platform.pipeline_files import graph_of
from clara_stream.platform.schemas import JobInfo, JobStatus, JobSubmit, OperatorProgress
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import ConflictError

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


@router.post("/{job_id}/start", response_model=JobInfo)
def start_job(job_id: str, svc: PlatformService = Depends(get_service)):
    """Queue a job submitted with ``start: false`` (409 unless it is 'created')."""
    info = svc.queue.start(job_id)
    svc.scheduler.wake()
    return info


@router.post("/{job_id}/retry", response_model=JobInfo, status_code=status.HTTP_201_CREATED)
def retry_job(job_id: str, svc: PlatformService = Depends(get_service)):
    """Run a finished job again: a new job with the same pipeline, input, priority and destinations."""
    old = svc.queue.get(job_id)
    if old.status not in FINISHED:
        raise ConflictError(f"job {job_id}: expected a finished job to retry; got {old.status}")
    return svc.submit(JobSubmit(pipeline=old.pipeline, input=old.input_dir, priority=old.priority,
                                destinations=old.destinations))


@router.get("/{job_id}/operators", response_model=list[OperatorProgress])
def job_operators(job_id: str, svc: PlatformService = Depends(get_service)):
    """Each operator of the job's latest attempt: state, messages, time total/p50/p95, error (graph order;
    empty before its app first reported)."""
    svc.queue.row(job_id)  # 404 for an unknown id
    return execution.operators(svc.db, job_id)


@router.get("/{job_id}/graph")
def job_graph(job_id: str, svc: PlatformService = Depends(get_service)) -> dict:
    """The graph the job's app ran (``source`` 'job'); before it started, its pipeline's (``source`` 'pipeline')."""
    row = svc.queue.row(job_id)
    graph = execution.job_graph(svc.db, job_id)
    if graph is not None:
        return {**graph, "source": "job"}
    return {**graph_of(svc.config.pipeline(row["pipeline"])), "source": "pipeline"}


@router.get("/{job_id}/files/{path:path}")
def job_file(job_id: str, path: str, svc: PlatformService = Depends(get_service)) -> FileResponse:
    """One output file of the job (a path inside its output folder; anything else is refused)."""
    file = confined(Path(svc.queue.get(job_id).output_dir), path)
    return FileResponse(file, filename=file.name, media_type="application/octet-stream")


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
