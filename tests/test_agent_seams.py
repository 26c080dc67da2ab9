"""The public seams of a run the ring builds on: ``principal=`` reaching ``RunContext``,
``resume_stream`` / ``resume_stream_async`` with the resumed round's real tool events, and
``RunResult.new_messages()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentkit import (
    Agent,
    ConfigurationError,
    Principal,
    RunContext,
    RunFinished,
    TextDelta,
    Tool,
    ToolCallStarted,
    ToolResult,
    ToolSource,
    tool,
)
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-seams-test"
seen: list[Principal | None] = []
refunded: list[int] = []


@tool
def whoami(ctx: RunContext[Any]) -> str:
    """Who is asking."""
    seen.append(ctx.principal)
    return ctx.principal.id if ctx.principal is not None else "nobody"


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    refunded.append(order_id)
    return f"refunded {order_id}"


@pytest.fixture(autouse=True)
def _reset() -> None:
    seen.clear()
    refunded.clear()


def agent_for(server: ScriptedServer, **options: Any) -> Agent[str]:
    return Agent(
        "seams-model",
        [whoami, refund],
        "Be brief.",
        base_url=server.base_url,
        api_key=KEY,
        **options,
    )


DANA = Principal("dana", frozenset({"patient"}), {"sub": "dana"})


# -- principal= ----------------------------------------------------------------------------


def test_instructions_functions_see_the_principal(server: ScriptedServer) -> None:
    server.queue(Reply.text("hi"))

    def rules(ctx: RunContext[Any]) -> str:
        return f"You serve {ctx.principal.id if ctx.principal else 'a guest'}."

    with Agent("m", [], rules, base_url=server.base_url, api_key=KEY) as agent:
        agent.run("hi", principal=DANA)
    assert server.requests[-1].json()["messages"][0]["content"] == "You serve dana."


def test_a_principal_that_is_not_one_is_refused() -> None:
    agent = Agent("m", [], base_url="http://127.0.0.1:9/v1", api_key=KEY)
    with pytest.raises(ConfigurationError, match=r"agentkit\.Principal"):
        agent.run("hi", principal="dana")  # type: ignore[arg-type]


# -- resume_stream / resume_stream_async ----------------------------------------------------


def _paused(agent: Agent[str], server: ScriptedServer, **run: Any) -> Any:
    server.queue(Reply.tool_calls(("refund", {"order_id": 7})))
    result = agent.run("Refund order 7.", **run)
    assert result.status == "paused" and refunded == []
    return result


def _resumed_kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, TextDelta)]


def test_resume_stream_streams_the_resumed_round_with_its_real_tool_events(
    server: ScriptedServer,
) -> None:
    with agent_for(server) as agent:
        paused = _paused(agent, server)
        server.queue(Reply.text("Refunded order 7."))
        events = list(agent.resume_stream(paused, {paused.pending[0].call_id: True}))
    assert refunded == [7]
    assert _resumed_kinds(events) == [
        "ToolCallStarted",
        "ToolResult",
        "ModelRoundFinished",
        "RunFinished",
    ]
    started = events[0]
    assert isinstance(started, ToolCallStarted) and started.name == "refund"
    result_event = next(e for e in events if isinstance(e, ToolResult))
    assert result_event.output == "refunded 7"
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Refunded order 7."
    assert server.requests[-1].json()["stream"] is True
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.result.output == "Refunded order 7."


def test_resume_stream_async_on_a_session(server: ScriptedServer, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "seams.db")

    async def go() -> list[Any]:
        with agent_for(server, store=store) as agent:
            paused = _paused(agent, server, session="s-1")
            server.queue(Reply.text("Done."))
            events: AsyncGenerator[Any, None] = agent.resume_stream_async(
                "s-1", {paused.pending[0].call_id: True}
            )
            async with contextlib.aclosing(events) as running:
                collected = [event async for event in running]
            await agent.aclose()
            return collected

    try:
        events = asyncio.run(go())
    finally:
        store.close()
    assert refunded == [7]
    assert _resumed_kinds(events)[:2] == ["ToolCallStarted", "ToolResult"]
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.result.session == "s-1" and finished.result.output == "Done."


def test_resume_stream_refuses_bad_decisions_and_runs_nothing(server: ScriptedServer) -> None:
    from agentkit import ResumeError

    with agent_for(server) as agent:
        paused = _paused(agent, server)
        with pytest.raises(ResumeError):
            list(agent.resume_stream(paused, {"no-such-call": True}))
    assert refunded == []


# -- the async entry points never ask a tool source synchronously (#18 item 14) ------------


class AsyncOnlySource(ToolSource):
    """A source whose sync ``tools()`` would block the event loop (an MCP server's does)."""

    def __init__(self) -> None:
        self.asked = 0

    def tools(self) -> Sequence[Tool[..., Any]]:
        raise AssertionError("the sync tools() was called from async code")

    async def tools_async(self) -> Sequence[Tool[..., Any]]:
        self.asked += 1
        return [refund]


def test_resume_async_asks_a_tool_source_only_asynchronously(server: ScriptedServer) -> None:
    source = AsyncOnlySource()
    agent = Agent("m", [source], base_url=server.base_url, api_key=KEY)

    async def go() -> Any:
        server.queue(Reply.tool_calls(("refund", {"order_id": 3})))
        paused = await agent.run_async("Refund order 3.")
        assert paused.status == "paused"
        server.queue(Reply.text("Refunded."))
        resumed = await agent.resume_async(paused, {paused.pending[0].call_id: True})
        server.queue(Reply.tool_calls(("refund", {"order_id": 4})))
        again = await agent.run_async("Refund order 4.")
        server.queue(Reply.text("Refunded 4."))
        streamed = agent.resume_stream_async(again, {again.pending[0].call_id: True})
        async with contextlib.aclosing(streamed) as events:
            last = [event async for event in events][-1]
        await agent.aclose()
        return resumed, last

    resumed, last = asyncio.run(go())
    assert resumed.output == "Refunded." and refunded == [3, 4]
    assert isinstance(last, RunFinished) and last.result.output == "Refunded 4."
    assert source.asked == 4


# -- RunResult.new_messages() ---------------------------------------------------------------


def test_new_messages_are_what_the_run_added(server: ScriptedServer, tmp_path: Path) -> None:
    server.queue(Reply.tool_calls(("whoami", {})), Reply.text("You are dana."))
    with agent_for(server) as agent:
        first = agent.run("who?", principal=Principal("dana"))
        assert [m["role"] for m in first.new_messages()] == ["assistant", "tool", "assistant"]
        server.queue(Reply.text("Still dana."))
        follow = agent.run([*first.messages, {"role": "user", "content": "sure?"}])
        assert follow.new_messages() == [{"role": "assistant", "content": "Still dana."}]
    store = SQLiteStore(tmp_path / "n.db")
    try:
        with agent_for(server, store=store) as agent:
            server.queue(Reply.text("one"), Reply.tool_calls(("refund", {"order_id": 2})))
            agent.run("first", session="s")
            paused = agent.run("second", session="s")
            assert [m["role"] for m in paused.new_messages()] == ["assistant"]
            server.queue(Reply.text("refunded"))
            resumed = agent.resume("s", {paused.pending[0].call_id: True})
            assert [m["role"] for m in resumed.new_messages()] == ["tool", "assistant"]
    finally:
        store.close()
