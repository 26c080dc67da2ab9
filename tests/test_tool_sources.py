"""The tool-source seam: objects in an agent's tool list that supply tools at each run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest

from agentkit import Agent, ConfigurationError, RunFinished, Tool, ToolSource, tool
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-source-test-0123456789"


@tool
def local_add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Listed(ToolSource):
    """A source whose tool list the test changes between runs."""

    def __init__(self, *tools: Tool[..., Any]) -> None:
        self.current: list[Tool[..., Any]] = list(tools)
        self.asked = 0
        self.events: list[str] = []

    def tools(self) -> Sequence[Tool[..., Any]]:
        self.asked += 1
        return self.current

    async def tools_async(self) -> Sequence[Tool[..., Any]]:
        self.asked += 1
        return self.current

    def open(self) -> None:
        self.events.append("open")

    async def aopen(self) -> None:
        self.events.append("aopen")

    def close(self) -> None:
        self.events.append("close")

    async def aclose(self) -> None:
        self.events.append("aclose")

    def __repr__(self) -> str:
        return "Listed()"


def _shout(text: str) -> str:
    """Shout the text."""
    return text.upper()


shout = tool(_shout, name="shout")


def _agent(server: ScriptedServer, *tools: Any) -> Agent[str]:
    return Agent("qwen-plus", list(tools), base_url=server.base_url, api_key=KEY)


def _script(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("shout", {"text": "hi"}), ("local_add", {"a": 1, "b": 2})),
        Reply.text("done"),
    )


@pytest.mark.parametrize("driver", ["run", "stream", "run_async", "stream_async"])
def test_a_source_tool_runs_next_to_a_tool_in_one_round(driver: str) -> None:
    source = Listed(shout)
    with ScriptedServer() as server:
        _script(server)
        agent = _agent(server, local_add, source)

        async def run_async() -> list[dict[str, Any]]:
            async with agent:
                if driver == "run_async":
                    return (await agent.run_async("go")).messages
                events = agent.stream_async("go")
                async with contextlib.aclosing(events) as stream:
                    last = [e async for e in stream][-1]
                    assert isinstance(last, RunFinished)
                    return last.result.messages

        if driver in ("run", "stream"):
            with agent:
                if driver == "run":
                    messages = agent.run("go").messages
                else:
                    last = list(agent.stream("go"))[-1]
                    assert isinstance(last, RunFinished)
                    messages = last.result.messages
        else:
            messages = asyncio.run(run_async())
        sent = {t["function"]["name"] for t in server.requests[0].json()["tools"]}
    assert sent == {"shout", "local_add"}
    assert [m["content"] for m in messages if m["role"] == "tool"] == ["HI", "3"]
    assert source.asked == 1
    sync = driver in ("run", "stream")
    assert source.events == (["open", "close"] if sync else ["aopen", "aclose"])


def test_the_tool_list_is_derived_again_only_when_the_source_changes_it() -> None:
    source = Listed(shout)
    with ScriptedServer() as server:
        agent = _agent(server, source)
        for _ in range(2):
            server.queue(Reply.text("ok"))
            agent.run("go")
        first = agent._config.sourced
        server.queue(Reply.text("ok"))
        source.current = [shout, local_add]
        agent.run("go")
        names = [
            [t["function"]["name"] for t in request.json()["tools"]] for request in server.requests
        ]
        agent.close()
    assert names == [["shout"], ["shout"], ["shout", "local_add"]]
    assert first is not None and agent._config.sourced is not None
    assert first[1] is not agent._config.sourced[1]


def test_a_name_from_a_source_that_a_tool_has_is_a_clear_error() -> None:
    clash = tool(_shout, name="local_add")
    with ScriptedServer() as server:
        agent = _agent(server, local_add, Listed(clash))
        with pytest.raises(ConfigurationError, match=r"'local_add'.*Listed\(\).*prefix"):
            agent.run("go")
        assert server.requests == []
