"""What `onlstm serve` runs: uvicorn with the container's keep-alive time, draining on SIGTERM
(service/drain.py) within ONLSTM_DRAIN_TIMEOUT_S, and the h11 protocol that bounds each request's head (a header-read timeout and a real size
limit); the bounds are checked against a real server on a loopback port."""

from __future__ import annotations

import socket
import time

import pytest

from onlstm.cli.serve import GRACEFUL_SHUTDOWN_SECONDS, build_server
from onlstm.service.drain import DrainingServer
from onlstm.service.protocol import BoundedHeadH11Protocol
from onlstm.service.settings import load_settings

from ..helpers import read_all, serving


def test_serve_keeps_alive_75_s_and_drains_within_20_s_on_sigterm(tiny_checkpoint):
    server = build_server(load_settings(checkpoint=str(tiny_checkpoint)))
    assert server.config.timeout_keep_alive == 75.0
    # the drain answers every parse request within 20 s (under Kubernetes' 30 s grace); uvicorn's
    # own graceful shutdown then has 5 s for the responses still being written
    assert isinstance(server, DrainingServer) and server.drain_timeout == 20.0
    assert server.config.timeout_graceful_shutdown == GRACEFUL_SHUTDOWN_SECONDS == 5
    assert issubclass(server.config.http, BoundedHeadH11Protocol)
    assert server.config.http.header_timeout == 10.0 and server.config.http.max_header_bytes == 16_384
    assert server.config.h11_max_incomplete_event_size == 16_384
    assert server.config.access_log is False  # the app writes its own (escaped) access lines


@pytest.mark.slow
def test_slow_headers_are_cut_off_and_large_headers_refused(tiny_checkpoint, tmp_path):
    env = {"ONLSTM_HEADER_TIMEOUT_S": "2"}
    with serving(tiny_checkpoint, tmp_path / "server.log", env) as server:
        address = ("127.0.0.1", server.port)
        # 50 clients that send their headers a byte a second: all closed by the server after ~2 s
        slow = [socket.create_connection(address) for _ in range(50)]
        started = time.monotonic()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        closed_at: dict[int, float] = {}
        for position in range(len(head)):
            for index, connection in enumerate(slow):
                if index in closed_at:
                    continue
                try:
                    connection.sendall(head[position : position + 1])
                    connection.setblocking(False)
                    if connection.recv(1) == b"":
                        closed_at[index] = time.monotonic() - started
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[index] = time.monotonic() - started
                finally:
                    connection.setblocking(True)
            if len(closed_at) == len(slow) or time.monotonic() - started > 10:
                break
            time.sleep(1)
        for connection in slow:
            connection.close()
        print(f"slow-header clients closed by the server: {len(closed_at)}/50, "
              f"last after {max(closed_at.values(), default=float('nan')):.1f} s")
        assert len(closed_at) == len(slow), f"only {len(closed_at)} of 50 slow clients were cut off in 10 s"
        assert max(closed_at.values()) < 5
        # a slow client that finishes in time is served
        with socket.create_connection(address) as connection:
            for piece in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
                connection.sendall(piece)
                time.sleep(0.5)
            assert read_all(connection, 2).startswith(b"HTTP/1.1 200")
        # 64 KB of headers in one write: 431, however it arrives; 15 KB passes
        for size, status in ((64 * 1024, b"431"), (15 * 1024, b"200")):
            with socket.create_connection(address) as connection:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size
                                   + b"\r\nConnection: close\r\n\r\n")
                answer = read_all(connection, 5)
            assert answer.split(b" ")[1] == status, answer[:200]
            assert (b"headers_too_large" in answer) == (status == b"431")
        print("64 KB of headers in one write: 431; 15 KB: 200")
    assert "no complete request head within 2 s" in server.log_text()

