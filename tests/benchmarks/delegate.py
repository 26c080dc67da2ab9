"""What an agent used as a tool costs, against the same work done by hand.

    python -m tests.benchmarks.delegate --runs 200      # median ms per run, per driver

A planner calls a specialist once (one tool round), then answers: three model calls to the
scripted server per run. ``as_tool`` runs the specialist with ``flights.as_tool()``; "by
hand" with a ``@tool`` that calls ``flights.run(...)`` (``run_async`` in the async driver).
Both are measured in turns, interleaved, and the medians compared. Measured, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from agentkit import Agent, tool
from agentkit.testing import RecordedRequest, Reply, ScriptedServer


def _handler(request: RecordedRequest) -> Reply:
    body = request.json()
    if body["model"] == "flights":
        return Reply.text("SAS at 9:00.")
    if body["messages"][-1]["role"] == "tool":
        return Reply.text("Book the 9:00.")
    return Reply.tool_calls(("flights", {"request": "a flight to Oslo"}))


def _agents(url: str) -> tuple[Agent[Any], Agent[Any], Agent[Any]]:
    options: dict[str, Any] = {"base_url": url, "api_key": "sk-bench-0123456789"}
    flights = Agent("flights", [], "You find flights.", name="flights", **options)

    @tool(name="flights")
    def by_hand(request: str) -> str:
        """Find flights."""
        return str(flights.run(request).output)

    @tool(name="flights")
    async def by_hand_async(request: str) -> str:
        """Find flights."""
        return str((await flights.run_async(request)).output)

    delegated = Agent("planner", [flights.as_tool(description="Find flights.")], **options)
    hand = Agent("planner", [by_hand], **options)
    hand_async = Agent("planner", [by_hand_async], **options)
    return delegated, hand, hand_async


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    with ScriptedServer() as server:
        server.respond_with(_handler)
        delegated, hand, hand_async = _agents(server.base_url)

        def timed_sync(agent: Agent[Any]) -> float:
            started = time.perf_counter()
            assert agent.run("Plan Oslo").output == "Book the 9:00."
            return time.perf_counter() - started

        async def timed_async(agent: Agent[Any]) -> float:
            started = time.perf_counter()
            assert (await agent.run_async("Plan Oslo")).output == "Book the 9:00."
            return time.perf_counter() - started

        for name, pair in (("run", (delegated, hand)),):
            times: dict[str, list[float]] = {"as_tool": [], "by hand": []}
            for _ in range(runs):
                times["as_tool"].append(timed_sync(pair[0]))
                times["by hand"].append(timed_sync(pair[1]))
            _report(name, times)

        async def async_part() -> None:
            times: dict[str, list[float]] = {"as_tool": [], "by hand": []}
            for _ in range(runs):
                times["as_tool"].append(await timed_async(delegated))
                times["by hand"].append(await timed_async(hand_async))
            _report("run_async", times)

        asyncio.run(async_part())


def _report(driver: str, times: dict[str, list[float]]) -> None:
    delegated = statistics.median(times["as_tool"]) * 1000
    hand = statistics.median(times["by hand"]) * 1000
    print(
        f"{driver:9} as_tool {delegated:7.3f} ms   by hand {hand:7.3f} ms   "
        f"difference {delegated - hand:+.3f} ms per call"
    )


if __name__ == "__main__":
    main()
