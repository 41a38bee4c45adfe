"""Python client of the HTTP service (``pip install 'onlstm-parser[client]'``, which adds httpx).

    from onlstm import ParseOptions
    from onlstm.client import Client

    with Client("http://127.0.0.1:8000") as client:
        results = client.parse(text="The cat sat on the mat. Stocks fell sharply.")
        print(results[0].tree)           # (S (X (X The cat) (X sat (X on (X the mat)))) .)
        client.parse(tokens=[["A", "dog", "barked"]], options=ParseOptions(layer=0), decoder="split")
        client.parse(text="北京是中国的首都。", language="zh")   # a language the service serves (GET /model)

``parse`` returns the library's own ``ParseResult`` objects (``.tree`` is an ``nltk.Tree``),
so code written against ``Parser.parse`` works against a service.  Inputs larger than one
request may carry are sent as several requests, in order: the client starts from the
service's default limits (256 sentences, 1,000,000 bytes per request) and, when a service
configured lower answers 413 naming its limit, adopts that limit and re-sends the rest
(``client.model()`` reads the limits the service publishes, and adopts them at once).
503 and 429 answers are retried after their ``Retry-After`` (at most ``max_retries`` times,
each wait at most ``max_retry_wait`` seconds); every other error is raised as a
``ServiceError`` carrying the service's ``code`` and ``message``.  ``AsyncClient`` is the
same for asyncio.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from .models import json_text
from .models.languages import DEFAULT_LANGUAGE
from .models.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SENTENCES
from .models.options import ParseOptions
from .models.parser import ParseResult
from .models.text.sentences import sentence_spans
from .records import result_from_record

logger = logging.getLogger(__name__)

__all__ = ["AnswerTooDeep", "AsyncClient", "Client", "ClientError", "RequestLimits", "ServiceError", "ServiceUnreachable"]

# answers worth waiting for: the service is overloaded or still loading its model
RETRIED_STATUSES = (429, 503)
# 413 codes the client can get round by sending fewer sentences per request
SPLITTABLE_CODES = ("too_many_sentences", "body_too_large")


class ClientError(Exception):
    """Base class of the client's errors."""


class AnswerTooDeep(ClientError):
    """Not raised since 0.12.1, which reads answers at any depth (``models.json_text.loads``); kept
    so that code written against 0.12.0, which raised it for answers nested past about 1,000 levels,
    still imports."""


class ServiceUnreachable(ClientError):
    """The service could not be reached (refused, timed out, name not found)."""


