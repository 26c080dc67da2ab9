"""A PostgreSQL restart between runs: the next runs find new connections, and a failure
while the server is away is a typed ``SessionError``, never a raw psycopg error."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from _postgres import PrivatePostgres, private_postgres

from agentkit.sessions import SessionError
from agentkit.testing import Reply, ScriptedServer

from ._bot import make_agent
from ._support import user

__all__ = ["private_postgres"]

POOL = 4


@pytest.fixture
def store(private_postgres: PrivatePostgres) -> Iterator[Any]:
    pytest.importorskip("psycopg")
    from agentkit.sessions import PostgresStore

    opened = PostgresStore(private_postgres.dsn, schema="t_" + secrets.token_hex(6), pool_size=POOL)
    yield opened
    opened.close()


def _fill_pool(store: Any) -> None:
    """Leave POOL idle connections in the store's pool (as POOL concurrent runs do)."""
    with ExitStack() as stack:
        for _ in range(POOL):
            stack.enter_context(store._connection())


class _Unchecked:
    """A store whose pooled connections are handed out without the idle check, so the
    retry of a run's first statement is what must save the run."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._pooled = self._pooled

    def __exit__(self, *exc: object) -> None:
        del self.store._pooled

    def _pooled(self) -> Any:
        try:
            return self.store._pool.get_nowait()
        except Exception:
            return None


@pytest.mark.parametrize("checked", [True, False], ids=["idle-check", "retry"])
def test_runs_after_a_restart_get_new_connections(
    store: Any, private_postgres: PrivatePostgres, server: ScriptedServer, checked: bool
) -> None:
    server.queue(*[Reply.text(f"answer {i}") for i in range(2 * POOL + 2)])
    with make_agent(store, server.base_url) as desk:
        assert desk.run("before", session="s").output == "answer 0"
        _fill_pool(store)
        private_postgres.restart()
        with ExitStack() as stack:
            if not checked:
                stack.enter_context(_Unchecked(store))
            for i in range(1, POOL + 1):
                assert desk.run(f"after {i}", session=f"s{i % 2}").output == f"answer {i}"
            _fill_pool(store)
            private_postgres.restart()
            for i in range(POOL + 1, 2 * POOL + 1):
                result = asyncio.run(desk.run_async(f"after {i}", session="s"))
                assert result.output == f"answer {i}"
    assert len(store.load("s").messages) == 2 * (POOL + 1)


def test_each_store_operation_after_a_restart(
    store: Any, private_postgres: PrivatePostgres
) -> None:
    claim = store.claim("s")
    store.append(claim, [user("one")])
    _fill_pool(store)
    private_postgres.restart()
    with _Unchecked(store):
        store.append(claim, [user("two")])
        _fill_pool(store)
        private_postgres.restart()
        store.release(claim)
        _fill_pool(store)
        private_postgres.restart()
        assert [info.session_id for info in store.list_sessions()] == ["s"]
        _fill_pool(store)
        private_postgres.restart()
        assert [m["content"] for m in store.load("s").messages] == ["one", "two"]


def test_a_server_that_is_down_is_a_typed_error(
    store: Any, private_postgres: PrivatePostgres
) -> None:
    claim = store.claim("down")
    _fill_pool(store)
    private_postgres.stop()
    try:
        operations: list[Callable[[], object]] = [
            lambda: store.append(claim, [user("x")]),
            lambda: store.load("down"),
            lambda: store.claim("other"),
        ]
        for operation in operations:
            with pytest.raises(SessionError) as caught:
                operation()
            assert "psycopg" not in type(caught.value).__module__
            assert "postgresql://" not in str(caught.value)
    finally:
        private_postgres.start()
    store.append(claim, [user("back")])
    assert store.load("down").messages[-1]["content"] == "back"


def test_tables_beside_the_sessions_survive_a_restart_too(
    store: Any, private_postgres: PrivatePostgres
) -> None:
    from agentkit.sessions._tables import SideTables

    notes = SideTables(
        store, ["CREATE TABLE IF NOT EXISTS {p}notes (id TEXT PRIMARY KEY)"], "the test's notes"
    )
    notes.write("INSERT INTO {p}notes (id) VALUES (?)", ("before",))
    _fill_pool(store)
    private_postgres.restart()
    with _Unchecked(store):  # the BEGIN that finds the connection dropped is sent again
        assert notes.rows("SELECT id FROM {p}notes") == [("before",)]
        _fill_pool(store)
        private_postgres.restart()
        assert notes.write("INSERT INTO {p}notes (id) VALUES (?)", ("after",)) == 1
