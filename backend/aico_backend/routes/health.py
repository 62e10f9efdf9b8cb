"""``/v1/health``, ``/v1/ready`` and ``/v1/tasks``."""

from __future__ import annotations

from dataclasses import asdict
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from aico.errors import AicoError
from aico.operations import health_report
from aico_backend.deps import Auth, Svc
from aico_backend.errors import error_body

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["service"])


def _version() -> str:
    try:
        return metadata.version("aico")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed here
        return "unknown"


@router.get("/health", summary="The service, its scheduler and its stores")
async def health(svc: Svc, who: Auth) -> dict[str, Any]:
    jobs = await svc.scheduler.status() if svc.scheduler is not None else []
    try:
        pending = await svc.run(svc.memory.sync.semantic.pending_outbox)
    except AicoError as exc:
        pending = None
        store_error: str | None = type(exc).__name__
    else:
        store_error = None
    failing = [j["name"] for j in jobs if j["status"] == "failed"]
    # The admin also gets the data dir's report (``aico health``: sizes, disk, backlog,
    # index, errors, backup age, alerts), without the drift count, which reads every id.
    storage: dict[str, Any] | None = None
    if who.is_admin and store_error is None:
        report = await svc.run(health_report, svc.memory.sync, drift=False)
        storage = report.to_dict()
        critical = report.status == "critical"
    else:
        critical = False
    return {
        "status": "degraded" if failing or store_error or critical else "ok",
        "version": _version(),
        "uptime_s": round(svc.clock() - svc.started_at, 3),
        "read_only": svc.read_only,
        "scheduler": {
            "running": svc.scheduler is not None and svc.scheduler.running,
            "jobs": jobs,
            "recovered": list(svc.scheduler.recovered) if svc.scheduler else [],
        },
        "semantic_outbox_pending": pending,
        "store_error": store_error,
        "last_repair": asdict(svc.memory.last_repair),
        "storage": storage,
    }


@router.get("/ready", summary="Whether the service takes requests")
async def ready(svc: Svc, who: Auth) -> JSONResponse:
    if not svc.ready or svc.memory.closed:
        return JSONResponse(
            error_body("StoreClosed", "the service is starting or stopping"), status_code=503
        )
    return JSONResponse({"ready": True})


@router.get("/tasks", summary="Scheduled jobs and their recent runs (admin)")
async def tasks(
    svc: Svc, who: Auth, history: Annotated[int, Query(ge=0, le=1000)] = 20
) -> dict[str, Any]:
    who.require_admin()
    jobs = await svc.run(svc.tasks.jobs)
    runs = await svc.run(svc.tasks.history, limit=history) if history else []
    return {"jobs": [asdict(t) for t in jobs], "history": [asdict(t) for t in runs]}
