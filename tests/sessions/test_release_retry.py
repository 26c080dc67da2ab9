"""A run that stops while its store is away (a PostgreSQL restart, a dropped network) cannot
give its session back then: the release is retried until the store takes it, so the
conversation is free again once the store is back, not busy for the whole 600 s lease
(the serve soak's "claims held after a client left")."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import wait_until_async
from _postgres import LostCommitRelay, PrivatePostgres, private_postgres

from agentkit import Agent, ToolCallStarted, tool
from agentkit.sessions import SessionError, SQLiteStore
from agentkit.testing import Reply, ScriptedServer

__all__ = ["private_postgres"]

WAIT = 30.0  # how long the next run waits for the session: far below the lease


class AwayStore(SQLiteStore):
    """A SQLite store whose releases fail while ``away`` is set, as a database's do while
    it restarts."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.away = threading.Event()
        self.failed_releases = 0

    def release(self, claim: Any) -> None:
        if self.away.is_set():
            self.failed_releases += 1
            raise SessionError("the store is away (restarting)", session_id=claim.session_id)
        super().release(claim)


def _agent(store: Any, base_url: str, started: threading.Event) -> Agent[str]:
    @tool
    async def hold(order: str) -> str:
        """Hold the line until the client leaves.

        Args:
            order: the order to look at.
        """
        started.set()
        await asyncio.Event().wait()  # the client leaves first
        return order

    return Agent(
        "desk-model",
        [hold],
        "You run the desk.",
        base_url=base_url,
        api_key="sk-release-test",
        store=store,
        session_wait=WAIT,
    )


def _next_run_answers(agent: Agent[str], server: ScriptedServer) -> None:
    server.queue(Reply.text("Here again."))
    result = agent.run("Still there?", session="c1")
    assert result.output == "Here again."


@pytest.mark.parametrize("leaves", ["cancelled task", "closed stream_async"])
def test_a_run_left_while_the_store_is_away_gives_its_session_back_later(
    tmp_path: Path, server: ScriptedServer, leaves: str
) -> None:
    """The client leaves mid-call while the store is away: the release fails, and the next
    request on the conversation is not busy once the store is back."""
    store = AwayStore(tmp_path / "s.db")
    started = threading.Event()
    agent = _agent(store, server.base_url, started)
    server.queue(Reply.tool_calls(("hold", {"order": "7"})))

    async def leave() -> None:
        if leaves == "cancelled task":
            task = asyncio.ensure_future(agent.run_async("Where is 7?", session="c1"))
            await wait_until_async(started.is_set)
            store.away.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            events = agent.stream_async("Where is 7?", session="c1")
            async with contextlib.aclosing(events) as running:
                async for event in running:
                    if isinstance(event, ToolCallStarted):
                        break
                store.away.set()
        await agent.aclose()

    try:
        asyncio.run(leave())
        assert store.failed_releases >= 1, "the release never met the store away"
        store.away.clear()  # the store is back
        _next_run_answers(agent, server)
    finally:
        agent.close()
        store.close()


def test_a_sync_stream_closed_while_the_store_is_away_gives_its_session_back_later(
    tmp_path: Path, server: ScriptedServer
) -> None:
    """The same through the sync driver: ``stream`` closed mid-run."""
    store = AwayStore(tmp_path / "s.db")
    agent = _agent(store, server.base_url, threading.Event())
    server.queue(Reply.tool_calls(("hold", {"order": "7"})))
    try:
        events = agent.stream("Where is 7?", session="c1")
        with contextlib.closing(events):
            for event in events:
                if isinstance(event, ToolCallStarted):
                    store.away.set()
                    break
        assert store.failed_releases >= 1, "the release never met the store away"
        store.away.clear()
        _next_run_answers(agent, server)
    finally:
        agent.close()
        store.close()


