"""The FastAPI app: routes, error format, limits, metrics, and the model's lifecycle.

``create_app()`` is the factory uvicorn runs (``uvicorn onlstm.service.app:create_app --factory``).
The model is loaded once, in a background thread started by ``lifespan``: ``/health``
answers at once, ``/ready`` says 503 until the model is loaded (and stays 503, with
the reason, if it cannot be), and ``/parse`` hands sentences to the micro-batcher,
which runs the model in a thread pool so the event loop never waits on torch.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..models.checkpoint import CheckpointError
from ..models.parser import Parser, ParseResult
from ..models.text import Sentence, split_text
from .batcher import BatcherUnavailable, MicroBatcher
from .schemas import (
    PARSE_EXAMPLES,
    ErrorResponse,
    Health,
    ModelCard,
    ModelName,
    ParseRequest,
    ParseResponse,
    Readiness,
)
from .settings import Settings, load_settings

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("onlstm.service.access")

STATIC_DIR = Path(__file__).resolve().parent / "static"
ParserLoader = Callable[[Settings], Parser]


# --- errors ----------------------------------------------------------------------------


class APIError(Exception):
    """An error answered as ``{"error": {"code", "message", "limit"?, "value"?}}``."""

    def __init__(self, status: int, code: str, message: str, limit: str | None = None, value: int | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.limit, self.value = status, code, message, limit, value
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"code": code, "message": message, **{key: value for key, value in extra.items() if value is not None}}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _validation_summary(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for problem in errors:
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(location) or "body", "problem": problem.get("msg", ""), "type": problem.get("type")})
    first = details[0] if details else {"field": "body", "problem": "invalid request", "type": None}
    if first["field"] == "body" and first["type"] in ("model_attributes_type", "dict_type", "missing"):
        return "the body must be a JSON object; send it with Content-Type: application/json", details
    problem = first["problem"].removeprefix("Value error, ")
    message = f"{first['field']}: {problem}" if first["field"] != "body" else problem
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''}, see details)"
    return message, details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers, limit=error.limit, value=error.value)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        invalid_json = next((problem for problem in errors if problem.get("type") == "json_invalid"), None)
        if invalid_json is not None:
            reason = (invalid_json.get("ctx") or {}).get("error", "malformed JSON")
            position = invalid_json.get("loc", ("body", "?"))[-1]
            return error_response(400, "invalid_json", f"the body is not valid JSON ({reason} at character {position})")
        message, details = _validation_summary(errors)
        return error_response(422, "invalid_request", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        code = _HTTP_CODES.get(error.status_code, "http_error")
        if error.status_code == 404:
            message = f"no such endpoint {request.url.path}; the API is described at /docs"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; the API is described at /docs"
        elif error.status_code == 400 and "parsing the body" in message:
            # fastapi's wording for a body that cannot be decoded (e.g. invalid UTF-8)
            code, message = "invalid_json", "the body could not be read as JSON; send UTF-8 encoded JSON"
        return error_response(error.status_code, code, message,
                              getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s (request %s)", request.method, request.url.path,
                         getattr(request.state, "request_id", "-"))
        return error_response(500, "internal_error", "unexpected server error; the server log has the details")


# --- metrics ---------------------------------------------------------------------------


class Metrics:
    """Prometheus metrics in a registry of their own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("onlstm_http_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "onlstm_http_request_duration_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.sentences = Counter("onlstm_sentences_parsed", "Sentences parsed", registry=self.registry)
        self.tokens = Counter("onlstm_tokens_parsed", "Tokens parsed", registry=self.registry)
        self.batch_sentences = Histogram(
            "onlstm_batch_sentences", "Sentences per model call", registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.batch_requests = Histogram(
            "onlstm_batch_requests", "Requests per model call", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64)
        )
        self.batch_seconds = Histogram(
            "onlstm_batch_duration_seconds", "Time of one model call", registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge("onlstm_parse_requests_in_flight", "Parse requests queued or being parsed",
                               registry=self.registry)
        self.ready = Gauge("onlstm_model_ready", "1 once the model is loaded", registry=self.registry)

    def observe_batch(self, requests: int, sentences: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_sentences.observe(sentences)
        self.batch_seconds.observe(seconds)


class MetricsMiddleware:
    """Counts every request by route template (bounded label values) and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Callable[[], set[str]]):
        self.app, self.metrics, self._list_routes = app, metrics, routes
        self._routes: set[str] | None = None

    def routes(self) -> set[str]:
        if self._routes is None:  # routes are all registered before the first request
            self._routes = self._list_routes()
        return self._routes

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        path = scope.get("path", "")
        if path in self.routes():
            return path
        return "/static" if path.startswith("/static/") else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


class BodyLimitMiddleware:
    """Refuses bodies over ``limit`` bytes with 413, whether or not they declare a Content-Length.

    The body is read here (at most ``limit`` bytes are ever held) and replayed to the app,
    so a chunked upload cannot grow past the limit before the app sees it.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def _refuse(self, send: Send) -> None:
        response = error_response(
            413, "body_too_large",
            f"the request body is larger than {self.limit} bytes; send fewer or shorter sentences per request "
            "(limit ONLSTM_MAX_BODY_BYTES)",
            limit="max_body_bytes", value=self.limit,
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nobody to answer
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestLogMiddleware:
    """One log line per request: its id, method, path, status, duration and body size.

    The id is the client's ``X-Request-ID`` when it is a plain token (so it can be traced across
    services), else a new random one; it is sent back in the ``X-Request-ID`` response header.
    The body (the text parsed) is logged only when ``log_text`` (ONLSTM_LOG_REQUEST_TEXT) is on,
    and then at most ``TEXT_LOGGED`` bytes of it.
    """

    TEXT_LOGGED = 2000

    def __init__(self, app: ASGIApp, log_text: bool = False):
        self.app, self.log_text = app, log_text

    @staticmethod
    def request_id(scope: Scope) -> str:
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        if 0 < len(given) <= 64 and all(char.isascii() and (char.isalnum() or char in "-_.:") for char in given):
            return given
        return uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self.request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status, received = 500, 0
        head = bytearray()

        async def receive_and_count() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if self.log_text and len(head) < self.TEXT_LOGGED:
                    head.extend(body[: self.TEXT_LOGGED - len(head)])
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive_and_count, send_with_id)
        finally:
            milliseconds = 1000 * (time.perf_counter() - started)
            text = f" body={bytes(head).decode('utf-8', 'replace')!r}" if self.log_text and head else ""
            access_logger.info("request %s %s %s -> %d in %.1f ms (%d bytes in)%s", request_id,
                               scope.get("method", ""), scope.get("path", ""), status, milliseconds, received, text)


# --- the service's state -----------------------------------------------------------------


def checkpoint_version(parser: Parser) -> str:
    """A short content version: the prefix of the weights' SHA-256 recorded in the checkpoint."""
    recorded = parser.metadata.get("version")
    if recorded:
        return str(recorded)
    if parser.path is not None:
        try:
            from safetensors import safe_open

            with safe_open(str(parser.path), framework="pt") as opened:
                digest = (opened.metadata() or {}).get("sha256")
            if digest:
                return digest[:12]
        except Exception:  # the version is informative only; never fail serving over it
            logger.warning("could not read the checkpoint's digest from %s", parser.path)
    return "unknown"


def default_loader(settings: Settings) -> Parser:
    return Parser.load(settings.checkpoint, device=settings.device)


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    parser: Parser | None = None
    model: ModelName | None = None
    load_error: str | None = None
    batcher: MicroBatcher | None = None
    background: set[asyncio.Task] = field(default_factory=set)

    def require_parser(self) -> tuple[Parser, MicroBatcher]:
        if self.parser is None or self.batcher is None:
            if self.load_error is not None:
                raise APIError(503, "model_unavailable", f"the model could not be loaded: {self.load_error}",
                               headers={"Retry-After": "60"})
            raise APIError(503, "model_loading", "the model is still loading; retry in a few seconds",
                           headers={"Retry-After": "5"})
        return self.parser, self.batcher


def get_service(request: Request) -> ServiceState:
    return request.app.state.service


Service = Annotated[ServiceState, Depends(get_service)]


def require_api_key(request: Request) -> None:
    """With ONLSTM_API_KEY set, the request must carry it (X-API-Key, or Authorization: Bearer)."""
    expected = request.app.state.service.settings.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else None
    if given is None:
        raise APIError(401, "unauthorized", "this service needs an API key: send it in an X-API-Key header "
                       "(or Authorization: Bearer <key>)", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise APIError(401, "unauthorized", "the API key is not valid; check the X-API-Key header",
                       headers={"WWW-Authenticate": "Bearer"})


# --- request preparation (runs in a worker thread: tokenizing a large text takes time) ----


@dataclass
class PreparedInput:
    sentences: list[Sentence]  # built once here, carried through the parser to the results

    @property
    def n_tokens(self) -> int:
        return sum(len(sentence.tokens) for sentence in self.sentences)


def prepare_input(request: ParseRequest, settings: Settings) -> PreparedInput:
    """Split and tokenize the request and enforce the limits; nothing here touches the model."""

    def too_many(count: int) -> APIError:
        return APIError(
            413, "too_many_sentences",
            f"the request has {count} sentences; at most {settings.max_sentences} are accepted per request "
            "(limit ONLSTM_MAX_SENTENCES): split the input over several requests",
            limit="max_sentences", value=settings.max_sentences,
        )

    if request.text is not None:
        sentences = split_text(request.text)
    elif request.sentences is not None:
        if len(request.sentences) > settings.max_sentences:
            raise too_many(len(request.sentences))
        sentences = [Sentence.from_text(sentence) for sentence in request.sentences]
    else:
        assert request.tokens is not None  # the schema guarantees exactly one input form
        if len(request.tokens) > settings.max_sentences:
            raise too_many(len(request.tokens))
        sentences = [Sentence(tuple(tokens)) for tokens in request.tokens]
    if len(sentences) > settings.max_sentences:
        raise too_many(len(sentences))
    if not sentences:
        raise APIError(422, "no_sentences", "the text has no words to parse")
    for number, sentence in enumerate(sentences, start=1):
        check_sentence(number, sentence, settings)
    return PreparedInput(sentences)


def check_sentence(number: int, sentence: Sentence, settings: Settings) -> None:
    """The per-sentence limits; sentences are counted from 1, as the results are shown."""
    if not sentence.tokens:
        raise APIError(422, "empty_sentence", f"sentence {number} has no tokens; remove it or add words")
    if len(sentence.tokens) > settings.max_tokens_per_sentence:
        raise APIError(
            422, "sentence_too_long",
            f"sentence {number} has {len(sentence.tokens)} tokens; at most {settings.max_tokens_per_sentence} are "
            "accepted (limit ONLSTM_MAX_TOKENS_PER_SENTENCE): split it into shorter sentences",
            limit="max_tokens_per_sentence", value=settings.max_tokens_per_sentence,
        )
    for position, token in enumerate(sentence.tokens, start=1):
        if len(token) > settings.max_token_chars:
            raise APIError(
                422, "token_too_long",
                f"token {position} of sentence {number} has {len(token)} characters; at most "
                f"{settings.max_token_chars} are accepted (limit ONLSTM_MAX_TOKEN_CHARS)",
                limit="max_token_chars", value=settings.max_token_chars,
            )


def render_results(results: list[ParseResult], all_layers: bool) -> list[dict[str, Any]]:
    return [result.to_dict(all_layers) for result in results]


# --- routes ----------------------------------------------------------------------------

router = APIRouter()
ERRORS = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON"},
    401: {"model": ErrorResponse, "description": "An API key is configured and the request lacks it (X-API-Key)"},
    413: {"model": ErrorResponse, "description": "A size limit was exceeded (body bytes, sentences per request)"},
    422: {"model": ErrorResponse, "description": "Invalid request, or a per-sentence limit was exceeded"},
    503: {"model": ErrorResponse, "description": "The model is not loaded yet, or the service is overloaded"},
}


@router.post("/parse", response_model=ParseResponse, responses=ERRORS, summary="Parse sentences into binary trees",
             dependencies=[Depends(require_api_key)])
async def parse(
    payload: Annotated[ParseRequest, Body(openapi_examples=PARSE_EXAMPLES)], service: Service
) -> dict[str, Any]:
    """Give exactly one of `text`, `sentences` or `tokens`; get one result per sentence, in order."""
    parser, batcher = service.require_parser()
    try:
        key = parser.check_options(payload.layer, payload.decoder, payload.punctuation)
    except ValueError as error:
        code = "invalid_layer" if str(error).startswith("layer") else "unsupported_option"
        raise APIError(422, code, str(error)) from None
    prepared = await run_in_threadpool(prepare_input, payload, service.settings)
    service.metrics.in_flight.inc()
    try:
        results = await batcher.submit(prepared.sentences, key)
    except BatcherUnavailable as error:
        raise APIError(503, "overloaded", str(error), headers={"Retry-After": str(error.retry_after)}) from None
    finally:
        service.metrics.in_flight.dec()
    records = await run_in_threadpool(render_results, results, payload.all_layers)
    service.metrics.sentences.inc(len(records))
    service.metrics.tokens.inc(prepared.n_tokens)
    return {"model": service.model, "results": records}


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}}, summary="Readiness: the model is loaded")
async def ready(service: Service) -> Any:
    if service.parser is not None:
        return Readiness(status="ready", model=service.model)
    if service.load_error is not None:
        body = Readiness(status="failed", error=service.load_error)
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "60"})
    return JSONResponse(Readiness(status="loading").model_dump(), status_code=503, headers={"Retry-After": "5"})


