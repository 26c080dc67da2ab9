"""The local eval backend against a bare ``asyncio.gather`` of the same runs, and the Ray
backend's figure on this machine.

``python -m tests.benchmarks.evals`` runs 1,000 three-round scripted conversations (two tool
rounds and an answer, a fresh agent each) both ways, interleaved, and prints the median wall
times and their ratio; the target is at most 1.2x. ``--ray`` adds the Ray backend (a local
cluster of ``--ray-cpus`` CPUs, started before timing). It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from typing import Any

from agentkit import Agent, tool
from agentkit.evals import Scenario, Suite, called
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

TARGET = 1.2
SCENARIOS = 10


@tool
async def lookup(n: int) -> str:
    """Look something up.

    Args:
        n: Which thing.
    """
    return f"thing {n}"


def three_rounds(request: RecordedRequest) -> Reply:
    """Two tool rounds, then the answer."""
    rounds = sum(1 for m in request.messages if m.get("role") == "assistant")
    if rounds < 2:
        return Reply.tool_calls(("lookup", {"n": rounds + 1}))
    return Reply.text("Done.")


def make_bot(base_url: str) -> Agent[str]:
    """A fresh bot for one conversation."""
    return Agent("qwen-plus", tools=[lookup], base_url=base_url)


def _suite(base_url: str) -> Suite:
    return Suite(
        agent=functools.partial(make_bot, base_url),
        scenarios=[
            Scenario(f"question {i}", turns=[f"Question {i}?"], checks=[called("lookup", n=2)])
            for i in range(SCENARIOS)
        ],
    )


async def bare(base_url: str, conversations: int) -> float:
    """The same runs with nothing around them: ``asyncio.gather`` of ``run_async``."""

    async def one(i: int) -> Any:
        bot = make_bot(base_url)
        try:
            return await bot.run_async(f"Question {i % SCENARIOS}?")
        finally:
            await bot.aclose()

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(conversations)))
    elapsed = time.perf_counter() - started
    assert all(r.turns == 3 for r in results)
    return elapsed


async def local(base_url: str, conversations: int) -> float:
    """The local backend: ``k`` tries of each scenario, all at once."""
    suite = _suite(base_url)
    started = time.perf_counter()
    report = await suite.run_async(k=conversations // SCENARIOS, concurrency=conversations)
    elapsed = time.perf_counter() - started
    assert report.pass_hat(1) == 1.0 and len(report.attempts) == conversations
    return elapsed


def ray(base_url: str, conversations: int, cpus: int) -> float:
    """The Ray backend on a local cluster started before the clock."""
    import ray as ray_module

    from agentkit.evals import RayBackend

    ray_module.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        suite = _suite(base_url)
        backend = RayBackend(concurrency=conversations)
        suite.run(k=1, backend=backend)  # warm the workers
        started = time.perf_counter()
        report = suite.run(k=conversations // SCENARIOS, backend=backend)
        elapsed = time.perf_counter() - started
        assert report.pass_hat(1) == 1.0
        return elapsed
    finally:
        ray_module.shutdown()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="measure the Ray backend too")
    parser.add_argument("--ray-cpus", type=int, default=2)
    args = parser.parse_args()
    with ScriptedServer(handler=three_rounds) as server:
        asyncio.run(local(server.base_url, SCENARIOS))  # warm up imports and the server
        bare_times, local_times = [], []
        for _ in range(args.repeats):
            bare_times.append(asyncio.run(bare(server.base_url, args.conversations)))
            local_times.append(asyncio.run(local(server.base_url, args.conversations)))
        b, lo = statistics.median(bare_times), statistics.median(local_times)
        print(f"{args.conversations} three-round conversations, median of {args.repeats}:")
        print(f"  bare asyncio.gather   {b:7.2f} s")
        print(f"  local backend         {lo:7.2f} s   {lo / b:.2f}x (target <= {TARGET}x)")
        if args.ray:
            r = ray(server.base_url, args.conversations, args.ray_cpus)
            print(f"  ray backend ({args.ray_cpus} CPUs) {r:7.2f} s   {r / b:.2f}x")


if __name__ == "__main__":
    main()
