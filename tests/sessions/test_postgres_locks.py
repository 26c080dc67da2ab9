"""A process frozen mid-transaction (stopped, swapped out, its network gone quiet) holds its
row locks in PostgreSQL for as long as it is frozen. A claim or a release behind such a lock
waited for it without end (a served request hung, its thread taken); ``lock_timeout`` now
bounds the wait, and the statement fails with a typed ``SessionError`` that says so."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import wait_until

from agentkit._blocking import release_claim
from agentkit.sessions import SessionError
from agentkit.testing import Reply, ScriptedServer

from ._bot import make_agent
from .conftest import postgres_dsn

pytestmark = pytest.mark.timeout(120)  # the old code hung here: fail, do not hang the suite


@pytest.fixture
def store() -> Iterator[Any]:
    import psycopg

    from agentkit.sessions import PostgresStore

    dsn = postgres_dsn()
    schema = "t_" + secrets.token_hex(6)
    opened = PostgresStore(dsn, schema=schema, lock_timeout=0.3)
    yield opened
    opened.close()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Frozen:
    """Another process's transaction that locked a session's row, then froze."""

    def __init__(self, store: Any, session_id: str) -> None:
        import psycopg

        self.connection = psycopg.connect(postgres_dsn())
        self.connection.execute(
            f'SELECT 1 FROM "{store.schema}".agentkit_sessions WHERE id = %s FOR UPDATE',
            (session_id,),
        )

    def thaw(self) -> None:
        self.connection.rollback()
        self.connection.close()


def test_a_claim_behind_a_frozen_transaction_is_a_typed_error(store: Any) -> None:
    store.release(store.claim("c1"))
    frozen = Frozen(store, "c1")
    try:
        with pytest.raises(SessionError, match="lock_timeout") as failed:
            store.claim("c1", wait=0.1)
        assert failed.value.session_id == "c1"
        other = store.claim("c2")  # the other sessions go on
        store.release(other)
    finally:
        frozen.thaw()
    store.release(store.claim("c1"))  # the failed claim left nothing behind


def test_a_release_behind_a_frozen_transaction_lands_once_it_thaws(store: Any) -> None:
    claim = store.claim("c1")
    frozen = Frozen(store, "c1")
    try:
        with pytest.raises(SessionError, match="lock_timeout"):
            release_claim(store, claim)  # fails now; retried in the background
    finally:
        frozen.thaw()
    wait_until(lambda: _free(store, "c1"))


def _free(store: Any, session_id: str) -> bool:
    try:
        store.release(store.claim(session_id))
    except SessionError:
        return False
    return True


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_run_behind_a_frozen_transaction_fails_typed_and_the_next_run_goes_on(
    store: Any, server: ScriptedServer, driver: str
) -> None:
    agent = make_agent(store, server.base_url)
    server.queue(Reply.text("Hello."))
    assert agent.run("Hi", session="c1").output == "Hello."
    frozen = Frozen(store, "c1")
    try:
        with pytest.raises(SessionError, match="lock_timeout"):
            if driver == "sync":
                agent.run("Still there?", session="c1")
            else:
                asyncio.run(agent.run_async("Still there?", session="c1"))
    finally:
        frozen.thaw()
    server.queue(Reply.text("Here again."))
    assert agent.run("Still there?", session="c1").output == "Here again."
    agent.close()
