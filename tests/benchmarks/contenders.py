"""The two-round run, written once per contender, each the way its documentation shows.

Every factory takes the server's base URL and returns a :class:`Contender` whose ``run``
performs one whole conversation (question, tool call, tool result, answer) and returns the
answer text. Clients are built once and reused across runs, as a user's program would.
Async contenders return a coroutine function; the harness runs them on one long-lived loop,
so no contender pays for creating an event loop per run.

A factory raises :class:`Skip` when its package is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from . import scripted

API_KEY = "sk-bench-not-a-real-key"
MAX_TURNS = 10


class Skip(Exception):
    """The contender cannot run here (its package is missing); the message says why."""


@dataclass
class Contender:
    """One way of running the two-round conversation."""

    name: str
    run: Callable[[], Any]
    """Sync: returns the answer. Async: returns an awaitable of the answer."""
    is_async: bool = False
    close: Callable[[], Any] = field(default=lambda: None)
    """Releases the contender's clients (may return an awaitable for async ones)."""


Factory = Callable[[str], Contender]


def label(factory: Factory) -> str:
    """The name a factory's contender goes by in the tables."""
    name: str = getattr(factory, "label", factory.__name__)
    return name


def _named(name: str) -> Callable[[Factory], Factory]:
    def decorate(factory: Factory) -> Factory:
        factory.label = name  # type: ignore[attr-defined]
        return factory

    return decorate


def _require(module: str, package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise Skip(f"{package} is not installed (pip install -e '.[bench]')")


# -- the floor -------------------------------------------------------------------------


@_named("floor: httpx.Client loop")
def floor_httpx(base_url: str) -> Contender:
    """The least a program can do: an ``httpx.Client`` loop over plain dicts."""
    return _sync_floor(base_url, label(floor_httpx), in_thread=False)


@_named("floor: httpx.Client loop, tool in a thread")
def floor_httpx_thread(base_url: str) -> Contender:
    """The sync floor handing the tool to a kept worker thread and waiting for it, the
    least a loop that can time a tool out or let Ctrl-C stop the run while the tool
    runs can cost; what ``run`` does, for comparison (no target)."""
    return _sync_floor(base_url, label(floor_httpx_thread), in_thread=True)


Hop = Callable[[Callable[..., str], dict[str, Any]], str]
"""How a floor hands its tool to a thread and waits: ``hop(tool, arguments)``."""


def _sync_floor(base_url: str, name: str, *, in_thread: bool) -> Contender:
    if not in_thread:
        return sync_floor(base_url, name)
    worker = ThreadPoolExecutor(1)
    floor = sync_floor(base_url, name, hop=lambda fn, args: worker.submit(fn, **args).result())

    def close() -> None:
        floor.close()
        worker.shutdown()

    return Contender(name, floor.run, close=close)


def sync_floor(base_url: str, name: str, hop: Hop | None = None) -> Contender:
    """The sync floor's loop; its tool called in place, or through ``hop``
    (tests/benchmarks/hop.py compares the ways of handing it to a thread)."""
    import httpx

    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        for _ in range(MAX_TURNS):
            response = client.post(
                "/chat/completions",
                json={"model": scripted.MODEL, "messages": messages, "tools": scripted.TOOLS},
            )
            response.raise_for_status()
            message = response.json()["choices"][0]["message"]
            messages.append(message)
            calls = message.get("tool_calls")
            if not calls:
                answer: str = message["content"]
                return answer
            for call in calls:
                arguments = json.loads(call["function"]["arguments"])
                if hop is not None:
                    content = hop(scripted.get_weather, arguments)
                else:
                    content = scripted.get_weather(**arguments)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        raise RuntimeError("no final answer")

    return Contender(name, run, close=client.close)


@_named("floor: httpx.AsyncClient loop")
def floor_httpx_async(base_url: str) -> Contender:
    """The async floor: the same loop over ``httpx.AsyncClient`` (``run_async``'s floor)."""
    return _async_floor(base_url, label(floor_httpx_async), in_thread=False)


@_named("floor: httpx.AsyncClient loop, tool in a thread")
def floor_httpx_async_thread(base_url: str) -> Contender:
    """The async floor handing the sync tool to ``asyncio.to_thread``, as a program serving
    others on its event loop must (a sync tool called inline blocks that loop); what
    ``run_async`` does with a sync tool, for comparison (no target)."""
    return _async_floor(base_url, label(floor_httpx_async_thread), in_thread=True)


def _async_floor(base_url: str, name: str, *, in_thread: bool) -> Contender:
    import httpx

    client = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    async def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        for _ in range(MAX_TURNS):
            response = await client.post(
                "/chat/completions",
                json={"model": scripted.MODEL, "messages": messages, "tools": scripted.TOOLS},
            )
            response.raise_for_status()
            message = response.json()["choices"][0]["message"]
            messages.append(message)
            calls = message.get("tool_calls")
            if not calls:
                answer: str = message["content"]
                return answer
            for call in calls:
                arguments = json.loads(call["function"]["arguments"])
                if in_thread:
                    content = await asyncio.to_thread(scripted.get_weather, **arguments)
                else:
                    content = scripted.get_weather(**arguments)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        raise RuntimeError("no final answer")

    return Contender(name, run, is_async=True, close=client.aclose)


@_named("floor: httpx.Client SSE loop")
def floor_httpx_sse(base_url: str) -> Contender:
    """The streaming floor: both rounds streamed, text and tool-call deltas assembled by
    hand from ``data:`` lines (``stream``'s floor)."""
    import httpx

    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    def round_trip(messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "model": scripted.MODEL,
            "messages": messages,
            "tools": scripted.TOOLS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        with client.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                for choice in json.loads(data)["choices"]:
                    delta = choice["delta"]
                    if delta.get("content"):
                        text.append(delta["content"])
                    for part in delta.get("tool_calls") or ():
                        call = calls.setdefault(
                            part["index"],
                            {
                                "id": "",
                                "type": "function",
                                "function": {"name": "", "arguments": ""},
                            },
                        )
                        call["id"] = part.get("id") or call["id"]
                        function = part.get("function") or {}
                        call["function"]["name"] = function.get("name") or call["function"]["name"]
                        call["function"]["arguments"] += function.get("arguments") or ""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if calls:
            message["tool_calls"] = [calls[index] for index in sorted(calls)]
        return message

    def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        for _ in range(MAX_TURNS):
            message = round_trip(messages)
            messages.append(message)
            if "tool_calls" not in message:
                answer: str = message["content"]
                return answer
            for call in message["tool_calls"]:
                arguments = json.loads(call["function"]["arguments"])
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": scripted.get_weather(**arguments),
                    }
                )
        raise RuntimeError("no final answer")

    return Contender(label(floor_httpx_sse), run, close=client.close)


