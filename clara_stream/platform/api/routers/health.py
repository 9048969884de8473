"""``/health``: liveness plus what the service is doing."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from clara_stream import __version__
from clara_stream.platform.api.deps import authorized, get_service
from clara_stream.platform.grouper import failed_groups
from clara_stream.platform.service import PlatformService

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request, svc: PlatformService = Depends(get_service)) -> dict:
    """Liveness for anyone; the failed groups (their study/series UIDs identify patients' studies)
    only for a caller with the token."""
    counts = {r["status"]: r["n"] for r in svc.db.query("SELECT status, COUNT(*) AS n FROM job GROUP BY status")}
    outbox = {r["state"]: r["n"] for r in svc.db.query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")}
    adapter = svc.adapter
    conflicts = svc.db.query_one("SELECT COUNT(*) AS n FROM instance WHERE conflict IS NOT NULL")["n"]
    return {
        "status": "ok" if svc.started else "stopped",
        "version": __version__,
        "aeTitle": svc.settings.ae_title,
        "dicomPort": svc.dicom_port,
        "tls": svc.settings.tls_enabled,
        "activeAssociations": adapter.active_count() if adapter else 0,
        "jobs": counts,
        "outbox": outbox,
        "instanceConflicts": conflicts,
        "failedGroups": failed_groups(svc.db)[:20] if authorized(request) else "token required",
        "lowSpace": adapter.space_problem() if adapter else None,
    }
