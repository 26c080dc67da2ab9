"""Many conversations at once on one event loop: ``asyncio.gather`` over ``run_async``.

One agent serves them all: its connection pool is shared, the model calls and tool calls
of every conversation overlap, and the wall time is close to the slowest conversation
rather than the sum of them all.

    export DASHSCOPE_API_KEY=sk-...
    python examples/many_conversations.py             # one conversation per city below
    python examples/many_conversations.py --count 50
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from agentkit import Agent, AgentKitError
from agentkit.tools import get_current_time

CITIES = ["Tokyo", "Paris", "New York", "Singapore", "Nairobi", "Sydney", "Lima", "Reykjavik"]


async def converse(agent: Agent[str], question: str) -> tuple[str, float]:
    """One conversation: its answer and how long it took."""
    started = time.perf_counter()
    result = await agent.run_async(question)
    return result.output, time.perf_counter() - started


async def converse_all(questions: list[str], model: str, base_url: str | None) -> None:
    """Every conversation at once on this event loop, then a report."""
    started = time.perf_counter()
    async with Agent(
        model, [get_current_time], "Answer in one sentence.", base_url=base_url
    ) as agent:
        finished = await asyncio.gather(*(converse(agent, q) for q in questions))
    wall = time.perf_counter() - started

    for question, (answer, seconds) in zip(questions, finished, strict=True):
        print(f"{seconds:5.2f} s  {question}  ->  {answer}")
    one_by_one = sum(seconds for _, seconds in finished)
    print(
        f"\n{len(questions)} conversations in {wall:.2f} s on one event loop "
        f"({one_by_one:.2f} s one after another)."
    )


def main(argv: list[str] | None = None) -> None:
    """Ask the time in many cities at once and report the wall time."""
    parser = argparse.ArgumentParser(description="Many agent runs at once on one event loop.")
    parser.add_argument("--count", type=int, default=len(CITIES), help="how many conversations")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        help="any OpenAI-compatible server, such as http://localhost:8000/v1 "
        "(default: $AGENTKIT_BASE_URL, else DashScope with $DASHSCOPE_API_KEY)",
    )
    args = parser.parse_args(argv)

    questions = [f"What time is it in {CITIES[i % len(CITIES)]}?" for i in range(args.count)]
    asyncio.run(converse_all(questions, args.model, args.base_url))


if __name__ == "__main__":
    try:
        main()
    except AgentKitError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
