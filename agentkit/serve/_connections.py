"""Connections that cannot be held open for free: a deadline on each request's head, and a
cap on open connections that makes room by closing idle ones.

uvicorn answers a request only once its head (request line and headers) is whole, and it
waits for that head forever: a client that sends half a request, or nothing, holds a
socket and a file descriptor without a key. About a thousand such connections lock every
keyed client out. This is uvicorn's own h11 protocol with two rules added:

- a connection that is not answering a request must send a whole request head within
  ``head_timeout`` seconds (counted from its opening, or from its last answer), or it is
  closed;
- when more than ``max_connections`` are open, the connection idle the longest (one with
  no request in flight) is closed to make room; if every one is busy, the newcomer is.

A body that trickles after a whole head is the app's to bound (``RequestLimits.body_timeout``).
A request h11 cannot parse gets the app's JSON error body (uvicorn's own is plain text).
``agentkit serve`` uses this protocol; in your own uvicorn, pass ``http=`` this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._accesslog import uvicorn_would_drop
from ._batching import BatchedWrites
from ._errors import error_body
from ._format import encode

__all__ = ["HEAD_TIMEOUT_VARIABLE", "MAX_CONNECTIONS_VARIABLE", "ConnectionLimits", "GuardedH11"]

HEAD_TIMEOUT_VARIABLE = "AGENTKIT_SERVE_HEAD_TIMEOUT"
MAX_CONNECTIONS_VARIABLE = "AGENTKIT_SERVE_MAX_CONNECTIONS"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a request head may take, and how many connections one process keeps.

    Attributes:
        head_timeout: seconds a connection may take to send a whole request head.
        max_connections: open connections per process; well below the usual limit of
            1,024 file descriptors, which the store and the model client share.
    """

    head_timeout: float = 10.0
    max_connections: int = 500

    def __post_init__(self) -> None:
        if not self.head_timeout > 0:
            raise ValueError("head_timeout must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


@functools.cache
def _from_environment() -> ConnectionLimits:
    default = ConnectionLimits()
    timeout = os.environ.get(HEAD_TIMEOUT_VARIABLE)
    cap = os.environ.get(MAX_CONNECTIONS_VARIABLE)
    return ConnectionLimits(
        float(timeout) if timeout else default.head_timeout,
        int(cap) if cap else default.max_connections,
    )


def _no_delay(transport: asyncio.Transport) -> None:
    """Send each write at once (``TCP_NODELAY``) on a TCP connection.

    asyncio sets it only when the listening socket was made with ``IPPROTO_TCP`` as its
    protocol number; a socket made as ``socket.socket(AF_INET, SOCK_STREAM)`` (``agentkit
    serve``'s own, or one a deployment hands to uvicorn) has ``0`` there, and then each
    answer's body waited for the client's delayed ACK of its head: 40 ms a response.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap.

    The limits are the config's ``agentkit_connections`` attribute when set, else those in
    the environment (``AGENTKIT_SERVE_HEAD_TIMEOUT``, ``AGENTKIT_SERVE_MAX_CONNECTIONS``),
    else :class:`ConnectionLimits`' defaults.
    """

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Any,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if self.access_log and uvicorn_would_drop(self.access_logger):
            # agentkit serve logs each request itself; uvicorn's line would be built per
            # request only for the handler's filter to drop it
            self.access_log = False
        limits = getattr(config, "agentkit_connections", None) or _from_environment()
        self._head_timeout = limits.head_timeout
        self._cap = limits.max_connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
        # a response's head and body (and a stream's last pieces) leave in one send
        self.transport = BatchedWrites(transport, self.loop)
        self._await_head()
        if len(self.connections) > self._cap:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._idle():
            self._await_head()  # the next request's head has its own deadline

    def send_400_response(self, msg: str) -> None:
        """Refuse a request h11 cannot parse with a JSON error body, then close."""
        # uvicorn answers in plain text; a client of this API reads every error as JSON.
        body = encode(
            error_body(
                "the request is not valid HTTP/1.1", "invalid_request_error", "invalid_http_request"
            )
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        self._stop_timer()
        self._idle_since = time.monotonic()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_late)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._idle() and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        idle = [
            other
            for other in self.connections
            if other is not self
            and isinstance(other, GuardedH11)
            and other._idle()
            and not other.transport.is_closing()
        ]
        if idle:
            oldest = min(idle, key=lambda other: other._idle_since)
            oldest.transport.close()
        else:  # every connection is answering a request: the newcomer waits its turn
            self.transport.close()
