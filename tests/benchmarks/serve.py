"""``python -m tests.benchmarks.serve``: what serving a bot costs, and what one process serves.

Three processes on loopback: the scripted model (``python -m agentkit.testing``, a two-round
model: one tool call, then the answer), ``agentkit serve bot.py:desk`` in front of it, and
this process as the client. Figures:

- **overhead**: one two-round conversation through the served endpoint (whole and
  streamed) against the same conversation with ``await agent.run_async(...)`` in this
  process, interleaved; median and minimum;
- **throughput**: 100 concurrent clients, each asking one question after another, for
  ``--requests`` in all: requests per second and p50/p99 latency, for 1 and 2 workers;
- **memory**: the server's resident memory at rest (after one request), and after 1,000
  stored conversations when the agent has a store (``--store``: one SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from agentkit import Agent, tool

_BOT = textwrap.dedent(
    '''
    import os
    from agentkit import Agent, tool

    @tool
    def get_order(order_id: int) -> str:
        """Look an order up."""
        return f"order {order_id}: shipped"

    options = {}
    if os.environ.get("BENCH_STORE"):
        from agentkit.sessions import SQLiteStore

        options["store"] = SQLiteStore(os.environ["BENCH_STORE"])
    desk = Agent("scripted", [get_order], "You run the order desk.",
                 base_url=os.environ["BENCH_MODEL_URL"], api_key="bench", **options)
    '''
)


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@contextmanager
def _model() -> Iterator[str]:
    command = [sys.executable, "-m", "agentkit.testing", "--model", "tool-then-answer"]
    command += ["--tool", "get_order", "--arguments", '{"order_id": 1042}', "--text", "Shipped."]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()
        finally:
            process.terminate()


@contextmanager
def _served(model_url: str, workers: int, store: str | None) -> Iterator[tuple[str, int]]:
    folder = Path(tempfile.mkdtemp(prefix="agentkit-bench-serve-"))
    (folder / "bot.py").write_text(_BOT)
    env = {**os.environ, "BENCH_MODEL_URL": model_url}
    if store:
        env["BENCH_STORE"] = store
    command = [sys.executable, "-m", "agentkit.cli", "serve", f"{folder / 'bot.py'}:desk"]
    command += ["--port", "0", "--workers", str(workers)]  # it binds, and names the port
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            found = None
            for line in process.stderr:  # ends at EOF if the server exits first
                found = re.search(r"serving .* on (http://\S+?)/v1 ", line)
                if found:
                    break
            assert found, "agentkit serve exited before serving"
            url = found.group(1)
            # the rest of stderr is drained so a worker never blocks on a full pipe
            threading.Thread(target=process.stderr.read, daemon=True).start()
            # the socket listens already: this waits in its backlog until a worker accepts
            assert httpx.get(url + "/healthz", timeout=120).status_code == 200
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(10)


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), in KiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


BODY = {"model": "desk", "messages": [{"role": "user", "content": "Where is order 1042?"}]}


async def _overhead(model_url: str, url: str, samples: int) -> dict[str, list[float]]:
    agent = Agent(
        "scripted", [get_order], "You run the order desk.", base_url=model_url, api_key="bench"
    )
    times: dict[str, list[float]] = {"run_async": [], "served": [], "served, streamed": []}
    async with httpx.AsyncClient(timeout=30) as client:

        async def direct() -> None:
            result = await agent.run_async("Where is order 1042?")
            assert result.output == "Shipped."

        async def whole() -> None:
            response = await client.post(url + "/v1/chat/completions", json=BODY)
            assert response.json()["choices"][0]["message"]["content"] == "Shipped."

        async def streamed() -> None:
            response = await client.post(
                url + "/v1/chat/completions", json={**BODY, "stream": True}
            )
            assert response.text.endswith("data: [DONE]\n\n")

        cases = {"run_async": direct, "served": whole, "served, streamed": streamed}
        for _ in range(5):  # warm up
            for case in cases.values():
                await case()
        for _ in range(samples):
            for name, case in cases.items():
                started = time.perf_counter()
                await case()
                times[name].append(time.perf_counter() - started)
    await agent.aclose()
    return times


async def _throughput(url: str, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        remaining = total

        async def one_client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(url + "/v1/chat/completions", json=BODY)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return total / wall, latencies


async def _conversations(url: str, count: int, clients: int) -> int:
    """``count`` new stored conversations, ``clients`` at a time; how many failed."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue = list(range(count))
        failed = 0

        async def one_client() -> None:
            nonlocal failed
            while queue:
                number = queue.pop()
                named = {"X-Agentkit-Conversation": f"customer-{number}"}
                try:
                    response = await client.post(
                        url + "/v1/chat/completions", json=BODY, headers=named
                    )
                except httpx.TransportError:
                    failed += 1
                    continue
                failed += response.status_code != 200

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return failed


