"""The serve soak: many clients with stored conversations on PostgreSQL, random disconnects
(also while an approved call's answer streams), approvals bound to their digests, answers
cut at ``max_stream_chars``, and a PostgreSQL restart in the middle; the same churn on
SQLite (no restart there).

It ends with no side effect doubled, no claim stuck, no untyped error and no 500. Bounded
in count (``AGENTKIT_SERVE_SOAK_CLIENTS`` x ``AGENTKIT_SERVE_SOAK_TURNS``, default 10 x 6)
and seeded (``AGENTKIT_SERVE_SOAK_SEED``), so that a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _postgres import PrivatePostgres, private_postgres

from agentkit import Agent, tool
from agentkit.serve import RequestLimits, create_app
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import sessions_or_skip, uvicorn_serving

__all__ = ["private_postgres"]

sessions_or_skip()

CLIENTS = int(os.environ.get("AGENTKIT_SERVE_SOAK_CLIENTS", "10"))
TURNS = int(os.environ.get("AGENTKIT_SERVE_SOAK_TURNS", "6"))
SEED = int(os.environ.get("AGENTKIT_SERVE_SOAK_SEED", "7"))
JSON_TYPE = {"Content-Type": "application/json"}
SETTLE_TRIES = 50  # 10 s of retries, far below the 600 s lease a leaked claim would hold
# What a client may be told; 503 only while the store is away (the restart).
EXPECTED = {200, 409, 503}
BOUND = 300  # max_stream_chars: a "tell" answer (500 characters) is cut at it

paid: collections.Counter[str] = collections.Counter()
paid_lock = threading.Lock()


@tool(requires_approval=True, side_effects=True)
def pay(payment: str) -> str:
    """Pay once.

    Args:
        payment: the payment's unique id.
    """
    with paid_lock:
        paid[payment] += 1
    return f"paid {payment}"


@tool
def look(item: str) -> str:
    """Look an item up.

    Args:
        item: what to look up.
    """
    return f"{item}: in stock"


def scripted(request: RecordedRequest) -> Reply:
    """The model: a tool result gets an answer; "pay X" calls pay, "look X" calls look."""
    last = request.messages[-1]
    if last["role"] == "tool":
        return Reply.text(f"done: {str(last['content'])[:40]}", chunk_size=5)
    text = str(last.get("content") or "")
    verb, _, thing = text.partition(" ")
    if verb == "pay":
        return Reply.tool_calls(("pay", {"payment": thing}))
    if verb == "look":
        return Reply.tool_calls(("look", {"item": thing}))
    if verb == "tell":
        return Reply.text("word " * 100, chunk_size=5)
    return Reply.text(f"you said {text}", chunk_size=5)


class Soak:
    """The clients' shared bookkeeping: every answer seen, and the restart in the middle."""

    def __init__(self, url: str, restart: Callable[[], None]) -> None:
        self.url = url
        self.restart = restart
        self.statuses: collections.Counter[int] = collections.Counter()
        self.bad: list[str] = []
        self.done = 0
        self.restarted = asyncio.Event()
        self.conversations: list[str] = []
        self.history: dict[str, list[str]] = collections.defaultdict(list)
        self.cut = 0  # answers cut at the bound, seen whole by their client
        self.left_approvals = 0

    def check(self, response: httpx.Response, what: str) -> dict[str, Any] | None:
        """Record an answer; its JSON body, or None for a stream (checked by the caller)."""
        self.statuses[response.status_code] += 1
        if response.status_code not in EXPECTED:
            self.bad.append(f"{what}: {response.status_code} {response.text[:300]}")
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            self.bad.append(f"{what}: not JSON: {response.text[:300]!r}")
            return {}
        if response.status_code != 200:
            error = body.get("error") or {}
            if not error.get("code"):
                self.bad.append(f"{what}: an error without a code: {body}")
        return body

    async def turn_finished(self) -> None:
        self.done += 1
        if self.done == CLIENTS * TURNS // 2 and not self.restarted.is_set():
            self.restarted.set()
            # the server goes away and comes back while the other clients go on
            await asyncio.to_thread(self.restart)


def stream_body(text: str) -> dict[str, Any] | None:
    """The last chunk's ``agentkit`` extension of a streamed answer, or None (an error
    event, or a stream without ``[DONE]``)."""
    if not text.rstrip().endswith("data: [DONE]"):
        return None
    events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
    for event in reversed(events):
        if "agentkit" in event:
            return dict(event["agentkit"])
    return None


async def one_client(
    soak: Soak, client: httpx.AsyncClient, number: int, rng: random.Random
) -> None:
    conversation = f"soak-{number}-{secrets.token_hex(3)}"
    soak.conversations.append(conversation)
    headers = {**JSON_TYPE, "X-Agentkit-Conversation": conversation}
    for turn in range(TURNS):
        action = rng.choice(["look", "pay", "pay", "say", "leave", "tell"])
        streamed = rng.random() < 0.5
        when = " (after the restart)" if soak.restarted.is_set() else ""
        soak.history[conversation].append(f"{action}{' streamed' if streamed else ''}{when}")
        text = {
            "pay": f"pay {conversation}-{turn}",
            "look": f"look item{turn}",
            "tell": "tell all",
        }.get(action, f"hello {turn}")
        if action == "leave":  # the client goes away once the answer has begun
            streamed, text = True, f"pay {conversation}-{turn}"
        body: dict[str, Any] = {
            "model": "desk",
            "stream": streamed,
            "messages": [{"role": "user", "content": text}],
        }
        url = soak.url + "/v1/chat/completions"
        if action == "leave":
            async with client.stream("POST", url, json=body, headers=headers) as response:
                soak.statuses[response.status_code] += 1
                async for _ in response.aiter_bytes():
                    break
            await soak.turn_finished()
            continue
        response = await client.post(url, json=body, headers=headers)
        answer = soak.check(response, f"{conversation} turn {turn} {action}")
        extension = stream_body(response.text) if answer is None else (answer or {}).get("agentkit")
        if response.status_code == 200 and extension is None and answer is None:
            # a stream that ended with an error event: it must be a typed one
            errors = [line for line in response.text.split("\n") if '"error"' in line]
            if not errors or '"code":null' in errors[-1] or "internal_error" in errors[-1]:
                soak.bad.append(f"{conversation}: a stream ended badly: {response.text[-300:]}")
        if action == "tell" and response.status_code == 200 and answer is not None:
            told = answer["choices"][0]["message"]["content"]
            if told != ("word " * 100)[:BOUND]:
                soak.bad.append(f"{conversation}: a cut answer was {len(told)} characters")
            soak.cut += 1
        elif action == "tell" and extension is not None:
            soak.cut += 1
        if extension and extension.get("status") == "paused":
            await approve(soak, client, conversation, extension["pending"], rng)
        await soak.turn_finished()


