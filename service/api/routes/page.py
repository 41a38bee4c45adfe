"""The web page (GET /, its files under /static) and the favicon browsers ask for."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
FAVICON = STATIC_DIR / "favicon.svg"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The page's icon (an SVG: every current browser reads it); 204 rather than 404 without one."""
    if FAVICON.is_file():
        return FileResponse(FAVICON, media_type="image/svg+xml")
    return Response(status_code=204)