@pytest.fixture
def postgres_store(private_postgres: PrivatePostgres) -> Iterator[Any]:
    pytest.importorskip("psycopg")
    from agentkit.sessions import PostgresStore

    opened = PostgresStore(private_postgres.dsn, schema="r_" + secrets.token_hex(6), pool_size=4)
    yield opened
    opened.close()


def test_a_run_left_while_postgres_is_down_gives_its_session_back_once_it_is_up(
    server: ScriptedServer, private_postgres: PrivatePostgres, postgres_store: Any
) -> None:
    """The real thing: the client leaves while PostgreSQL is down; once it is back up the
    conversation answers (it answered 409 ``session_busy`` for the lease)."""
    started = threading.Event()
    agent = _agent(postgres_store, server.base_url, started)
    server.queue(Reply.tool_calls(("hold", {"order": "7"})))

    async def leave() -> None:
        task = asyncio.ensure_future(agent.run_async("Where is 7?", session="c1"))
        await wait_until_async(started.is_set)
        await asyncio.to_thread(private_postgres.stop)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SessionError):
            await task
        await agent.aclose()

    try:
        asyncio.run(leave())
        private_postgres.start()
        _next_run_answers(agent, server)
    finally:
        agent.close()


def test_a_claim_whose_commit_answer_was_lost_is_given_back() -> None:
    """PostgreSQL applied a claim's COMMIT, but the connection dropped before its answer
    came back (a restart at that moment; here a relay cuts the connection that carries the
    answer): the claim fails with a typed ``SessionError``, and the session, held under a
    token nobody knew, is given back instead of being busy for the 600 s lease."""
    import psycopg

    from agentkit.sessions import PostgresStore

    from .conftest import postgres_dsn

    dsn = postgres_dsn()
    relay = LostCommitRelay(dsn)
    schema = "t_" + secrets.token_hex(6)
    store = PostgresStore(relay.dsn, schema=schema)
    try:
        store.release(store.claim("warm-up"))  # the tables exist
        relay.armed.set()
        with pytest.raises(SessionError) as failed:
            store.claim("c1")
        assert relay.cut.is_set()
        assert failed.value.session_id == "c1"
        with psycopg.connect(dsn) as connection:  # its transaction committed: the row is there
            row = connection.execute(
                f'SELECT owner FROM "{schema}".agentkit_sessions WHERE id = %s', ("c1",)
            ).fetchone()
        assert row is not None
        store.release(store.claim("c1"))  # free at once, not busy for the lease
    finally:
        store.close()
        relay.close()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_claim_interrupted_by_ctrl_c_as_it_commits_is_given_back() -> None:
    """Ctrl-C while a claim's COMMIT is under way: psycopg cancels, waits for the COMMIT's
    answer (it committed) and raises ``KeyboardInterrupt``. This process, alive, would hold
    the session for the 600 s lease (a notebook, a REPL, a server that goes on); the claim
    is given back as the interrupt goes up."""
    import signal

    import psycopg

    from agentkit.sessions import PostgresStore

    from .conftest import postgres_dsn

    dsn = postgres_dsn()
    relay = LostCommitRelay(dsn)
    schema = "t_" + secrets.token_hex(6)
    store = PostgresStore(relay.dsn, schema=schema)
    main = threading.get_ident()

    def interrupt() -> None:
        if relay.held.wait(60):
            signal.pthread_kill(main, signal.SIGINT)

    try:
        store.release(store.claim("warm-up"))  # the tables exist
        relay.hold.set()
        relay.armed.set()
        interrupter = threading.Thread(target=interrupt, daemon=True)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            store.claim("c1")
        interrupter.join()
        with psycopg.connect(dsn) as connection:  # its transaction committed: the row is there
            row = connection.execute(
                f'SELECT owner FROM "{schema}".agentkit_sessions WHERE id = %s', ("c1",)
            ).fetchone()
        assert row is not None
        store.release(store.claim("c1"))  # free at once, not busy for the lease
    finally:
        relay.let_go.set()
        store.close()
        relay.close()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
