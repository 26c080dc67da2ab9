"""``python -m tests.benchmarks.threads``: the hand-off of one sync tool call to a thread and
back, agentkit's own threads against ``ThreadPoolExecutor`` and ``asyncio.to_thread``.

This is the cost a tool round pays on top of the tool itself; it decides whether the
hand-written pool (``agentkit._threads``) earns its lines (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentkit import tool
from agentkit._calls import PlannedCall
from agentkit._threads import AsyncBatch, SyncBatch, ToolThreads


@tool
def ping() -> str:
    """Answer at once."""
    return "pong"


CALL = PlannedCall(0, "c0", "ping", "{}", ping, {}, timeout=120.0)
ROUNDS = 3000


def _per_call_us(run: Callable[[], Any], rounds: int = ROUNDS) -> float:
    for _ in range(200):
        run()
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(rounds):
            run()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> None:
    threads = ToolThreads(16)
    executor = ThreadPoolExecutor(16)

    def own() -> None:
        batch = SyncBatch(threads, [CALL])
        batch.start()
        batch.next(None, None)
        batch.close()

    def pool() -> None:
        future = executor.submit(CALL.invoke)
        future.result(timeout=120.0)

    rows = {
        "run: agentkit threads": _per_call_us(own),
        "run: ThreadPoolExecutor": _per_call_us(pool),
    }

    runner = asyncio.Runner()
    loop = runner.get_loop()
    loop.set_default_executor(ThreadPoolExecutor(16))

    async def own_async(rounds: int) -> None:
        for _ in range(rounds):
            batch = AsyncBatch(lambda: threads, [CALL], 16)
            batch.start()
            await batch.next()
            await batch.close()

    async def to_thread(rounds: int) -> None:
        for _ in range(rounds):
            await asyncio.wait_for(asyncio.to_thread(CALL.invoke), 120.0)

    for name, body in (
        ("run_async: agentkit threads", own_async),
        ("run_async: to_thread", to_thread),
    ):
        runner.run(body(200))
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            runner.run(body(ROUNDS))
            samples.append((time.perf_counter() - start) / ROUNDS * 1e6)
        rows[name] = statistics.median(samples)
    runner.close()
    threads.close()
    executor.shutdown()
    print("| hand-off of one sync call | us per call |")
    print("|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
