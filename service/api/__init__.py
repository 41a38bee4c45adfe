"""The HTTP API: dependencies (``deps``) and one module of routes per concern (``routes``)."""

from fastapi import APIRouter

from .routes import docs, health, model, monitoring, page, parse

api_router = APIRouter()
for module in (parse, health, model, monitoring, page, docs):
    api_router.include_router(module.router)
