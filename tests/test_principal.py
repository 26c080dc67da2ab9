"""``principal=``: who a run is for reaches every tool (and an instructions function) as
``ctx.principal``, on each entry point, sync and async, with and without a session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, Principal, RunContext, tool
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-principal-test"
seen: list[Principal | None] = []


@tool
def whoami(ctx: RunContext[None]) -> str:
    """Say who is asking."""
    seen.append(ctx.principal)
    return ctx.principal.id if ctx.principal else "nobody"


@tool(requires_approval=True)
def book(ctx: RunContext[None], slot: str) -> str:
    """Book a slot."""
    seen.append(ctx.principal)
    return f"booked {slot}"


def instructions(ctx: RunContext[None]) -> str:
    return f"You help {ctx.principal.id if ctx.principal else 'someone'}."


DANA = Principal("dana", frozenset({"patient"}), {"sub": "dana"})


def _script(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("whoami", {})), Reply.text("done"))


def test_a_principal_is_a_frozen_record() -> None:
    assert DANA.roles == frozenset({"patient"})
    assert Principal("x", {"a"}).roles == frozenset({"a"})  # type: ignore[arg-type]
    assert hash(DANA) == hash(Principal("dana", frozenset({"patient"}), {"sub": "other"}))
    with pytest.raises(ValueError):
        Principal("")
    with pytest.raises(AttributeError):
        DANA.id = "erin"  # type: ignore[misc]


@pytest.mark.parametrize("entry", ["run", "stream", "run_async", "stream_async"])
def test_each_entry_point_hands_the_principal_to_tools(server: ScriptedServer, entry: str) -> None:
    seen.clear()
    _script(server)
    agent = Agent("m", [whoami], base_url=server.base_url, api_key=KEY, instructions=instructions)
    with agent:
        if entry == "run":
            agent.run("who?", principal=DANA)
        elif entry == "stream":
            list(agent.stream("who?", principal=DANA))
        elif entry == "run_async":
            asyncio.run(agent.run_async("who?", principal=DANA))
        else:

            async def drain() -> None:
                async for _ in agent.stream_async("who?", principal=DANA):
                    pass

            asyncio.run(drain())
    assert seen == [DANA]
    assert server.requests[0].messages[0]["content"] == "You help dana."


def test_without_a_principal_the_context_has_none(server: ScriptedServer) -> None:
    seen.clear()
    _script(server)
    with Agent("m", [whoami], base_url=server.base_url, api_key=KEY) as agent:
        agent.run("who?")
    assert seen == [None]


def test_a_session_run_and_its_resume_carry_the_principal(
    server: ScriptedServer, tmp_path: Path
) -> None:
    seen.clear()
    store = SQLiteStore(tmp_path / "s.db")
    server.queue(Reply.tool_calls(("book", {"slot": "9:00"})), Reply.text("booked"))
    options: dict[str, Any] = {"base_url": server.base_url, "api_key": KEY, "store": store}
    with Agent("m", [book], instructions=instructions, **options) as agent:
        paused = agent.run("book 9:00", session="s1", principal=DANA)
        assert paused.status == "paused"
        erin = Principal("erin", frozenset({"receptionist"}))
        asyncio.run(agent.resume_async("s1", {paused.pending[0].call_id: True}, principal=erin))
    assert seen == [erin]
    assert server.requests[0].messages[0]["content"] == "You help dana."
    assert server.requests[1].messages[0]["content"] == "You help erin."
    store.close()