async def approve(
    soak: Soak,
    client: httpx.AsyncClient,
    conversation: str,
    pending: list[dict[str, Any]],
    rng: random.Random,
) -> None:
    decisions = {call["id"]: rng.random() < 0.8 for call in pending}
    digests = {call["id"]: call["arguments_digest"] for call in pending}
    if rng.random() < 0.2:  # now and then a stale digest: refused, nothing runs
        stale = {call_id: "0" * 64 for call_id in digests}
        refused = await client.post(
            f"{soak.url}/v1/sessions/{conversation}/approvals",
            json={"model": "desk", "decisions": decisions, "digests": stale},
            headers=JSON_TYPE,
        )
        soak.check(refused, f"{conversation} stale approval")
        if refused.status_code == 200:
            soak.bad.append(f"{conversation}: a stale digest was accepted")
    streamed = rng.random() < 0.5
    url = f"{soak.url}/v1/sessions/{conversation}/approvals"
    body = {"model": "desk", "decisions": decisions, "digests": digests, "stream": streamed}
    if streamed and rng.random() < 0.3:  # the client leaves once the answer has begun
        async with client.stream("POST", url, json=body, headers=JSON_TYPE) as response:
            soak.statuses[response.status_code] += 1
            async for _ in response.aiter_bytes():
                break
        soak.left_approvals += 1
        return
    decided = await client.post(url, json=body, headers=JSON_TYPE)
    soak.check(decided, f"{conversation} approval")


async def run_soak(soak: Soak) -> list[str]:
    rng = random.Random(SEED)
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(
            *(one_client(soak, client, n, random.Random(rng.random())) for n in range(CLIENTS))
        )
        # no claim stuck: every conversation answers a new message (the store is back)
        stuck: list[str] = []
        for name in soak.conversations:
            # A run whose client left may still be settling (its tool's thread returning):
            # it lets go within moments; a leaked claim would answer 409 for its whole lease.
            for _ in range(SETTLE_TRIES):
                answer = await client.post(
                    soak.url + "/v1/chat/completions",
                    json={"model": "desk", "messages": [{"role": "user", "content": "there?"}]},
                    headers={**JSON_TYPE, "X-Agentkit-Conversation": name},
                )
                if answer.status_code != 409:
                    break
                await asyncio.sleep(0.2)  # a retry's pause, as a client's backoff
            soak.statuses[answer.status_code] += 1
            if answer.status_code != 200:
                stuck.append(f"{name}: {answer.status_code} after {soak.history[name]}")
        return stuck


@pytest.fixture(params=["postgres", "sqlite"])
def soak_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Any, Callable[[], None]]]:
    """The store, and how its server restarts (SQLite has none: nothing happens)."""
    if request.param == "sqlite":
        from agentkit.sessions import SQLiteStore

        store: Any = SQLiteStore(tmp_path / "soak.db")
        restart: Callable[[], None] = lambda: None  # noqa: E731
    else:
        pytest.importorskip("psycopg")
        from agentkit.sessions import PostgresStore

        postgres: PrivatePostgres = request.getfixturevalue("private_postgres")
        store = PostgresStore(postgres.dsn, schema="soak_" + secrets.token_hex(4), pool_size=4)
        restart = postgres.restart
    yield store, restart
    store.close()


@pytest.mark.timeout(600)
def test_the_serve_soak_holds(
    model: ScriptedServer, soak_store: tuple[Any, Callable[[], None]]
) -> None:
    store, restart = soak_store
    paid.clear()
    model.respond_with(scripted)
    desk = Agent(
        "scripted",
        [pay, look],
        "You run the desk.",
        base_url=model.base_url,
        api_key="sk-unused-0123456789",
        store=store,
    )
    app = create_app({"desk": desk}, request_limits=RequestLimits(max_stream_chars=BOUND))
    with uvicorn_serving(app) as url:
        soak = Soak(url, restart)
        stuck = asyncio.run(run_soak(soak))
    assert soak.restarted.is_set()
    assert not soak.bad, soak.bad[:10]
    assert soak.statuses[500] == 0
    doubled = {payment: count for payment, count in paid.items() if count > 1}
    assert not doubled, doubled
    assert soak.statuses[200] > CLIENTS * TURNS // 2, soak.statuses
    print(
        f"serve soak: {dict(soak.statuses)}; {sum(paid.values())} payments, none doubled;"
        f" {soak.cut} cut answers, {soak.left_approvals} approvals left mid-answer"
    )
    assert not stuck, f"claims held after a client left: {stuck}"