@router.get("/model", response_model=ModelCard, responses={503: {"model": ErrorResponse}}, summary="The model and its card")
async def model_card(service: Service) -> ModelCard:
    parser, _ = service.require_parser()
    metadata = parser.metadata
    assert service.model is not None
    return ModelCard(
        name=service.model.name,
        version=service.model.version,
        path=str(parser.path) if parser.path else None,
        n_layers=parser.n_layers,
        default_layer=parser.default_layer,
        default_decoder=parser.default_decoder,
        punctuation=parser.default_punctuation,
        vocabulary_size=len(parser.vocab),
        parameters=sum(parameter.numel() for parameter in parser.model.parameters()),
        config=parser.model.config.to_dict(),
        training_data=metadata.get("training_data"),
        dev_perplexity=metadata.get("dev_perplexity"),
        dev_f1=metadata.get("dev_f1"),
        dev_f1_per_layer=metadata.get("dev_f1_per_layer"),
        metadata=json.loads(json.dumps(metadata, default=str)),  # anything odd in the card becomes a string
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: Service) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


# --- the app -----------------------------------------------------------------------------


def configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    root = logging.getLogger()
    if not root.handlers:  # uvicorn configures only its own loggers; ours would otherwise be silent
        logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("service", "models"):
        logging.getLogger(name).setLevel(numeric)


