"""POST /parse: prepare the input (limits first), batch it with other requests, render the results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ....models.options import OptionError, ParseOptions
from ....models.parser import Parser, ParseResult
from ...batcher import BatcherUnavailable
from ...encoding import parse_response_json
from ...errors import APIError
from ...preparation import PreparedInput, prepare_tokens
from ...schemas import PARSE_EXAMPLES, PARSE_RESPONSE_EXAMPLES, ErrorResponse, ParseRequest, ParseResponse
from ...state import ServiceState
from ..deps import Service, require_api_key

router = APIRouter()
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One result per sentence, in order (the examples: the bundled model's answers to the "
          "request examples)", "content": {"application/json": {"examples": PARSE_RESPONSE_EXAMPLES}}},
    400: {"model": ErrorResponse, "description": "The body is not valid JSON"},
    401: {"model": ErrorResponse, "description": "An API key is configured and the request lacks it (X-API-Key)"},
    413: {"model": ErrorResponse, "description": "A size limit was exceeded (body bytes, sentences per request)"},
    422: {"model": ErrorResponse, "description": "Invalid request (the schema is strict: no type coercion), a "
          "per-sentence limit was exceeded, the input took too long to prepare (input_too_complex), an "
          "option does not apply to the loaded model (unsupported_option), or the language is unknown "
          "(unknown_language) or not served here (language_unavailable; `available` lists those served)"},
    503: {"model": ErrorResponse, "description": "The model is not loaded yet (with Retry-After), could not be "
          "loaded (no Retry-After: restart with a good checkpoint), the service is overloaded, or it is shutting "
          "down (shutting_down: not parsed, send it again)"},
}


# Tokens of a request up to this many are checked and rendered on the event loop (well under a
# millisecond): a thread hop each way costs more than the work, and adds threads and memory.
INLINE_TOKENS = 2_000


async def prepare(payload: ParseRequest, service: ServiceState, language: str) -> PreparedInput:
    """Tokens and offsets of the request, within the limits; text is prepared in a worker process, split
    and tokenized as ``language`` is."""
    if payload.tokens is not None:
        if len(payload.tokens) <= service.limits.max_sentences and count_tokens(payload.tokens) <= INLINE_TOKENS:
            return prepare_tokens(payload.tokens, service.limits)
        return await run_in_threadpool(prepare_tokens, payload.tokens, service.limits)
    assert service.preparation is not None  # started with the app
    with service.metrics.prepare_seconds.time():
        return await service.preparation.prepare(payload.text, payload.sentences, service.limits, language)


def count_tokens(sentences: list[list[str]]) -> int:
    return sum(len(tokens) for tokens in sentences)


def batch_key(parser: Parser, options: ParseOptions) -> ParseOptions:
    """The options with the model's defaults filled in, its language included: requests with equal
    ones share a batch, so a batch never holds two languages.

    ``all_layers`` is left out (set false): it changes what is rendered, not the model's work,
    so requests that differ only in it are parsed together and each rendered as it asked.
    """
    try:  # what the loaded model cannot take (a layer it lacks, punctuation="model" without punctuation)
        resolved = parser.resolve(options)
    except OptionError as error:
        raise APIError(422, error.code, str(error)) from None
    return resolved.model_copy(update={"all_layers": False})


def render_results(results: list[ParseResult], all_layers: bool, model: dict[str, Any]) -> bytes:
    records = []
    for result in results:
        record = result.to_dict(all_layers)
        record["model"] = model
        records.append(record)
    return parse_response_json(model, records)


@router.post("/parse", response_model=ParseResponse, responses=RESPONSES, summary="Parse sentences into binary trees",
             dependencies=[Depends(require_api_key)])
async def parse(payload: Annotated[ParseRequest, Body(openapi_examples=PARSE_EXAMPLES)], service: Service) -> Response:
    """Give exactly one of `text`, `sentences` or `tokens`, and optionally the `language` (ISO 639-1,
    default en: GET /model lists those served); get one result per sentence, in order."""
    # counted while in the service, refused once it drains (service/drain.py); here rather than as a
    # FastAPI dependency with yield, whose machinery cost about 4% of the event loop's time a request
    service.admission.enter()
    try:
        body = await answer(payload, service)
    except BaseException as error:
        service.admission.leave(error)
        raise
    service.admission.leave(None)
    # written here rather than through ParseResponse (which documents it): see service.encoding
    return Response(body, media_type="application/json")


async def answer(payload: ParseRequest, service: ServiceState) -> bytes:
    served, batcher = service.require_model(payload.language)
    key = batch_key(served.parser, payload.options())
    prepared = await prepare(payload, service, served.language)
    service.metrics.in_flight.inc()
    try:
        results = await batcher.submit(prepared.sentences, key)
    except BatcherUnavailable as error:
        raise APIError(503, error.code, str(error), headers={"Retry-After": str(error.retry_after)}) from None
    finally:
        service.metrics.in_flight.dec()
    model = served.model.model_dump()
    if prepared.n_tokens <= INLINE_TOKENS and not payload.all_layers:
        body = render_results(results, payload.all_layers, model)
    else:
        body = await run_in_threadpool(render_results, results, payload.all_layers, model)
    service.metrics.sentences.inc(len(results))
    service.metrics.tokens.inc(prepared.n_tokens)
    return body
