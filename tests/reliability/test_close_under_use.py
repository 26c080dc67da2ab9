"""Closing an agent (or its client) while one of its runs goes on: the run ends with a typed
``APIConnectionError`` (code ``client_closed``) that carries its transcript, never httpx's
raw ``RuntimeError``; the agent answers the next run on a fresh connection pool.

The close happens inside the run, from its own tool, so the order is fixed without any
clock: the tool's round is done, and the next model request meets the closed pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentkit import Agent, APIConnectionError, ChatClient, RunContext, tool
from agentkit.testing import Reply, ScriptedServer

from ._support import INSTRUCTIONS, KEY, MODEL, Driver, consume, consume_async, tool_messages

PROMPT = "Close and go on."


@tool
def close_agent(ctx: RunContext[Any]) -> str:
    """Close the agent this run belongs to (sync drivers)."""
    ctx.deps.close()
    return "closed"


@tool
async def aclose_agent(ctx: RunContext[Any]) -> str:
    """Close the agent this run belongs to (async drivers)."""
    await ctx.deps.aclose()
    return "closed"


def _run(agent: Agent[Any], driver: Driver) -> Any:
    if driver == "run":
        return agent.run(PROMPT, deps=agent)
    if driver == "stream":
        return consume(agent.stream(PROMPT, deps=agent))

    async def main() -> Any:
        if driver == "run_async":
            return await agent.run_async(PROMPT, deps=agent)
        return await consume_async(agent.stream_async(PROMPT, deps=agent))

    return asyncio.run(main())


def test_closing_the_agent_under_its_run_ends_it_typed_with_its_transcript(
    server: ScriptedServer, driver: Driver
) -> None:
    closer = close_agent if driver in ("run", "stream") else aclose_agent
    agent = Agent(MODEL, [closer], INSTRUCTIONS, base_url=server.base_url, api_key=KEY)
    server.queue(Reply.tool_calls((closer.name, {})))
    with pytest.raises(APIConnectionError) as caught:
        _run(agent, driver)
    error = caught.value
    assert error.code == "client_closed"
    assert "closed" in str(error) and KEY not in str(error)
    assert isinstance(error.__cause__, RuntimeError)
    # the tool's round is in the transcript: the run can be sent again from there
    assert [m["content"] for m in tool_messages(error.messages or [])] == ["closed"]
    assert len(server.requests) == 1  # nothing more reached the model
    server.queue(Reply.text("Back."))
    assert agent.run("Again?").output == "Back."  # a closed agent opens a new pool
    agent.close()


def test_a_client_closed_under_a_run_ends_it_typed(server: ScriptedServer) -> None:
    chat = ChatClient(server.base_url, KEY)

    @tool
    def close_client() -> str:
        """Close the run's client."""
        chat.close()
        return "closed"

    server.queue(Reply.tool_calls(("close_client", {})))
    agent = Agent(MODEL, [close_client], INSTRUCTIONS, client=chat)
    with agent, pytest.raises(APIConnectionError) as caught:
        agent.run(PROMPT)
    assert caught.value.code == "client_closed"
    assert caught.value.messages is not None
