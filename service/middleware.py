"""The ASGI middlewares, outermost first: the request log, (CORS), metrics, the body limit.

A request whose client hangs up before it is answered is recorded with status 499 (nginx's
"client closed request"), not as a server error: the middlewares share a per-request flag,
``scope["state"]["client_disconnected"]``, set when ``receive`` reports the disconnect.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response
from .logs import loggable
from .metrics import Metrics

access_logger = logging.getLogger("onlstm.service.access")

CLIENT_CLOSED_REQUEST = 499


def watch_disconnect(scope: Scope, receive: Receive) -> Receive:
    """``receive``, marking the request when the client has gone away."""

    async def receive_and_watch() -> Message:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.setdefault("state", {})["client_disconnected"] = True
        return message

    return receive_and_watch


def unanswered_status(scope: Scope) -> int:
    """The status to record for a request that got no response (499 if the client left, else 500)."""
    return CLIENT_CLOSED_REQUEST if scope.get("state", {}).get("client_disconnected") else 500


def flatten_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The app's routes with included routers opened up (FastAPI keeps them nested)."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat.extend(flatten_routes(included.routes) if included is not None else [route])
    return flat


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of the route that serves ``scope`` ("/parse", "/static"), else "unmatched".

    The route the router chose, or else the first that matches: so a request answered before
    routing (413 from the body limit, 499 for a client that left while sending its body) is
    still counted on its route.  A route that matches the path but not the method (a 405)
    counts on that route too."""
    chosen = scope.get("route")
    if chosen is not None and getattr(chosen, "path", None):
        return chosen.path
    probe = {**scope, "root_path": "", "path": scope.get("path", "")}
    partial = None
    for route in routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return getattr(route, "path", None) or "unmatched"
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial or "unmatched"


class MetricsMiddleware:
    """Counts every request by route template, method and status (all from closed sets), and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Callable[[], Sequence[BaseRoute]]):
        self.app, self.metrics, self._list_routes = app, metrics, routes
        self._routes: list[BaseRoute] | None = None

    def routes(self) -> list[BaseRoute]:
        if self._routes is None:  # every route is registered before the first request
            self._routes = flatten_routes(self._list_routes())
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, watch_disconnect(scope, receive), send_and_record)
        finally:
            self.metrics.observe_request(route_template(scope, self.routes()), scope.get("method", ""),
                                         status if status is not None else unanswered_status(scope),
                                         time.perf_counter() - started)


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
                scope.setdefault("state", {})["client_disconnected"] = True
                return  # the client left before sending its body: nobody to answer (recorded as 499)
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
    Every request-controlled value is escaped (``loggable``), so a request cannot forge a line.
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
        status: int | None = None
        received = 0
        head = bytearray()
        watched = watch_disconnect(scope, receive)

        async def receive_and_count() -> Message:
            nonlocal received
            message = await watched()
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
            text = f" body='{loggable(bytes(head).decode('utf-8', 'replace'), self.TEXT_LOGGED)}'" if head else ""
            # the path as the client sent it (percent-encoded), escaped: it cannot hold a line break
            path = scope.get("raw_path") or scope.get("path", "")
            access_logger.info("request %s %s %s -> %d in %.1f ms (%d bytes in)%s", request_id,
                               loggable(scope.get("method", ""), 20), loggable(path),
                               status if status is not None else unanswered_status(scope), milliseconds, received, text)
