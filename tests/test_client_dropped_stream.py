"""A stream its caller drops unclosed (no ``with``, no ``close()``) frees its connection at once.

The garbage collector is off in these tests: a stream caught in a reference cycle keeps its
connection (and an async client's slot) until a collection that never comes, which is what a
user who breaks out of ``for delta in client.stream(...)`` got before.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _helpers import wait_until, wait_until_async

from agentkit import AsyncChatClient, ChatClient
from agentkit._events import TextDelta
from agentkit.testing import Reply, ScriptedServer

USER = [{"role": "user", "content": "Hi"}]
WORDS = " ".join(f"w{n}" for n in range(200))  # many deltas: a break leaves most unread
ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)
HANG_GUARD = 30.0  # bounds a hang of the old code; the passing path never waits for it


@pytest.fixture
def no_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The collector off, warnings recorded, and what a finaliser raised kept (not printed)."""
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    was_enabled = gc.isenabled()
    gc.collect()  # nothing of an earlier test's left to collect in the middle of this one
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield unraisable
        unraisable.extend(str(w.message) for w in caught)
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("read", [1, 5])
def test_a_dropped_sync_stream_gives_its_connection_back_at_once(
    server: ScriptedServer, no_collector: list[object], read: int
) -> None:
    server.queue(Reply.text(WORDS), Reply.text("next"))
    with ChatClient(server.base_url, pool_limits=ONE) as client:
        deltas = []
        for delta in client.stream(model="m", messages=USER):  # no with, no close()
            deltas.append(delta)
            if len(deltas) == read:
                break
        assert [type(delta) for delta in deltas] == [TextDelta] * read
        # The only connection of the pool is free: the next request gets it (before, it
        # waited for the pool until its timeout).
        answer = client.create(model="m", messages=USER)
        assert answer.choices[0].message.content == "next"
        wait_until(lambda: server.open_connections <= 1, HANG_GUARD)
    assert server.connections_opened == 2  # the half-read one was closed, not reused
    assert no_collector == []


@pytest.mark.parametrize("read", [1, 5])
def test_a_dropped_async_stream_gives_its_connection_and_slot_back(
    server: ScriptedServer, no_collector: list[object], read: int
) -> None:
    server.queue(Reply.text(WORDS), Reply.text("next"))

    async def main() -> Any:
        async with AsyncChatClient(server.base_url, pool_limits=ONE) as client:
            deltas = []
            async for delta in client.stream(model="m", messages=USER):  # no with, no aclose
                deltas.append(delta)
                if len(deltas) == read:
                    break
            assert [type(delta) for delta in deltas] == [TextDelta] * read
            # The event loop closes the body it was reading; the server sees it go.
            await wait_until_async(lambda: server.open_connections == 0, HANG_GUARD)
            # And the client's one slot is free: before, the next request waited forever.
            answer = await asyncio.wait_for(client.create(model="m", messages=USER), HANG_GUARD)
            return answer.choices[0].message.content

    assert asyncio.run(main()) == "next"
    assert no_collector == []


def test_a_dropped_async_stream_after_its_loop_closed_is_quiet(
    server: ScriptedServer, no_collector: list[object]
) -> None:
    server.queue(Reply.text(WORDS))
    client = AsyncChatClient(server.base_url, pool_limits=ONE)

    async def main() -> Any:
        stream = client.stream(model="m", messages=USER)
        await anext(stream)
        return stream

    stream = asyncio.run(main())  # the loop closes with the stream half read
    del stream  # its slot went with the loop: nothing to give back, nothing printed
    assert no_collector == []


def test_a_stream_dropped_after_its_loop_ended_leaves_the_next_loops_bound_whole(
    server: ScriptedServer, no_collector: list[object]
) -> None:
    server.queue(Reply.text(WORDS), Reply.text(WORDS))
    client = AsyncChatClient(server.base_url, pool_limits=ONE)

    async def half_read() -> Any:
        stream = client.stream(model="m", messages=USER)
        await anext(stream)
        return stream

    async def next_loop(old: list[Any]) -> bool:
        # The client's bound on this loop is its own: the old loop's stream, dropped now,
        # held a slot of the old loop's, which is not given to this one.
        stream = client.stream(model="m", messages=USER)
        await anext(stream)
        old.clear()
        await asyncio.sleep(0)  # what a finaliser schedules runs
        slots = client._slots._semaphore
        assert slots is not None
        full = slots.locked()  # the one slot is this loop's stream's
        await stream.aclose()
        await client.aclose()
        return full

    old = [asyncio.run(half_read())]  # its loop ends with the stream half read, its slot held
    assert asyncio.run(next_loop(old))
    assert no_collector == []
