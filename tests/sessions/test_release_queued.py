"""A run's release must run even when its caller is cancelled while the release still waits
for a free thread.

The async driver gives a session back in a thread. When every thread of the loop's pool is
busy (other requests' store calls), the release waits in the pool's queue; a client leaving
at that moment cancelled the waiter, and ``asyncio`` dropped the queued call with it: the
session stayed claimed for the whole 600 s lease, and every later request on the
conversation was busy (the serve soak's "claims held after a client left").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, RunFinished
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer


class OneThread(ThreadPoolExecutor):
    """A pool of one thread that tells the loop of each call queued into it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.queued: asyncio.Queue[str] = asyncio.Queue()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.queued.put_nowait(repr(fn))  # called on the loop's thread (run_in_executor)
        return future


async def _leave_while_the_release_is_queued(agent: Agent[str], gate: threading.Event) -> None:
    running = asyncio.get_running_loop()
    pool = OneThread()
    running.set_default_executor(pool)
    events = agent.stream_async("Hello?", session="c1")
    async for event in events:
        if isinstance(event, RunFinished):
            break
    while not pool.queued.empty():  # the run's claim, load and writes: all done
        pool.queued.get_nowait()
    # The run's last write is stored; its release comes next. The only thread is taken:
    blocker = running.run_in_executor(None, gate.wait)
    assert "Event.wait" in await pool.queued.get()
    consumer = asyncio.ensure_future(anext(events, None))  # the run goes on to its release
    assert "release_claim" in await pool.queued.get()  # queued behind the blocker
    consumer.cancel()  # the client leaves
    # One pass of the loop delivers the cancel to the consumer's waiter (no clock involved).
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await blocker
    await running.run_in_executor(None, lambda: None)  # every queued call has run
    await events.aclose()
    pool.shutdown()


def test_a_release_queued_for_a_thread_runs_though_the_caller_left(
    tmp_path: Path, server: ScriptedServer
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    agent = Agent(
        "desk-model",
        [],
        "You run the desk.",
        base_url=server.base_url,
        api_key="sk-release-test",
        store=store,
    )
    server.queue(Reply.text("Hello there."))
    gate = threading.Event()
    try:
        asyncio.run(_leave_while_the_release_is_queued(agent, gate))
    finally:
        gate.set()  # never leave the pool's thread blocked
    # The session is free: a new run takes it at once (no wait), and sees the first answer.
    server.queue(Reply.text("Still here."))
    result = agent.run("Still there?", session="c1")
    assert result.output == "Still here."
    assert [m["content"] for m in result.messages if m["role"] == "assistant"] == [
        "Hello there.",
        "Still here.",
    ]
    store.close()
