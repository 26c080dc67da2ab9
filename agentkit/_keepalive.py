"""After ``[DONE]``: keep the connection when the body's end is already here, else drop it.

An answer is whole at ``[DONE]`` and goes back to the caller at once. What follows it on
the wire is normally just the end of the chunked body, which lets httpx return the
connection to its pool; reading "the rest" with httpx would instead wait on the server
with no bound of its own: for ``read_timeout`` when it keeps the connection open, forever
when it keeps sending ``: ping`` comments.

So the end is looked for in what httpcore's HTTP/1.1 parser (h11) already holds, and on
the socket for at most :data:`DONE_GRACE` seconds of wall time (the end is usually in the
same packet as ``[DONE]`` or right behind it). Found: the connection is reusable, and
closing the response hands it back to the pool. Not found in time, or a transport this
does not know (HTTP/2, a custom one): closing the response drops the connection. Either
way nothing waits on the server past the grace.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import h11
import httpx

__all__ = ["DONE_GRACE", "body_end_async", "body_end_sync"]

DONE_GRACE = 0.05
"""Seconds of wall time spent at most looking for the end of a body after ``[DONE]``."""

_MAX_EVENTS = 256  # data after [DONE] skipped at most: a server that pings stays bounded
_READ = 64 * 1024


def _parser(response: httpx.Response) -> tuple[h11.Connection, Any] | None:
    """httpcore's h11 state and network stream behind a streamed response, if HTTP/1.1."""
    stream: Any = response.stream
    for name in ("_stream", "_httpcore_stream", "_stream", "_connection"):
        stream = getattr(stream, name, None)
    state = getattr(stream, "_h11_state", None)
    network = getattr(stream, "_network_stream", None)
    if isinstance(state, h11.Connection) and network is not None:
        return state, network
    return None


def _step(state: h11.Connection) -> bool | None:
    """``True``: the body ended; ``False``: it cannot be reused; ``None``: need bytes."""
    for _ in range(_MAX_EVENTS):
        event = state.next_event()
        if event is h11.NEED_DATA:
            return None
        if isinstance(event, h11.EndOfMessage):
            return True
        if not isinstance(event, h11.Data):
            return False
    return False


def _search(state: h11.Connection) -> Generator[float, bytes, bool]:
    """Look for the end of the body: yields the seconds left to read more bytes (sent in
    by the driver), returns whether the body ended."""
    deadline = time.monotonic() + DONE_GRACE
    while True:
        ended = _step(state)
        if ended is not None:
            return ended
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        state.receive_data((yield left))


def body_end_sync(response: httpx.Response) -> bool:
    """Whether the body of ``response`` ended within the grace (the connection is reusable)."""
    parts = _parser(response)
    if parts is None:
        return False
    state, network = parts
    search = _search(state)
    try:
        left = next(search)
        while True:
            left = search.send(network.read(_READ, timeout=left))
    except StopIteration as done:
        return bool(done.value)
    except Exception:  # the socket or the parser failed: the connection goes
        return False


async def body_end_async(response: httpx.Response) -> bool:
    """The async twin of :func:`body_end_sync`."""
    parts = _parser(response)
    if parts is None:
        return False
    state, network = parts
    search = _search(state)
    try:
        left = next(search)
        while True:
            left = search.send(await network.read(_READ, timeout=left))
    except StopIteration as done:
        return bool(done.value)
    except Exception:
        return False
