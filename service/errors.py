"""The error format of the API: ``{"error": {"code", "message", "limit"?, "value"?, "details"?, "available"?}}``.

``APIError`` is raised anywhere in the service; the handlers installed by
``install_error_handlers`` turn it, FastAPI's validation errors, Starlette's HTTP errors and
anything unexpected into that one JSON shape.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..models.languages import LANGUAGES, lowercase_hint
from .logs import loggable
from .schemas import INPUT_FIELDS, ParseRequest

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered as ``{"error": {"code", "message", "limit"?, "value"?, "available"?}}``."""

    def __init__(self, status: int, code: str, message: str, limit: str | None = None, value: int | None = None,
                 headers: dict[str, str] | None = None, available: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.limit, self.value = status, code, message, limit, value
        self.headers = headers
        self.available = available  # the languages served, for a request in another one

    def __reduce__(self):  # picklable, so that worker processes can raise it
        return (APIError, (self.status, self.code, self.message, self.limit, self.value, self.headers, self.available))


def unavailable_language(language: str, available: list[str]) -> APIError:
    """422 for a language this service does not parse: unknown to the package, or not served here."""
    served = ", ".join(available)
    if language not in LANGUAGES:
        return APIError(422, "unknown_language", f"unknown language {language!r}{lowercase_hint(language)}: "
                        "give an ISO 639-1 code, "
                        f"one of the languages served here: {served}", available=available)
    return APIError(422, "language_unavailable", f"this service does not parse {LANGUAGES[language].name} "
                    f"({language!r}); the languages served here: {served}", available=available)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"code": code, "message": message, **{key: value for key, value in extra.items() if value is not None}}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


_TOKENS_SHAPE = 'tokens is a list of sentences, each a list of token strings: {"tokens": [["The", "cat", "sat"]]}'


def _validation_summary(errors: list[dict[str, Any]], sent_json: bool) -> tuple[str, list[dict[str, Any]]]:
    """The first problem as one line naming its field (and how many more), with every problem as details;
    ``sent_json``: the request said its body was JSON."""
    details: list[dict[str, Any]] = []
    for problem in errors:
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(location) or "body", "problem": problem.get("msg", ""), "type": problem.get("type")})
    first: dict[str, Any] = details[0] if details else {"field": "body", "problem": "invalid request", "type": None}
    if first["field"] == "body" and first["type"] in ("model_attributes_type", "dict_type", "missing"):
        if sent_json:
            kind = "empty" if first["type"] == "missing" else _json_kind(errors[0].get("input"))
            return f'the body must be a JSON object, such as {{"text": "The cat sat."}}, not {kind}', details
        return "the body must be a JSON object; send it with Content-Type: application/json", details
    reason = first["problem"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":  # POST /parse is the one route that reads a body
        reason = _unknown_field(first["field"])
    elif first["field"].startswith("tokens.") and first["type"] == "list_type":
        reason = f"{reason}; {_TOKENS_SHAPE}"
    message = f"{first['field']}: {reason}" if first["field"] != "body" else reason
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''}, see details)"
    return message, details


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), "another value")


def _unknown_field(name: str) -> str:
    fields = [*INPUT_FIELDS, *(field for field in ParseRequest.model_fields if field not in INPUT_FIELDS)]
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"not a field of a parse request; {hint}the fields are {', '.join(fields)}"


async def _api_error(request: Request, error: APIError) -> JSONResponse:
    return _api_error_response(error)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    invalid_json = next((problem for problem in errors if problem.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        reason = (invalid_json.get("ctx") or {}).get("error", "malformed JSON")
        position = invalid_json.get("loc", ("body", "?"))[-1]
        return error_response(400, "invalid_json", f"the body is not valid JSON ({reason} at character {position})")
    language = next((problem for problem in errors if _is_language_code_problem(problem)), None)
    if language is not None:
        # "language": "english" is a language the service does not know, as "fr" is: the same stable code
        return _api_error_response(unavailable_language(str(language.get("input")), _served_languages(request)))
    message, details = _validation_summary(errors, "json" in request.headers.get("content-type", "").lower())
    return error_response(422, "invalid_request", message, details=details)


def _is_language_code_problem(problem: dict[str, Any]) -> bool:
    """A ``language`` that is a string but not a two-letter code (its type is the schema's business)."""
    return [part for part in problem.get("loc", ()) if part != "body"] == ["language"] \
        and problem.get("type") == "string_pattern_mismatch"


def _served_languages(request: Request) -> list[str]:
    service = getattr(request.app.state, "service", None)
    return list(service.models.configured) if service is not None else []


def _api_error_response(error: APIError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.headers, limit=error.limit, value=error.value,
                          available=error.available)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    message = str(error.detail)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    if error.status_code == 404:
        message = f"no such endpoint {request.url.path}; the API is described at /docs"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; the API is described at /docs"
    elif error.status_code == 400 and error.__cause__ is not None:
        # fastapi raises its 400 from the error that reading the body met (UnicodeDecodeError: not
        # UTF-8; RecursionError: JSON nested deeper than Python reads)
        code, message = "invalid_json", "the body could not be read as JSON; send UTF-8 encoded JSON"
    return error_response(error.status_code, code, message, getattr(error, "headers", None))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s (request %s)", loggable(request.method), loggable(request.url.path),
                     loggable(getattr(request.state, "request_id", "-")))
    return error_response(500, "internal_error", "unexpected server error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    # FastAPI's decorator (it calls add_exception_handler), typed for a handler of one exception class:
    # starlette's add_exception_handler types every handler as taking any Exception
    app.exception_handler(APIError)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected)
