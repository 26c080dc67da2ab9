"""Blocking calls from async code: a session store's methods, run in a thread.

A ``Store`` has one surface, the blocking one; the async driver decides to run each call in
a thread, so the event loop never waits on SQL. A waiter cancelled while the thread works
does not stop the thread (nothing can): :func:`off_loop_or_undo` therefore gives back a
claim the thread takes after its waiter left, instead of leaving the session held for the
lease.

A release that fails (the database restarting, the network dropped) would leave the session
held for the whole lease as well: :func:`release_claim` then keeps trying in a background
thread until the store takes it.

A waiter cancelled while its call still waits for a free thread (the pool busy with other
store calls) takes the call with it: ``asyncio`` cancels a queued executor job, and it never
runs. That is right for a write the run reports as not done, and wrong for what must happen
whatever the caller does: a release, the write that closes a stopped run.
:func:`off_loop_to_the_end` runs those through.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._store import Claim, Store

__all__ = ["off_loop", "off_loop_or_undo", "off_loop_to_the_end", "release_claim"]

T = TypeVar("T")

# A failed release is retried for as long as the default lease, after which any store lets
# another run take the session anyway; the pause doubles up to a few seconds.
RELEASE_RETRY_SECONDS = 600.0
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 2.0


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a thread (with the caller's context), awaited."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def off_loop_to_the_end(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread (with the caller's context), awaited to its end even when
    the waiter is cancelled meanwhile, and even while it still waits for a free thread; a
    cancel is raised once it has returned. What comes next (a release after the closing
    write) therefore never overtakes it."""
    running = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future = running.run_in_executor(None, partial(context.run, fn, *args))
    cancel: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.wait({future})  # a cancelled wait leaves the future alone
        except asyncio.CancelledError as exc:
            cancel = exc
    if cancel is not None:
        _retrieved(future)
        raise cancel
    return future.result()


def _retrieved(future: asyncio.Future[Any]) -> None:
    # Nobody waits for this outcome any more; read it, so asyncio logs no "never retrieved".
    if not future.cancelled():
        future.exception()


async def off_loop_or_undo(
    fn: Callable[..., T], args: tuple[Any, ...], undo: Callable[[T], object]
) -> T:
    """``fn(*args)`` in a thread, awaited. When the waiter is cancelled, what the thread
    still returns is handed to ``undo`` (in a thread) as soon as it is there: a session's
    claim is given back."""
    running = asyncio.get_running_loop()
    future = running.run_in_executor(None, partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except BaseException:
        future.add_done_callback(partial(_undo, undo))
        raise


def _undo(undo: Callable[[T], object], future: asyncio.Future[T]) -> None:
    """Undo what nobody waits for any more (on a thread: never block the loop)."""
    if future.cancelled() or future.exception() is not None:
        return
    value = future.result()

    def run() -> None:
        with contextlib.suppress(Exception):  # the run that wanted it is gone already
            undo(value)

    threading.Thread(target=run, name="agentkit-release", daemon=True).start()


def release_claim(store: Store, claim: Claim) -> None:
    """``store.release(claim)``. When it fails, its error is raised and the release goes on
    in a background thread, retried until the store takes it: a run that ends while its
    store is away (a PostgreSQL restart) must not leave the session busy for the lease."""
    try:
        store.release(claim)
    except Exception:
        threading.Thread(
            target=_release_until_done, args=(store, claim), name="agentkit-release", daemon=True
        ).start()
        raise


def _release_until_done(store: Store, claim: Claim) -> None:
    deadline = time.monotonic() + RELEASE_RETRY_SECONDS
    pause = FIRST_PAUSE
    while time.monotonic() < deadline:
        time.sleep(pause)  # a retry's backoff while the store is away
        try:
            store.release(claim)
        except Exception:
            pause = min(pause * 2, LONGEST_PAUSE)
        else:
            return
