"""Parallel tools: one round asks for 8 calls of a 100 ms tool; the whole run is timed.

Run one after the other, the calls would take 800 ms; run together, the run takes one
tool's 100 ms plus two model round trips. The target is 150 ms for sync tools (worker
threads) and async tools (tasks), from both drivers.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from . import scripted
from .contenders import API_KEY, Skip

TARGET_MS = 150.0


def _agent(base_url: str, *, async_tool: bool) -> Any:
    try:
        from agentkit import Agent, tool
    except ImportError as error:
        raise Skip(f"agentkit.Agent is not available yet ({error})") from error

    weather: Any
    if async_tool:

        @tool(name=scripted.TOOL_NAME)
        async def get_weather_async(city: str) -> str:
            """Get the current weather for a city (takes 100 ms).

            Args:
                city: The city name, for example Paris.
            """
            await asyncio.sleep(scripted.TOOL_SECONDS)
            return scripted.get_weather(city)

        weather = get_weather_async
    else:

        @tool(name=scripted.TOOL_NAME)
        def get_weather_sync(city: str) -> str:
            """Get the current weather for a city (takes 100 ms).

            Args:
                city: The city name, for example Paris.
            """
            time.sleep(scripted.TOOL_SECONDS)
            return scripted.get_weather(city)

        weather = get_weather_sync
    return Agent(scripted.PARALLEL_MODEL, tools=[weather], base_url=base_url, api_key=API_KEY)


CASES: tuple[tuple[str, bool, bool], ...] = (
    # label, async driver, async tool
    ("agentkit run, sync tool", False, False),
    ("agentkit run, async tool", False, True),
    ("agentkit run_async, sync tool", True, False),
    ("agentkit run_async, async tool", True, True),
)


def _run_async(loop: asyncio.Runner, agent: Any) -> Any:
    return loop.run(agent.run_async(scripted.QUESTION))


def measure(base_url: str, loop: asyncio.Runner, repeats: int) -> dict[str, list[float]]:
    """Per case, ``repeats`` wall times (ms) of the whole 8-call run, interleaved."""
    runners: dict[str, Callable[[], Any]] = {}
    for label, async_driver, async_tool in CASES:
        agent = _agent(base_url, async_tool=async_tool)
        if async_driver:
            runners[label] = functools.partial(_run_async, loop, agent)
        else:
            runners[label] = functools.partial(agent.run, scripted.QUESTION)
    for label, run in runners.items():  # warm up and check the conversation
        result = run()
        assert result.output == scripted.ANSWER, f"{label}: answered {result.output!r}"
        tool_messages = [m for m in result.messages if m.get("role") == "tool"]
        assert len(tool_messages) == scripted.PARALLEL_CALLS, f"{label}: {len(tool_messages)}"
    samples: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(repeats):
        for label, run in runners.items():
            start = time.perf_counter_ns()
            run()
            samples[label].append((time.perf_counter_ns() - start) / 1e6)
    return samples
