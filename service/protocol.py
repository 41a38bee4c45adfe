"""uvicorn's h11 protocol with the two bounds it lacks on a request's head.

* **Header-read timeout.** uvicorn times out idle keep-alive connections, but not a client
  that sends its headers a byte at a time: 50 such clients hold 50 connections for ever.
  Here the head of each request (request line and headers) must be complete within
  ``header_timeout`` seconds of the connection being made or of the request's first byte;
  otherwise the connection is closed.
* **Header size.** h11's ``max_incomplete_event_size`` only bounds a head that is still
  incomplete, so 64 KB of headers sent in one write pass.  Here a head longer than
  ``max_header_bytes`` is answered ``431 Request Header Fields Too Large`` and closed,
  however it arrives.

It also sends each response in one write (``CorkedTransport``): uvicorn writes a response's
head and body separately, two system calls and two packets where one does; on the 2-core
machine those writes were a third of the event loop's time per request.

``bounded_h11_protocol(...)`` returns the class to give ``uvicorn.Config(http=...)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")  # h11 accepts bare LF line endings too


class CorkedTransport:
    """A transport whose writes within one turn of the event loop leave in one ``write`` (a
    response's head, body and end), at the end of that turn; anything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class BoundedHeadH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 16_384

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head = bytearray()
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]
        self._start_head_timer()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head.clear()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            logger.warning("closed the connection of %s: no complete request head within %g s",
                           client, self.header_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # reading a request's head
            self._start_head_timer()
            if self._head_too_large(data):
                self._refuse_head()
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is complete: the request runs
            self._stop_head_timer()

    def _head_too_large(self, data: bytes) -> bool:
        # keep at most a few bytes beyond the limit: enough to see whether the head ends in time
        room = self.max_header_bytes + 4 - len(self._head)
        self._head.extend(data[: max(room, 0)])
        end = _END_OF_HEAD.search(self._head)
        return (end.start() if end else len(self._head)) > self.max_header_bytes

    def _refuse_head(self) -> None:
        body = json.dumps({"error": {
            "code": "headers_too_large",
            "message": f"the request line and headers are larger than {self.max_header_bytes} bytes "
                       "(limit ONLSTM_MAX_HEADER_BYTES)",
            "limit": "max_header_bytes", "value": self.max_header_bytes}}).encode()
        head = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()
        logger.warning("answered 431: a request head over %d bytes", self.max_header_bytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)


def bounded_h11_protocol(header_timeout: float, max_header_bytes: int) -> type[BoundedHeadH11Protocol]:
    return type("BoundedHeadH11Protocol", (BoundedHeadH11Protocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})