async def _load_model(app: FastAPI, load: ParserLoader) -> None:
    state: ServiceState = app.state.service
    settings = state.settings
    started = time.perf_counter()

    def load_and_warm() -> Parser:
        parser = load(settings)
        parser.parse([["warm", "up"]])  # the first call pays one-off costs; users should not
        return parser

    try:
        parser = await asyncio.to_thread(load_and_warm)
    except CheckpointError as error:
        hint = "" if settings.checkpoint else "; set ONLSTM_CHECKPOINT (or --checkpoint) to a release checkpoint"
        state.load_error = f"{error}{hint}"
        logger.error("cannot serve: %s", state.load_error)
        return
    except Exception as error:
        state.load_error = f"{type(error).__name__}: {error}"
        logger.exception("cannot serve: loading the model failed")
        return
    version = checkpoint_version(parser)
    state.model = ModelName(name=parser.name, version=version)
    state.parser = parser
    state.metrics.ready.set(1)
    logger.info("model %s (version %s, %d layers) loaded from %s in %.1f s", parser.name, version, parser.n_layers,
                parser.path, time.perf_counter() - started)


def create_app(settings: Settings | None = None, load_parser: ParserLoader | None = None) -> FastAPI:
    """The service app.  ``load_parser`` replaces how the model is loaded (tests use it)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    load = load_parser or default_loader
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServiceState = app.state.service
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        executor = ThreadPoolExecutor(max_workers=settings.concurrent_batches, thread_name_prefix="onlstm-parse")

        def run_parse(items: list[Sentence], key: tuple[int, str, str]) -> list[ParseResult]:
            assert state.parser is not None  # requests reach the batcher only once the model is loaded
            layer, decoder, punctuation = key
            return state.parser.parse_many(items, layer=layer, decoder=decoder, punctuation=punctuation,
                                           batch_size=settings.batch_max_sentences)

        batcher = MicroBatcher(
            run_parse, executor,
            max_sentences=settings.batch_max_sentences,
            max_wait=settings.batch_max_wait_ms / 1000,
            concurrent_batches=settings.concurrent_batches,
            max_queue_wait=settings.max_queue_wait_s,
            max_queued=settings.max_queued_requests,
            on_batch=metrics.observe_batch,
        )
        batcher.start()
        state.batcher = batcher
        loading = asyncio.get_running_loop().create_task(_load_model(app, load), name="onlstm-load-model")
        state.background.add(loading)
        loading.add_done_callback(state.background.discard)
        try:
            yield
        finally:
            await batcher.stop()
            # a load still running cannot be interrupted (it is in a thread); do not wait for it
            executor.shutdown(wait=False, cancel_futures=True)

    try:
        version = package_version("onlstm-parser")
    except PackageNotFoundError:
        version = "0.0.0"
    app = FastAPI(
        title="ON-LSTM constituency parser",
        version=version,
        description="Unsupervised constituency parsing with an Ordered-Neurons LSTM language model "
        "(Shen et al., 2019). POST sentences to `/parse`; the page at `/` draws the trees.",
        lifespan=lifespan,
    )
    app.state.service = ServiceState(settings=settings, metrics=metrics)
    install_error_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # added last = outermost: metrics also see the 413s the body limit answers
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics,
                       routes=lambda: {getattr(route, "path", "") for route in app.routes})
    if settings.cors_origins:  # off unless configured: browsers then refuse cross-origin calls
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
    app.add_middleware(RequestLogMiddleware, log_text=settings.log_request_text)
    return app