# -- peers -------------------------------------------------------------------------------


@_named("openai SDK by hand")
def openai_sdk(base_url: str) -> Contender:
    """The openai SDK's chat completions, with the tool loop written by hand."""
    _require("openai", "openai")
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    def run() -> str:
        messages: list[Any] = [{"role": "user", "content": scripted.QUESTION}]
        for _ in range(MAX_TURNS):
            completion = client.chat.completions.create(
                model=scripted.MODEL, messages=messages, tools=cast(Any, scripted.TOOLS)
            )
            message = completion.choices[0].message
            messages.append(message)
            if not message.tool_calls:
                return message.content or ""
            for call in cast(list[Any], message.tool_calls):
                arguments = json.loads(call.function.arguments)
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": scripted.get_weather(**arguments),
                    }
                )
        raise RuntimeError("no final answer")

    return Contender(label(openai_sdk), run, close=client.close)


@_named("openai-agents Runner.run")
def openai_agents(base_url: str) -> Contender:
    """openai-agents: ``Runner.run`` with a ``@function_tool``, on the Chat Completions model."""
    _require("agents", "openai-agents")
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # tracing would export to the network
    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    agent = Agent(
        name="bench",
        model=OpenAIChatCompletionsModel(model=scripted.MODEL, openai_client=client),
        tools=[get_weather],
    )

    async def run() -> str:
        result = await Runner.run(agent, scripted.QUESTION)
        return str(result.final_output)

    return Contender(label(openai_agents), run, is_async=True, close=client.close)


@_named("pydantic-ai Agent.run")
def pydantic_ai(base_url: str) -> Contender:
    """pydantic-ai: ``Agent.run`` with a ``@agent.tool_plain``, on its OpenAI chat model."""
    _require("pydantic_ai", "pydantic-ai-slim[openai]")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=base_url, api_key=API_KEY)
    agent = Agent(OpenAIChatModel(scripted.MODEL, provider=provider))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    async def run() -> str:
        result = await agent.run(scripted.QUESTION)
        return result.output

    return Contender(label(pydantic_ai), run, is_async=True, close=provider.client.close)


