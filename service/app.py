"""The app factory: ``create_app()`` is what ``onlstm serve`` runs.  (``uvicorn
onlstm.service.app:create_app --factory`` runs it too, but without the bounds on request heads
that ``onlstm serve`` adds: its header-read timeout and header size limit, service/protocol.py.)

The rooms, as in the FastAPI full-stack template: routes in ``api/routes/`` (one module per
concern), their dependencies (the service's state, the parser, the API key) in ``api/deps.py``,
the middlewares in ``middleware.py``, the error format in ``errors.py``, the metrics in
``metrics.py``, input preparation (in worker processes, under a time budget) in
``preparation.py``, the model's lifecycle in ``lifecycle.py``, request/response models in
``schemas.py`` and the ``ONLSTM_*`` settings in ``settings.py``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from .api import api_router
from .api.routes.docs import DOCS_ASSETS_DIR, DOCS_ASSETS_URL
from .api.routes.page import STATIC_DIR
from .errors import install_error_handlers
from .lifecycle import BatcherFactory, ParserLoader, make_lifespan
from .logs import configure_logging
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, MetricsMiddleware, RequestLogMiddleware
from .settings import Settings, load_settings
from .state import ServiceState, default_loader

DESCRIPTION = (
    "Unsupervised constituency parsing with an Ordered-Neurons LSTM language model (Shen et al., 2019). "
    "POST sentences to `/parse`; the page at `/` draws the trees. Request bodies are validated strictly: "
    "a field declared boolean, integer or string accepts only a JSON value of that type (no coercion of "
    "`true` to 1 or of `\"yes\"` to true), and unknown fields are refused."
)


def _package_version() -> str:
    try:
        return package_version("onlstm-parser")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings | None = None, load_parser: ParserLoader | None = None,
               make_batcher: BatcherFactory | None = None) -> FastAPI:
    """The service app.  ``load_parser`` replaces how the model is loaded (tests use it), ``make_batcher``
    where requests are parsed (Ray Serve's ingress sends them to model replicas)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    app = FastAPI(
        title="ON-LSTM constituency parser",
        version=_package_version(),
        description=DESCRIPTION,
        lifespan=make_lifespan(load_parser or default_loader, make_batcher),
        docs_url=None,  # served from local assets by api/routes/docs.py
        redoc_url=None,
    )
    app.state.service = ServiceState(settings=settings, metrics=metrics)
    install_error_handlers(app)
    app.include_router(api_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    # added last = outermost: metrics also see the 413s the body limit answers
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=lambda: app.routes)
    if settings.cors_origins:  # off unless configured: browsers then refuse cross-origin calls
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
    app.add_middleware(RequestLogMiddleware, log_text=settings.log_request_text)
    return app
