"""GET /health (liveness: the process answers) and GET /ready (readiness: the model is loaded, and the
service is not draining)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...schemas import Health, Readiness
from ..deps import Service

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}},
            summary="Readiness: the model is loaded")
async def ready(service: Service) -> Any:
    """200 once the model is loaded; 503 while loading (with Retry-After), 503 with the reason
    and no Retry-After when it cannot be loaded (a bad checkpoint does not fix itself), and 503
    "draining" from SIGTERM on (the process is about to exit)."""
    if service.admission.draining:
        return JSONResponse(Readiness(status="draining", model=service.model).model_dump(), status_code=503)
    if service.parser is not None:
        waiting = await service.replicas_waiting() if service.replicas_waiting is not None else None
        if waiting is not None:
            return JSONResponse(Readiness(status="loading", model=service.model, error=waiting).model_dump(),
                                status_code=503, headers={"Retry-After": "5"})
        return Readiness(status="ready", model=service.model)
    if service.load_error is not None:
        return JSONResponse(Readiness(status="failed", error=service.load_error).model_dump(), status_code=503)
    return JSONResponse(Readiness(status="loading").model_dump(), status_code=503, headers={"Retry-After": "5"})
