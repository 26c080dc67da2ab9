"""ASGI plumbing the routes share: a bounded body, and work that stops when the client goes.

Starlette's own streaming response notices a disconnect only when it next writes, and a
tool may run for minutes without writing; so every run here races the client's
``http.disconnect`` and is cancelled the moment it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    MutableMapping,
)
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ServeError

if TYPE_CHECKING:
    from ._request import RequestLimits

__all__ = ["ClientGone", "EventStream", "read_body", "until_disconnect"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ClientGone(Exception):
    """The client closed the connection; its run was cancelled."""


async def read_body(receive: Receive, headers: Mapping[str, str], limits: RequestLimits) -> bytes:
    """The request body: 413 as soon as it is longer than ``limits.max_body_bytes``, 408
    when it has not all arrived within ``limits.body_timeout`` seconds (a client trickling
    a body byte by byte holds a connection and a task)."""
    limit = limits.max_body_bytes
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone()
                piece = message.get("body", b"")
                size += len(piece)
                if size > limit:
                    raise _too_large(limit)
                parts.append(piece)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except TimeoutError:
        raise ServeError(
            408,
            f"the request body did not arrive within {limits.body_timeout:g} s",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None


def _too_large(limit: int) -> ServeError:
    return ServeError(
        413,
        f"the request body is larger than this server takes ({limit} bytes)",
        code="request_too_large",
    )


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, cancelled with :class:`ClientGone` if the client leaves first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    # The client leaving cancels the work; no asyncio.wait (a future and two callbacks a
    # request) is needed to race them. Awaiting the task returns only once it has
    # finished, cancelled or not, so its cleanup is done before anything goes on.
    watcher.add_done_callback(lambda _: task.cancel())
    try:
        return await task
    except asyncio.CancelledError:
        gone = watcher.done() and not watcher.cancelled()
        current = asyncio.current_task()
        if gone and (current is None or not current.cancelling()):
            raise ClientGone() from None
        raise  # we were cancelled ourselves (the server is stopping): the work was too
    finally:
        if watcher.done() and not watcher.cancelled():
            watcher.exception()  # retrieved: a failed receive is the client gone too
        watcher.cancel()


_EVENT_STREAM_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
)
_EVENT_STREAM_START: dict[str, Any] = {"type": "http.response.start", "status": 200}


class EventStream:
    """An ASGI response sending ``pieces`` as ``text/event-stream``; a disconnect closes
    the iterator (and so stops the run behind it)."""

    def __init__(self, pieces: AsyncGenerator[bytes, None]) -> None:
        self._pieces = pieces

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        async def pump() -> None:
            # the head is sent in the same turn of the loop as the first event, so the
            # two can leave in one write (serve/_batching.py)
            await send({**_EVENT_STREAM_START, "headers": list(_EVENT_STREAM_HEADERS)})
            async with contextlib.aclosing(self._pieces) as pieces:
                async for piece in pieces:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        with contextlib.suppress(ClientGone, OSError):
            await until_disconnect(receive, pump())
