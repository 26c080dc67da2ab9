"""Shared helpers of the reliability suite: agents wired to a scripted server, the four
drivers behind one call, time bounds, and the wire-format check of a transcript.

Every agent here talks HTTP over loopback to ``agentkit.testing.ScriptedServer``; retries
use a tiny backoff so a burst of faults costs milliseconds, not seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import httpx
import pytest
from _helpers import assert_resendable

from agentkit import (
    Agent,
    AgentKitError,
    AsyncChatClient,
    ChatClient,
    RunResult,
    tool,
)

KEY = "sk-test-SECRET-1234567890"
"""A distinctive fake API key: it must never show up in an error, a repr, a log or output."""
MODEL = "qwen-plus"
INSTRUCTIONS = "You answer questions about the weather."
PROMPT = "What is the weather in Paris?"

Driver = Literal["run", "stream", "run_async", "stream_async"]
DRIVERS: tuple[Driver, ...] = ("run", "stream", "run_async", "stream_async")
STREAMING: tuple[Driver, ...] = ("stream", "stream_async")

# A fast backoff: retries are counted by the server, not waited for.
FAST_RETRY: dict[str, Any] = {"max_retries": 2, "retry_base_delay": 0.01, "retry_max_delay": 0.05}
# A bound on a hang, for tests that set no timeouts of their own: a loaded machine can take
# seconds to schedule the scripted server's thread, and a timeout there is retried and
# counted as a request the test did not script.
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


# --- tools the scripted model calls -------------------------------------------------------

weather_calls: list[dict[str, Any]] = []
"""Every call that reached ``get_weather``'s body, with its arguments."""
_weather_lock = threading.Lock()


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Get the weather forecast for a city.

    Args:
        city: The city, for example Paris.
        days: How many days ahead, 1 to 7.
    """
    with _weather_lock:
        weather_calls.append({"city": city, "days": days})
    return f"sunny in {city} for {days} day(s)"


SUNNY_PARIS = "sunny in Paris for 1 day(s)"


# --- building and driving agents ----------------------------------------------------------


def client_options(**overrides: Any) -> dict[str, Any]:
    """``FAST_RETRY`` with some options changed or added (any ``ChatClient`` argument).

    Timeouts given here (``read_timeout``, ``connect_timeout``, ``timeout``) are agentkit's
    own: the client then builds its own httpx pool, as a user's would.
    """
    return {**FAST_RETRY, **overrides}


def _own_timeouts(options: dict[str, Any]) -> bool:
    return any(name in options for name in ("read_timeout", "connect_timeout", "timeout"))


@contextlib.contextmanager
def sync_agent(
    base_url: str,
    tools: Sequence[Any] = (get_weather,),
    *,
    client: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Agent[Any]]:
    """An agent on a ``ChatClient`` of its own; both are closed on leaving the block.

    Unless ``client`` sets timeouts, the client runs on an httpx pool made here without TLS
    set-up (loading the CA bundle costs ~80 ms per client, which hundreds of tests pay
    for nothing on plain-HTTP loopback).
    """
    opts = dict(client or FAST_RETRY)
    with contextlib.ExitStack() as stack:
        if not _own_timeouts(opts):
            opts["http_client"] = stack.enter_context(httpx.Client(verify=False, timeout=_TIMEOUT))
        chat = stack.enter_context(ChatClient(base_url, KEY, **opts))
        agent = stack.enter_context(Agent(MODEL, tools, INSTRUCTIONS, client=chat, **options))
        yield agent


@contextlib.asynccontextmanager
async def async_agent(
    base_url: str,
    tools: Sequence[Any] = (get_weather,),
    *,
    client: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Agent[Any]]:
    """An agent on an ``AsyncChatClient`` of its own; both closed on leaving the block."""
    opts = dict(client or FAST_RETRY)
    async with contextlib.AsyncExitStack() as stack:
        if not _own_timeouts(opts):
            http = httpx.AsyncClient(verify=False, timeout=_TIMEOUT)
            opts["http_client"] = await stack.enter_async_context(http)
        chat = await stack.enter_async_context(AsyncChatClient(base_url, KEY, **opts))
        agent = Agent(MODEL, tools, INSTRUCTIONS, client=chat, **options)
        yield await stack.enter_async_context(agent)


def consume(events: Iterator[Any]) -> RunResult[Any]:
    """The result at the end of a sync event stream (the last event's ``.result``)."""
    seen = list(events)
    last = seen[-1] if seen else None
    assert last is not None and hasattr(last, "result"), f"the stream ended with {last!r}"
    return last.result  # type: ignore[no-any-return]


async def consume_async(events: Any) -> RunResult[Any]:
    """The result at the end of an async event stream."""
    async with contextlib.aclosing(events) as stream:
        seen = [event async for event in stream]
    last = seen[-1] if seen else None
    assert last is not None and hasattr(last, "result"), f"the stream ended with {last!r}"
    return last.result  # type: ignore[no-any-return]


def run_with(
    driver: Driver,
    base_url: str,
    prompt: Any = PROMPT,
    tools: Sequence[Any] = (get_weather,),
    *,
    client: dict[str, Any] | None = None,
    **options: Any,
) -> RunResult[Any]:
    """One run through ``driver`` with a fresh agent and client, both closed afterwards.

    ``run`` and ``run_async`` send plain requests; ``stream`` and ``stream_async`` stream
    every round. Returns the result or lets the run's exception through.
    """
    if driver in ("run", "stream"):
        with sync_agent(base_url, tools, client=client, **options) as agent:
            if driver == "run":
                return agent.run(prompt)
            return consume(agent.stream(prompt))

    async def main() -> RunResult[Any]:
        async with async_agent(base_url, tools, client=client, **options) as agent:
            if driver == "run_async":
                return await agent.run_async(prompt)
            return await consume_async(agent.stream_async(prompt))

    return asyncio.run(main())


def run_expecting(
    error_type: type[AgentKitError],
    driver: Driver,
    base_url: str,
    prompt: Any = PROMPT,
    tools: Sequence[Any] = (get_weather,),
    **options: Any,
) -> AgentKitError:
    """Run and return the error, which must be ``error_type`` (a subclass is fine)."""
    with pytest.raises(error_type) as caught:
        run_with(driver, base_url, prompt, tools, **options)
    return caught.value


def refused_url() -> str:
    """A base URL on loopback where nothing listens (the connection is refused); its port
    stays bound by this process (``_helpers.refused_port``)."""
    from _helpers import refused_port

    return f"http://127.0.0.1:{refused_port()}/v1"


# --- what a transcript must be ------------------------------------------------------------


def assert_carries_transcript(error: BaseException, *, prompt: str = PROMPT) -> list[Any]:
    """The error escaped a run with the transcript so far: instructions, the prompt,
    everything after it, in resendable wire format. Returns the transcript."""
    messages = getattr(error, "messages", None)
    assert messages is not None, f"{type(error).__name__} carries no transcript"
    assert_resendable(messages)
    assert messages[0] == {"role": "system", "content": INSTRUCTIONS}
    assert {"role": "user", "content": prompt} in messages
    return list(messages)


def tool_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a transcript."""
    return [m for m in messages if m.get("role") == "tool"]
