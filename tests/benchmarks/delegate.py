"""What an agent used as a tool costs, against the same work done by hand.

    python -m tests.benchmarks.delegate --runs 200      # median ms per run, per driver

A planner calls a specialist once (one tool round), then answers: three model calls to the
scripted server per run. ``as_tool`` runs the specialist with ``flights.as_tool()``; "by
hand" with a ``@tool`` that runs ``flights`` with the same driver as the planner
(``flights.run``, ``flights.stream``, ``run_async``, ``stream_async``). Both are measured
in turns, interleaved, and the medians compared. Measured, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from agentkit import Agent, RunFinished, Tool, tool
from agentkit.testing import RecordedRequest, Reply, ScriptedServer


def _handler(request: RecordedRequest) -> Reply:
    body = request.json()
    if body["model"] == "flights":
        return Reply.text("SAS at 9:00.")
    if body["messages"][-1]["role"] == "tool":
        return Reply.text("Book the 9:00.")
    return Reply.tool_calls(("flights", {"request": "a flight to Oslo"}))


def _agents(url: str) -> dict[str, Agent[Any]]:
    """The planner with ``as_tool``, and by hand for each driver (``stream``: the tool
    streams the specialist's run too, as the agent tool does, and keeps its answer)."""
    options: dict[str, Any] = {"base_url": url, "api_key": "sk-bench-0123456789"}
    flights = Agent("flights", [], "You find flights.", name="flights", **options)

    @tool(name="flights")
    def by_hand(request: str) -> str:
        """Find flights."""
        return str(flights.run(request).output)

    @tool(name="flights")
    def by_hand_streamed(request: str) -> str:
        """Find flights."""
        last = list(flights.stream(request))[-1]
        assert isinstance(last, RunFinished)
        return str(last.result.output)

    @tool(name="flights")
    async def by_hand_async(request: str) -> str:
        """Find flights."""
        return str((await flights.run_async(request)).output)

    @tool(name="flights")
    async def by_hand_streamed_async(request: str) -> str:
        """Find flights."""
        last = [event async for event in flights.stream_async(request)][-1]
        assert isinstance(last, RunFinished)
        return str(last.result.output)

    hand: dict[str, Tool[..., Any]] = {
        "run": by_hand,
        "stream": by_hand_streamed,
        "run_async": by_hand_async,
        "stream_async": by_hand_streamed_async,
    }
    agents = {name: Agent("planner", [fn], **options) for name, fn in hand.items()}
    agents["as_tool"] = Agent("planner", [flights.as_tool(description="Find flights.")], **options)
    return agents


async def _timed(agent: Agent[Any], driver: str) -> float:
    """One run's wall time in seconds (the sync drivers block the benchmark's loop)."""
    started = time.perf_counter()
    if driver == "run":
        output = agent.run("Plan Oslo").output
    elif driver == "run_async":
        output = (await agent.run_async("Plan Oslo")).output
    else:
        if driver == "stream":
            events = list(agent.stream("Plan Oslo"))
        else:
            events = [event async for event in agent.stream_async("Plan Oslo")]
        assert isinstance(events[-1], RunFinished)
        output = events[-1].result.output
    assert output == "Book the 9:00."
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    with ScriptedServer() as server:
        server.respond_with(_handler)
        agents = _agents(server.base_url)

        async def measure() -> None:
            for driver in ("run", "stream", "run_async", "stream_async"):
                times: dict[str, list[float]] = {"as_tool": [], "by hand": []}
                for _ in range(runs):
                    times["as_tool"].append(await _timed(agents["as_tool"], driver))
                    times["by hand"].append(await _timed(agents[driver], driver))
                _report(driver, times)

        asyncio.run(measure())


def _report(driver: str, times: dict[str, list[float]]) -> None:
    delegated = statistics.median(times["as_tool"]) * 1000
    hand = statistics.median(times["by hand"]) * 1000
    print(
        f"{driver:12} as_tool {delegated:7.3f} ms   by hand {hand:7.3f} ms   "
        f"difference {delegated - hand:+.3f} ms per call"
    )


if __name__ == "__main__":
    main()
