"""An async run's store calls: every one in a thread, never on the event loop, and a claim
its waiter gave up on is given back (issue 18, items 10 and 14)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _helpers import wait_until, wait_until_async

from agentkit import ToolResult
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer

from ._bot import make_agent


class WatchedStore(SQLiteStore):
    """A SQLite store that notes the thread of each append, and when a claim starts and
    returns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.append_threads: list[int] = []
        self.claiming = threading.Event()
        self.claimed = threading.Event()

    def claim(
        self, session_id: str, *, wait: float = 0.0, metadata: Mapping[str, Any] | None = None
    ) -> Any:
        self.claiming.set()
        try:
            return super().claim(session_id, wait=wait, metadata=metadata)
        finally:
            self.claimed.set()

    def append(
        self,
        claim: Any,
        messages: Sequence[Mapping[str, Any]],
        *,
        pending: Mapping[str, Any] | None = None,
        close_round: bool = False,
    ) -> None:
        self.append_threads.append(threading.get_ident())
        super().append(claim, messages, pending=pending, close_round=close_round)


def test_closing_stream_async_early_stores_off_the_event_loop(
    tmp_path: Path, server: ScriptedServer, monkeypatch: Any
) -> None:
    """Closing the stream (as serve does at max_stream_chars) keeps what the run added,
    and that write runs in a thread: on PostgreSQL it is a round trip the loop would wait
    on."""
    monkeypatch.setenv("AGENTKIT_TEST_LEDGER", str(tmp_path / "ledger.jsonl"))
    store = WatchedStore(tmp_path / "s.db")
    server.queue(Reply.tool_calls(("get_order", {"order_id": 7})), Reply.text("Shipped."))
    loop_thread: list[int] = []

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        agent = make_agent(store, server.base_url)
        events = agent.stream_async("Where is order 7?", session="c1")
        async with contextlib.aclosing(events) as running:
            async for event in running:
                if isinstance(event, ToolResult):
                    break  # the client leaves after the first tool result
        await agent.aclose()

    try:
        asyncio.run(main())
        stored = store.load("c1").messages
    finally:
        store.close()
    assert [m["role"] for m in stored] == ["user", "assistant", "tool"]
    assert store.append_threads, "the early close stored nothing"
    assert loop_thread[0] not in store.append_threads


def test_a_claim_whose_waiter_was_cancelled_is_given_back(tmp_path: Path) -> None:
    """A request cancelled while its claim waits on SQLite's write lock: the thread takes
    the claim after its waiter left, and gives it back at once (it held the conversation
    for the whole 600 s lease, every later request answered busy)."""
    path = tmp_path / "s.db"
    store = WatchedStore(path)
    store.release(store.claim("c1"))  # the session exists
    store.claiming.clear()
    store.claimed.clear()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def main() -> None:
        agent = make_agent(store, "http://127.0.0.1:9/v1")
        task = asyncio.ensure_future(agent.run_async("hello", session="c1"))
        await wait_until_async(store.claiming.is_set)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        blocker.rollback()  # the claim's thread goes on and takes the session
        await agent.aclose()

    try:
        asyncio.run(main())
        wait_until(store.claimed.is_set)
        claim = store.claim("c1", wait=5.0)  # given back: not busy for the lease
        store.release(claim)
    finally:
        blocker.close()
        store.close()
