"""Scenarios of a client stream its caller drops unclosed, each run in a child process by
``tests/test_client_dropped_stream.py``: ``python tests/_dropped_streams.py NAME``.

The garbage collector is off from the start: a stream caught in a reference cycle keeps its
connection (and an async client's slot) until a collection that never comes, which is what
a user who broke out of ``for delta in client.stream(...)`` got before. A child process of
its own, because what a dropped stream leaves (an unclosed client, a loop's half-read body)
must not reach the other tests of a pytest worker (the soak counts the worker's sockets).
Prints ``ok`` and exits 0 when the scenario holds; an assertion's traceback otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from collections.abc import Callable
from typing import Any

import httpx
from _helpers import wait_until, wait_until_async

from agentkit import AsyncChatClient, ChatClient
from agentkit._events import TextDelta
from agentkit.testing import Reply, ScriptedServer

USER = [{"role": "user", "content": "Hi"}]
WORDS = " ".join(f"w{n}" for n in range(200))  # many deltas: a break leaves most unread
ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)
HANG_GUARD = 30.0  # bounds a hang of the old code; the passing path never waits for it


def sync_stream(server: ScriptedServer, read: int) -> None:
    """A sync stream dropped after ``read`` deltas gives its connection back at once."""
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


def async_stream(server: ScriptedServer, read: int) -> None:
    """An async stream dropped after ``read`` deltas gives its connection and slot back."""
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


def after_its_loop_closed(server: ScriptedServer) -> None:
    """A stream dropped after its event loop closed is quiet: nothing to give back."""
    server.queue(Reply.text(WORDS))
    client = AsyncChatClient(server.base_url, pool_limits=ONE)

    async def main() -> Any:
        stream = client.stream(model="m", messages=USER)
        await anext(stream)
        return stream

    stream = asyncio.run(main())  # the loop closes with the stream half read
    del stream  # its slot went with the loop: nothing to give back, nothing printed


def next_loops_bound(server: ScriptedServer) -> None:
    """A stream kept past its loop's end and dropped gives nothing to the next loop's bound."""
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


SCENARIOS: dict[str, Callable[[ScriptedServer], None]] = {
    "sync-after-1": lambda server: sync_stream(server, 1),
    "sync-after-5": lambda server: sync_stream(server, 5),
    "async-after-1": lambda server: async_stream(server, 1),
    "async-after-5": lambda server: async_stream(server, 5),
    "after-its-loop-closed": after_its_loop_closed,
    "next-loops-bound": next_loops_bound,
}


def main(name: str) -> None:
    """Run one scenario with the collector off; fail on what a finaliser raised or warned."""
    unraisable: list[object] = []
    sys.unraisablehook = unraisable.append
    gc.disable()
    with warnings.catch_warnings(record=True) as caught, ScriptedServer() as server:
        warnings.simplefilter("always")
        SCENARIOS[name](server)
        assert not server.errors, server.errors
    assert unraisable == [] and [str(w.message) for w in caught] == []
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
