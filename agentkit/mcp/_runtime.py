"""The private event loop that every MCP connection lives on.

Each connection is owned by one task on this loop (its transport, its session and the
server process belong to that task), whatever the caller is: a sync run, a tool thread, or
another event loop. So no anyio cancel scope is ever entered in one task and left in
another, a caller's loop can end without taking a connection with it, and a sync run needs
no loop of its own. The thread starts with the first connection and is a daemon that lives
as long as the process (stopping it between connections would race with a connection
starting); closing a connection ends its process and sockets, and at exit every connection
still open is closed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["call_async", "call_sync", "on_exit", "submit"]

T = TypeVar("T")

_MAX_WAIT = 0.5  # seconds a sync caller waits between checks for Ctrl-C

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_open_at_exit: weakref.WeakSet[Any] = weakref.WeakSet()
_registered: list[bool] = []


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(
                target=_serve, args=(_loop,), name="agentkit-mcp", daemon=True
            )
            _thread.start()
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coro`` on the MCP loop; cancelling the future cancels the task."""
    return asyncio.run_coroutine_threadsafe(coro, _running_loop())


def call_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the MCP loop and wait for it (Ctrl-C cancels it).

    The wait wakes every half second: a Ctrl-C that arrives during one long blocking wait
    is not seen on every platform until the wait ends.
    """
    future = submit(coro)
    try:
        while not future.done():
            concurrent.futures.wait([future], timeout=_MAX_WAIT)
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def call_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the MCP loop and await it from another loop (cancelling cancels it)."""
    return await asyncio.wrap_future(submit(coro))


def on_exit(source: Any) -> None:
    """Close ``source`` (its ``_close`` coroutine) at interpreter exit if still open."""
    with _lock:
        if not _open_at_exit and not _registered:
            atexit.register(_close_all)
            _registered.append(True)
        _open_at_exit.add(source)


def _close_all() -> None:
    with _lock:
        loop = _loop
        sources = list(_open_at_exit)
    if loop is None:
        return
    for source in sources:
        future = asyncio.run_coroutine_threadsafe(source._close(), loop)
        try:
            future.result(timeout=10)
        except Exception:
            future.cancel()