async def _direct_throughput(model_url: str, total: int, clients: int) -> tuple[float, list[float]]:
    """The same load with ``run_async`` in this process: the floor the served figures sit on."""
    agent = Agent(
        "scripted", [get_order], "You run the order desk.", base_url=model_url, api_key="bench"
    )
    latencies: list[float] = []
    remaining = total

    async def one_client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await agent.run_async("Where is order 1042?")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall = time.perf_counter() - started
    await agent.aclose()
    return total / wall, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    """Run the three sections and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=100, help="overhead samples per case")
    parser.add_argument("--requests", type=int, default=2000, help="throughput requests")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients")
    parser.add_argument("--store", action="store_true", help="also 1,000 stored conversations")
    args = parser.parse_args(argv)

    with _model() as model_url:
        with _served(model_url, 1, None) as (url, _):
            times = asyncio.run(_overhead(model_url, url, args.samples))
        base = statistics.median(times["run_async"])
        print("| two-round conversation | median, ms | min, ms | overhead (median), ms |")
        print("|---|---|---|---|")
        for name, values in times.items():
            middle = statistics.median(values)
            print(
                f"| {name} | {middle * 1e3:.2f} | {min(values) * 1e3:.2f} | "
                f"{(middle - base) * 1e3:+.2f} |"
            )
        print()
        print(f"| {args.clients} concurrent clients | requests/s | p50, ms | p99, ms |")
        print("|---|---|---|---|")
        asyncio.run(_direct_throughput(model_url, 200, args.clients))  # warm up
        rate, latencies = asyncio.run(_direct_throughput(model_url, args.requests, args.clients))
        print(
            f"| run_async in the client's process | {rate:.0f} | "
            f"{_pct(latencies, 0.5) * 1e3:.0f} | {_pct(latencies, 0.99) * 1e3:.0f} |"
        )
        for workers in (1, 2):
            with _served(model_url, workers, None) as (url, _):
                asyncio.run(_throughput(url, 200, args.clients))  # warm up
                rate, latencies = asyncio.run(_throughput(url, args.requests, args.clients))
            print(
                f"| served, {workers} worker{'s' if workers > 1 else ''} | {rate:.0f} | "
                f"{_pct(latencies, 0.5) * 1e3:.0f} | "
                f"{_pct(latencies, 0.99) * 1e3:.0f} |"
            )
        print()
        print("| server memory (1 worker) | RSS, MiB |")
        print("|---|---|")
        store = None
        if args.store:
            store = str(Path(tempfile.mkdtemp(prefix="agentkit-bench-store-")) / "desk.db")
        with _served(model_url, 1, store) as (url, pid):
            asyncio.run(_throughput(url, 1, 1))
            print(f"| at rest, after one request | {_rss_kib(pid) / 1024:.1f} |")
            asyncio.run(_throughput(url, args.requests, args.clients))
            print(f"| after {args.requests} stateless requests | {_rss_kib(pid) / 1024:.1f} |")
            if store:
                failed = asyncio.run(_conversations(url, 1000, args.clients))
                note = f" ({failed} failed)" if failed else ""
                print(f"| after 1,000 stored conversations{note} | {_rss_kib(pid) / 1024:.1f} |")


if __name__ == "__main__":
    main()
