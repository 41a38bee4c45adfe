"""GET /health (liveness: the process answers) and GET /ready (readiness: the model of every language
served is loaded, and the service is not draining)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...schemas import Health, Readiness, ReadinessStatus
from ...state import ServiceState
from ..deps import Service

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


def readiness(service: ServiceState, status: ReadinessStatus, error: str | None = None) -> Readiness:
    """The answer, with the default language's model once loaded and every language's state."""
    models = service.models
    served = models.loaded.get(models.default_language)
    return Readiness(status=status, model=served.model if served is not None else None, error=error,
                     languages=models.statuses())


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}},
            summary="Readiness: the model of every language served is loaded")
async def ready(service: Service) -> Any:
    """200 once every language's model is loaded (``languages`` gives each one's state); 503 while
    loading (with Retry-After), 503 with the reason and no Retry-After when one cannot be loaded
    (a bad checkpoint does not fix itself), and 503 "draining" from SIGTERM on (the process is about
    to exit)."""
    models = service.models
    if service.admission.draining:
        return JSONResponse(readiness(service, "draining").model_dump(), status_code=503)
    if models.failures:
        return JSONResponse(readiness(service, "failed", models.failure_message()).model_dump(), status_code=503)
    if models.ready:
        waiting = await service.replicas_waiting() if service.replicas_waiting is not None else None
        if waiting is not None:
            return JSONResponse(readiness(service, "loading", waiting).model_dump(), status_code=503,
                                headers={"Retry-After": "5"})
        return readiness(service, "ready")
    return JSONResponse(readiness(service, "loading").model_dump(), status_code=503, headers={"Retry-After": "5"})