@_named("LangChain bind_tools loop")
def langchain(base_url: str) -> Contender:
    """LangChain: ``ChatOpenAI.bind_tools`` and the documented tool-message loop."""
    _require("langchain_openai", "langchain-openai")
    os.environ.pop("LANGSMITH_TRACING", None)
    os.environ.pop("LANGCHAIN_TRACING_V2", None)
    from langchain_core.messages import BaseMessage, HumanMessage
    from langchain_core.tools import tool as lc_tool
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    @lc_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    llm = ChatOpenAI(
        model=scripted.MODEL, base_url=base_url, api_key=SecretStr(API_KEY), max_retries=0
    ).bind_tools([get_weather])

    def run() -> str:
        messages: list[BaseMessage] = [HumanMessage(scripted.QUESTION)]
        for _ in range(MAX_TURNS):
            reply = llm.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                messages.append(get_weather.invoke(call))
        raise RuntimeError("no final answer")

    return Contender(label(langchain), run)


PEERS = (openai_sdk, openai_agents, pydantic_ai, langchain)


# -- agentkit ----------------------------------------------------------------------------


def _agentkit_agent(base_url: str, model: str = scripted.MODEL) -> Any:
    try:
        from agentkit import Agent, tool
    except ImportError as error:  # agent.py not there yet
        raise Skip(f"agentkit.Agent is not available yet ({error})") from error

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    return Agent(model, tools=[get_weather], base_url=base_url, api_key=API_KEY)


@_named("agentkit Agent.run")
def agentkit_run(base_url: str) -> Contender:
    """agentkit's sync ``Agent.run``."""
    agent = _agentkit_agent(base_url)

    def run() -> str:
        return str(agent.run(scripted.QUESTION).output)

    return Contender(label(agentkit_run), run, close=_closer(agent))


@_named("agentkit Agent.run_async")
def agentkit_run_async(base_url: str) -> Contender:
    """agentkit's ``Agent.run_async``."""
    agent = _agentkit_agent(base_url)

    async def run() -> str:
        result = await agent.run_async(scripted.QUESTION)
        return str(result.output)

    return Contender(label(agentkit_run_async), run, is_async=True, close=_closer(agent))


@_named("agentkit Agent.run_async, async tool")
def agentkit_run_async_async_tool(base_url: str) -> Contender:
    """``Agent.run_async`` with the tool written ``async def``: it runs as a task on the
    run's loop, with no thread hop (for comparison; no target)."""
    from agentkit import Agent, tool

    @tool
    async def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    agent = Agent(scripted.MODEL, tools=[get_weather], base_url=base_url, api_key=API_KEY)

    async def run() -> str:
        result = await agent.run_async(scripted.QUESTION)
        return str(result.output)

    return Contender(label(agentkit_run_async_async_tool), run, is_async=True, close=_closer(agent))


@_named("agentkit Agent.stream")
def agentkit_stream(base_url: str) -> Contender:
    """agentkit's sync ``Agent.stream``, consumed to its last event (both rounds streamed)."""
    agent = _agentkit_agent(base_url)

    def run() -> str:
        last: Any = None
        for event in agent.stream(scripted.QUESTION):
            last = event
        return str(last.result.output)

    return Contender(label(agentkit_stream), run, close=_closer(agent))


def _closer(agent: Any) -> Callable[[], Awaitable[None] | None]:
    def close() -> Awaitable[None] | None:
        for name in ("close", "aclose"):
            method = getattr(agent, name, None)
            if method is not None:
                result: Awaitable[None] | None = method()
                return result
        return None

    return close


AGENTKIT = (agentkit_run, agentkit_run_async, agentkit_run_async_async_tool, agentkit_stream)
FLOORS = (
    floor_httpx,
    floor_httpx_thread,
    floor_httpx_async,
    floor_httpx_async_thread,
    floor_httpx_sse,
)
ALL = (*FLOORS, *PEERS, *AGENTKIT)

OWN_FLOOR = {
    agentkit_run: floor_httpx,
    agentkit_run_async: floor_httpx_async,
    agentkit_stream: floor_httpx_sse,
}
"""The floor doing the same I/O as each agentkit driver (sync, async, streamed)."""

ALSO_AGAINST = {
    agentkit_run: floor_httpx_thread,
    agentkit_run_async: floor_httpx_async_thread,
    agentkit_run_async_async_tool: floor_httpx_async,
}
"""Comparisons shown beside the targets, held to none: ``run`` and ``run_async`` against
a loop that also hands its sync tool to a thread, and ``run_async`` with the tool written
``async def``."""