class ServiceError(ClientError):
    """The service answered with an error: ``status``, ``code`` and ``message`` are the service's.

    ``limit`` and ``value`` name the limit that was exceeded (413/422 size errors), ``details``
    lists the per-field problems of an invalid request, ``available`` the languages the service
    parses (for ``unknown_language`` and ``language_unavailable``), ``request_id`` is the
    ``X-Request-ID`` to look for in the service's log.
    """

    def __init__(self, status: int, code: str, message: str, limit: str | None = None, value: int | None = None,
                 details: list[dict[str, Any]] | None = None, request_id: str | None = None,
                 available: list[str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.limit, self.value, self.details, self.request_id = limit, value, details, request_id
        self.available = available  # the languages the service parses, for a request in another one


@dataclass
class RequestLimits:
    """What one request may carry; the service's defaults, lowered when the service says so."""

    max_sentences: int = DEFAULT_MAX_SENTENCES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def adopt(self, card: Any) -> None:
        """Take the limits a model card publishes (``GET /model``'s ``limits``; services before 0.7 have none)."""
        published = card.get("limits") if isinstance(card, dict) else None
        if isinstance(published, dict):
            for name in ("max_sentences", "max_body_bytes"):
                if isinstance(published.get(name), int) and published[name] > 0:
                    setattr(self, name, published[name])


@dataclass
class _Answer:
    status: int
    headers: httpx.Headers
    body: Any  # the decoded JSON, or None when the answer is not JSON
    text: str


def _error_from(answer: _Answer) -> ServiceError:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    request_id = answer.headers.get("x-request-id")
    if not isinstance(error, dict):
        # not the service's error format (a proxy in between?): keep the start of what came back
        return ServiceError(answer.status, "http_error", answer.text[:500] or f"HTTP {answer.status}",
                            request_id=request_id)
    return ServiceError(answer.status, str(error.get("code", "http_error")), str(error.get("message", "")),
                        error.get("limit"), error.get("value"), error.get("details"), request_id,
                        error.get("available"))


def _retry_delay(answer: _Answer, attempt: int, max_wait: float) -> float:
    """Seconds to wait before retrying: ``Retry-After`` (seconds) when given, else 1, 2, 4, ... s."""
    given = answer.headers.get("retry-after", "")
    delay = float(given) if given.strip().isdigit() else float(2**attempt)
    return min(delay, max_wait)


@dataclass
class _Input:
    """The user's input cut into units (sentences) that requests are made of."""

    form: str  # "text" | "sentences" | "tokens"
    units: list[Any]  # text: (start, end) character spans; else the sentences / token lists
    text: str = ""
    sizes: list[int] = field(default_factory=list)  # JSON bytes of each unit, separators included

    @classmethod
    def from_arguments(cls, text: str | None, sentences: Sequence[str] | None,
                       tokens: Sequence[Sequence[str]] | None, language: str | None = None) -> _Input:
        given = [name for name, value in (("text", text), ("sentences", sentences), ("tokens", tokens))
                 if value is not None]
        if len(given) != 1:
            raise TypeError(f"give exactly one of text=, sentences= or tokens= (got {', '.join(given) or 'none'})")
        if text is not None:
            if not isinstance(text, str):
                raise TypeError(f"text must be a string, got {type(text).__name__}")
            # sentence boundaries only (tokenizing is the service's work); used only when the text
            # needs several requests: a text that fits one request is split by the service itself
            # (as the service splits the language asked for, its default English when none is)
            units: list[Any] = sentence_spans(text, language or DEFAULT_LANGUAGE) or [(0, len(text))]
            sizes = [len(json.dumps(text[start:end], ensure_ascii=False).encode()) + 1 for start, end in units]
            return cls("text", units, text, sizes)
        if sentences is not None:
            if isinstance(sentences, str) or not all(isinstance(sentence, str) for sentence in sentences):
                raise TypeError("sentences must be a list of strings, one sentence each (use text= for running text)")
            units = list(sentences)
        else:
            assert tokens is not None
            if isinstance(tokens, str) or not all(
                not isinstance(sentence, str) and all(isinstance(token, str) for token in sentence) for sentence in tokens
            ):
                raise TypeError("tokens must be a list of sentences, each a list of token strings")
            units = [list(sentence) for sentence in tokens]
        sizes = [len(json.dumps(unit, ensure_ascii=False).encode()) + 1 for unit in units]
        return cls("sentences" if sentences is not None else "tokens", units, "", sizes)

    def whole_text(self, first: int, count: int) -> bool:
        return self.form == "text" and first == 0 and count == len(self.units)

    def payload(self, first: int, count: int, options: dict[str, Any]) -> dict[str, Any]:
        if self.whole_text(first, count):
            return {"text": self.text, **options}
        if self.form == "text":
            # a piece of a text goes as its sentences, so that the service cannot split them otherwise
            # than the whole text is split (a numbered list, say, is recognised across its items)
            return {"sentences": [self.text[start:end] for start, end in self.units[first : first + count]], **options}
        return {self.form: self.units[first : first + count], **options}

    def offset_shifts(self, first: int, count: int) -> list[int] | None:
        """Per result, what to add to its offsets to make them relative to the whole text (None: nothing)."""
        if self.form != "text" or self.whole_text(first, count):
            return None
        return [start for start, _ in self.units[first : first + count]]

    def fitting(self, first: int, limits: RequestLimits, overhead: int) -> int:
        """How many units from ``first`` fit one request (at least one: the service judges it)."""
        total, count = overhead, 0
        while first + count < len(self.units) and count < limits.max_sentences:
            total += self.sizes[first + count]
            if count and total > limits.max_body_bytes:
                break
            count += 1
        return max(count, 1)


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _parse_plan(data: _Input, options: dict[str, Any], limits: RequestLimits) -> Generator[bytes, _Answer, list[ParseResult]]:
    """Yields request bodies, is sent the answers, returns the results (no I/O: shared by both clients)."""
    results: list[ParseResult] = []
    if not data.units:  # no sentences: nothing to ask (as Parser.parse_many([]) is [])
        return results
    overhead = len(_encode(data.payload(0, 1, options))) - data.sizes[0]
    first = 0
    while first < len(data.units):
        count = data.fitting(first, limits, overhead)
        body = _encode(data.payload(first, count, options))
        answer = yield body
        if answer.status == 200:
            shifts = data.offset_shifts(first, count)
            for index, record in enumerate(answer.body["results"]):
                if shifts is not None and record.get("offsets"):
                    record["offsets"] = [[start + shifts[index], end + shifts[index]] for start, end in record["offsets"]]
                results.append(result_from_record(record))
            first += count
            continue
        error = _error_from(answer)
        if answer.status != 413 or error.code not in SPLITTABLE_CODES or count == 1:
            raise error
        # the service's limit is lower than assumed: adopt it (and always send fewer than this time)
        if error.code == "too_many_sentences":
            limits.max_sentences = max(1, min(error.value or count, count - 1))
        else:
            limits.max_body_bytes = max(1, min(error.value or len(body), len(body) - 1))
        logger.info("the service refused %d sentences (%s); now at most %d sentences and %d bytes per request",
                    count, error.code, limits.max_sentences, limits.max_body_bytes)
    return results


def _option_fields(options: ParseOptions | None, values: dict[str, Any]) -> dict[str, Any]:
    """The request's option fields: ``options`` with keyword ``values`` over them, validated here
    (a bad one raises ``OptionError`` before anything is sent), the model's defaults left out."""
    return ParseOptions.of(options, **values).model_dump(exclude_defaults=True)


def _model_path(language: str | None) -> str:
    return "/model" if language is None else "/model?" + urlencode({"language": language})


class _ClientBase:
    def __init__(self, url: str, api_key: str | None, max_retries: int, max_retry_wait: float,
                 limits: RequestLimits | None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the service URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.limits = limits or RequestLimits()
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            self.headers["x-api-key"] = api_key

    @staticmethod
    def _answer(response: httpx.Response) -> _Answer:
        try:
            # a tree over a long sentence nests deeper than json.loads reads (about 1,000 levels); the
            # bytes, as response.json() reads them: JSON's own encodings, not a charset a proxy declared
            body = json_text.loads(response.content)
        except ValueError:
            body = None
        return _Answer(response.status_code, response.headers, body, response.text)

    def _unreachable(self, error: httpx.TransportError) -> ServiceUnreachable:
        return ServiceUnreachable(f"cannot reach the service at {self.url}: {type(error).__name__}: {error}")

    def _should_retry(self, answer: _Answer, attempt: int) -> bool:
        if answer.status not in RETRIED_STATUSES or attempt >= self.max_retries:
            return False
        # a model that failed to load will not load by waiting
        return _error_from(answer).code != "model_unavailable"


class Client(_ClientBase):
    """Blocking client of ``onlstm serve``.

    Args:
        url: the service's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``X-API-Key`` (for a service started with ``ONLSTM_API_KEY``).
        timeout: seconds for each HTTP request.
        max_retries: retries of a 503/429 answer per request (0: none).
        max_retry_wait: longest wait before one retry, whatever ``Retry-After`` says.
        limits: sentences and bytes per request to start from (the service's defaults).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 3,
                 max_retry_wait: float = 30.0, limits: RequestLimits | None = None):
        super().__init__(url, api_key, max_retries, max_retry_wait, limits)
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=self.headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, body: bytes | None = None) -> _Answer:
        attempt = 0
        while True:
            try:
                answer = self._answer(self.http.request(method, path, content=body))
            except httpx.TransportError as error:
                raise self._unreachable(error) from error
            if not self._should_retry(answer, attempt):
                return answer
            delay = _retry_delay(answer, attempt, self.max_retry_wait)
            logger.info("%s %s answered %d; retrying in %.1f s", method, path, answer.status, delay)
            time.sleep(delay)
            attempt += 1

    def parse(self, *, text: str | None = None, sentences: Sequence[str] | None = None,
              tokens: Sequence[Sequence[str]] | None = None, options: ParseOptions | None = None,
              **values: Any) -> list[ParseResult]:
        """Parse exactly one of ``text`` (running text), ``sentences`` (one raw sentence each) or
        ``tokens`` (pre-tokenized sentences); one ``ParseResult`` per sentence, in order.

        ``options`` (a ``ParseOptions``) and keyword ``values`` over them (``layer=1``,
        ``decoder``, ``punctuation``, ``right_branching_bias``, ``all_layers``, ``language="zh"``)
        are checked here, as the library checks them: a bad one raises ``OptionError`` with the
        same ``code``.  What depends on the service's models (a layer it lacks, a language it does
        not serve: ``unknown_language`` or ``language_unavailable``, the error's ``available``
        naming those it serves) comes back as ``ServiceError`` with that code.  Without a
        language, the service's default (English) parses; each result's ``language`` says which."""
        fields = _option_fields(options, values)
        plan = _parse_plan(_Input.from_arguments(text, sentences, tokens, fields.get("language")), fields, self.limits)
        try:
            body = next(plan)
            while True:
                body = plan.send(self._request("POST", "/parse", body))
        except StopIteration as finished:
            return finished.value

    def model(self, language: str | None = None) -> dict[str, Any]:
        """The card of the service's model of ``language`` (default: its default language), with every
        language it serves in ``languages`` (``GET /model``); the request limits it publishes become
        this client's, so a later ``parse`` splits its input to fit them from the first request."""
        answer = self._request("GET", _model_path(language))
        if answer.status != 200:
            raise _error_from(answer)
        self.limits.adopt(answer.body)
        return answer.body

    def ready(self) -> bool:
        """Whether the service has loaded its model (``GET /ready``)."""
        try:
            return self.http.get("/ready").status_code == 200
        except httpx.TransportError:
            return False


class AsyncClient(_ClientBase):
    """The asyncio version of ``Client`` (same arguments, awaitable methods)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 3,
                 max_retry_wait: float = 30.0, limits: RequestLimits | None = None):
        super().__init__(url, api_key, max_retries, max_retry_wait, limits)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=self.headers)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, body: bytes | None = None) -> _Answer:
        attempt = 0
        while True:
            try:
                answer = self._answer(await self.http.request(method, path, content=body))
            except httpx.TransportError as error:
                raise self._unreachable(error) from error
            if not self._should_retry(answer, attempt):
                return answer
            delay = _retry_delay(answer, attempt, self.max_retry_wait)
            logger.info("%s %s answered %d; retrying in %.1f s", method, path, answer.status, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def parse(self, *, text: str | None = None, sentences: Sequence[str] | None = None,
                    tokens: Sequence[Sequence[str]] | None = None, options: ParseOptions | None = None,
                    **values: Any) -> list[ParseResult]:
        """See ``Client.parse``."""
        fields = _option_fields(options, values)
        plan = _parse_plan(_Input.from_arguments(text, sentences, tokens, fields.get("language")), fields, self.limits)
        try:
            body = next(plan)
            while True:
                body = plan.send(await self._request("POST", "/parse", body))
        except StopIteration as finished:
            return finished.value

    async def model(self, language: str | None = None) -> dict[str, Any]:
        """See ``Client.model``."""
        answer = await self._request("GET", _model_path(language))
        if answer.status != 200:
            raise _error_from(answer)
        self.limits.adopt(answer.body)
        return answer.body

    async def ready(self) -> bool:
        """See ``Client.ready``."""
        try:
            return (await self.http.get("/ready")).status_code == 200
        except httpx.TransportError:
            return False
