"""Beyond one machine: two ``agentkit serve`` processes sharing one PostgreSQL store.

A conversation started on one continues on the other, an approval raised on one is decided
through the other, and two requests for one conversation at once give one answer and one
typed busy error. PostgreSQL comes from ``AGENTKIT_TEST_POSTGRES`` (``.ci/run`` starts one);
without it the tests skip, and with ``CI=true`` they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import textwrap
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from agentkit.testing import RecordedRequest, Reply, ScriptedServer, echo

from ._serving import serving
from .conftest import sessions_or_skip

sessions_or_skip()

KEY = "two-servers-key-0123"
BOT = '''
import os
from agentkit import Agent, tool
from agentkit.sessions import PostgresStore

@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"

@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    return f"order {order_id}: refunded"

desk = Agent("scripted", [get_order, refund], "You run the order desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456",
             store=PostgresStore(os.environ["BOT_DSN"], schema=os.environ["BOT_SCHEMA"]))
'''


def _dsn() -> str:
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES", "")
    if not dsn:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and no PostgreSQL: AGENTKIT_TEST_POSTGRES is not set")
        pytest.skip("no PostgreSQL (set AGENTKIT_TEST_POSTGRES to a DSN)")
    return dsn


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScriptedServer, str, str]]:
    """The scripted model and two servers on one PostgreSQL schema: (model, url_a, url_b)."""
    dsn = _dsn()
    schema = "serve_" + secrets.token_hex(5)
    folder = tmp_path_factory.mktemp("bot")
    (folder / "bot.py").write_text(textwrap.dedent(BOT))
    with ScriptedServer() as model, ExitStack() as servers:
        env = {
            **os.environ,
            "BOT_MODEL_URL": model.base_url,
            "BOT_DSN": dsn,
            "BOT_SCHEMA": schema,
            "AGENTKIT_SERVE_API_KEY": KEY,
        }
        try:
            argv = [f"{folder}/bot.py:desk"]
            urls = [servers.enter_context(serving(argv, env, ready_timeout=120)) for _ in "ab"]
            yield model, urls[0], urls[1]
        finally:
            servers.close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ask(url: str, text: str, conversation: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "desk", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {KEY}", "X-Agentkit-Conversation": conversation},
        timeout=120,
    )


def users(request: RecordedRequest) -> list[Any]:
    return [m["content"] for m in request.messages if m.get("role") == "user"]


@pytest.mark.timeout(300)
def test_a_conversation_started_on_one_server_continues_on_the_other(
    cluster: tuple[ScriptedServer, str, str],
) -> None:
    model, a, b = cluster
    model.respond_with(echo())
    model.clear_requests()
    name = "c-" + secrets.token_hex(4)
    assert ask(a, "My name is Ada.", name).status_code == 200
    assert ask(b, "What is my name?", name).json()["choices"][0]["message"]["content"] == (
        "What is my name?"
    )
    assert users(model.requests[-1]) == ["My name is Ada.", "What is my name?"]


@pytest.mark.timeout(300)
def test_an_approval_raised_on_one_server_is_decided_through_the_other(
    cluster: tuple[ScriptedServer, str, str],
) -> None:
    model, a, b = cluster
    model.respond_with(echo())
    model.queue(Reply.tool_calls(("refund", {"order_id": 7})), Reply.text("Refunded 7."))
    name = "r-" + secrets.token_hex(4)
    paused = ask(a, "Refund order 7.", name).json()["agentkit"]
    assert paused["status"] == "paused"
    (call,) = paused["pending"]
    shown = httpx.get(
        f"{b}/v1/sessions/{name}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ).json()
    assert shown["pending"][0]["id"] == call["id"]
    done = httpx.post(
        f"{b}/v1/sessions/{name}/approvals",
        json={"decisions": {call["id"]: True}, "digests": {call["id"]: call["arguments_digest"]}},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert done.json()["choices"][0]["message"]["content"] == "Refunded 7."
    assert model.requests[-1].messages[-1]["content"] == "order 7: refunded"


@pytest.mark.timeout(300)
def test_one_conversation_asked_on_both_servers_at_once_gives_one_answer_and_one_busy(
    cluster: tuple[ScriptedServer, str, str],
) -> None:
    model, a, b = cluster
    arrived = threading.Event()
    release: list[asyncio.Event] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def held(request: RecordedRequest) -> Reply:
        event = asyncio.Event()
        release.append(event)
        loops.append(asyncio.get_running_loop())
        arrived.set()
        await event.wait()
        return Reply.text("the one answer")

    model.respond_with(held)
    name = "b-" + secrets.token_hex(4)
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(ask(a, "first", name)))
    thread.start()
    assert arrived.wait(60)
    second = ask(b, "second", name)
    loops[0].call_soon_threadsafe(release[0].set)
    thread.join(120)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "session_busy"
    assert first[0].json()["choices"][0]["message"]["content"] == "the one answer"
    model.respond_with(echo())
    shown = httpx.get(
        f"{a}/v1/sessions/{name}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ).json()
    assert [m["content"] for m in shown["messages"]] == ["first", "the one answer"]
    assert len(release) == 1  # the busy request never reached the model
