"""Shared fixtures of the serve tests: a scripted model, bots on it, the app on uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from agentkit import Agent, tool
from agentkit.serve import create_app
from agentkit.testing import ScriptedServer

MODEL_KEY = "sk-model-secret-0123456789"

HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=60)
"""The tests' client for one-off requests, in place of ``httpx.get``/``httpx.post``, which
build a client, and load the CA bundle, for every request (tens of milliseconds each). No
connection is kept between requests, as with those: each opens its own, as before. Its
timeout bounds a hang (60 s, not httpx's 5 s: a loaded machine can take seconds to answer);
a test that expects no answer gives its own."""


@tool
def get_order(order_id: int) -> str:
    """Look an order up.

    Args:
        order_id: the order number.
    """
    return f"order {order_id}: shipped"


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order.

    Args:
        order_id: the order number.
    """
    return f"order {order_id}: refunded"


def sessions_or_skip() -> Any:
    """``agentkit.sessions``, or a skip while the Agent takes no ``store=``."""
    import inspect

    if "store" not in inspect.signature(Agent.__init__).parameters:
        pytest.skip("Agent(store=...) is not in this agentkit yet", allow_module_level=True)
    import agentkit.sessions

    return agentkit.sessions


@contextlib.contextmanager
def uvicorn_serving(
    app: Any,
    connections: Any = None,
    protocol: Any = None,
    executor: Executor | None = None,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread, with the
    protocol ``agentkit serve`` uses (``connections``: its ``ConnectionLimits``;
    ``protocol``: a subclass of it; ``executor``: its event loop's default thread pool);
    yields its URL."""
    import uvicorn

    from agentkit.serve._connections import GuardedH11

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=protocol or GuardedH11,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    if connections is not None:
        config.agentkit_connections = connections  # type: ignore[attr-defined]
    server = uvicorn.Server(config)

    async def serve() -> None:
        if executor is not None:
            asyncio.get_running_loop().set_default_executor(executor)
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        threading.Event().wait(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture
def model(server: ScriptedServer) -> ScriptedServer:
    """The scripted model behind the bots (the shared ``server`` fixture)."""
    return server


def make_desk(model: ScriptedServer, **options: Any) -> Agent[str]:
    """The order desk bot on the scripted model."""
    return Agent(
        "scripted",
        [get_order, refund],
        "You run the order desk.",
        base_url=model.base_url,
        api_key=MODEL_KEY,
        **options,
    )


@pytest.fixture
def desk(model: ScriptedServer) -> Agent[str]:
    """The order desk on the scripted model."""
    return make_desk(model)


@pytest.fixture
def served(desk: Agent[str]) -> Iterator[str]:
    """The desk served as ``desk`` on loopback, no keys; yields the root URL."""
    with uvicorn_serving(create_app({"desk": desk})) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store: a SQLite file, or a new schema on the test PostgreSQL server."""
    from agentkit import sessions

    if request.param == "sqlite":
        store: Any = sessions.SQLiteStore(tmp_path / "unlock.db")
        yield store
        store.close()
        return
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES", "")
    if not dsn:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and no PostgreSQL: AGENTKIT_TEST_POSTGRES is not set")
        pytest.skip("no PostgreSQL (set AGENTKIT_TEST_POSTGRES to a DSN)")
    psycopg = pytest.importorskip("psycopg")
    schema = "unlock_" + secrets.token_hex(5)
    store = sessions.PostgresStore(dsn, schema=schema, pool_size=4)
    yield store
    store.close()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
