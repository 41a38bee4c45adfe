"""Dependencies of the routes: the service's state (models, batcher, workers) and the API key."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from ..errors import APIError
from ..state import ServiceState


# The dependencies are ``async def`` though they never wait: FastAPI runs a plain ``def`` one in a
# worker thread, and those hand-offs (three per request) were a third of the event loop's time
# under load on the 2-core machine (py-spy, concurrency 32).
async def get_service(request: Request) -> ServiceState:
    return request.app.state.service


Service = Annotated[ServiceState, Depends(get_service)]


def _raw_header(request: Request, name: bytes) -> bytes | None:
    """The header's value exactly as received (bytes; no decoding, no stripping beyond HTTP's own)."""
    for key, value in request.scope.get("headers", ()):
        if key == name:
            return value
    return None


def presented_key(request: Request) -> bytes | None:
    """The key the request presents: ``X-API-Key``, else the exact bytes after ``Bearer `` in
    ``Authorization`` (the scheme is case-insensitive, the credentials are not touched)."""
    given = _raw_header(request, b"x-api-key")
    if given is not None:
        return given
    authorization = _raw_header(request, b"authorization")
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        return authorization[7:]
    return None


async def require_api_key(request: Request) -> None:
    """With ONLSTM_API_KEY set, the request must carry it (X-API-Key, or Authorization: Bearer).

    The comparison is on bytes, in constant time: a key followed by anything (a no-break space
    U+00A0, a NEL U+0085) is a different key."""
    expected = request.app.state.service.settings.api_key
    if expected is None:
        return
    given = presented_key(request)
    if given is None:
        raise APIError(401, "unauthorized", "this service needs an API key: send it in an X-API-Key header "
                       "(or Authorization: Bearer <key>)", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise APIError(401, "unauthorized", "the API key is not valid; check the X-API-Key header",
                       headers={"WWW-Authenticate": "Bearer"})
