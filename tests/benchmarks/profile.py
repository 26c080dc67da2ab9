"""Profile agentkit's hot path: many two-round runs against the scripted server.

``python -m tests.benchmarks.profile [--driver run|run_async|stream] [--runs N]``

Prints two views of the same workload:

1. pyinstrument's call tree (wall-clock samples, so time spent waiting for a worker thread
   or the socket shows up), when pyinstrument is installed;
2. cProfile's table of agentkit's own functions: own and cumulative microseconds per run,
   calls per run, ``file:line``. cProfile slows Python code several times over, so read
   the table for proportions, not absolute cost.

``python -m tests.benchmarks.profile --cpu [--rounds N]`` prints instead the CPU time of a
two-round run with the model in memory (:func:`cpu_table`): what each side computes, which
a loaded machine's scheduler moves far less than it moves wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import pstats
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from . import contenders, scripted
from .measure import call
from .server import REPO_ROOT, ServerProcess

DRIVERS = {
    "run": contenders.agentkit_run,
    "run_async": contenders.agentkit_run_async,
    "stream": contenders.agentkit_stream,
}


def agentkit_table(stats: pstats.Stats, runs: int, top: int) -> list[str]:
    """agentkit's functions by own time, as lines of text."""
    rows = []
    raw = stats.stats  # type: ignore[attr-defined]
    for (path, line, function), (_, calls, own, cumulative, _) in raw.items():
        if "/agentkit/" in path and "/agentkit/testing/" not in path:
            where = path.removeprefix(str(REPO_ROOT) + "/")
            rows.append((own, cumulative, calls, f"{where}:{line} {function}"))
    rows.sort(reverse=True)
    lines = [f"{'own us/run':>11} {'cum us/run':>11} {'calls/run':>9}  function"]
    for own, cumulative, calls, name in rows[:top]:
        lines.append(
            f"{own / runs * 1e6:11.1f} {cumulative / runs * 1e6:11.1f} {calls / runs:9.1f}  {name}"
        )
    total = sum(row[0] for row in rows)
    lines.append(f"{total / runs * 1e6:11.1f} {'':11} {'':9}  all agentkit functions, own time")
    return lines


def _in_memory(request: httpx.Request) -> httpx.Response:
    """The scripted model's answer, with no socket and no other process."""
    body = json.dumps(scripted.completion(json.loads(request.content))).encode()
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def cpu_table(rounds: int, batch: int = 20) -> list[str]:
    """CPU time (``time.process_time``: every thread, the tool's included) per two-round
    run against the model in memory (``httpx.MockTransport``): the floor's loop, agentkit's
    client making the run's two requests alone, and the whole ``Agent.run``. Interleaved in
    a random order; the minimum and the quartiles over ``rounds`` batches.

    The whole run less the client alone is what the run itself costs (the loop, the
    steps and the driver, the tool's thread, the result); the client less the floor is
    the request building and parsing. Time spent waiting (the loopback hop, a thread
    waking) is not CPU time, so it is not here: see the per-phase table in
    docs/performance.md.
    """
    from agentkit import Agent, ChatClient, tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city name, for example Paris.
        """
        return scripted.get_weather(city)

    def http() -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(_in_memory))

    url = "http://model.invalid/v1"
    client = ChatClient(url, contenders.API_KEY, http_client=http())
    agent = Agent(scripted.MODEL, tools=[get_weather], client=client)
    floor = httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {contenders.API_KEY}"},
        transport=httpx.MockTransport(_in_memory),
    )
    tools = agent.run(scripted.QUESTION)  # the exact two requests the run makes
    first, second = tools.messages[:1], tools.messages[:-1]
    tool_list = [t.to_openai() for t in agent.tools]

    def floor_run() -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        while True:
            answer = floor.post(
                "/chat/completions",
                json={"model": scripted.MODEL, "messages": messages, "tools": scripted.TOOLS},
            )
            message = answer.json()["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                return
            for asked in message["tool_calls"]:
                arguments = json.loads(asked["function"]["arguments"])
                content = scripted.get_weather(**arguments)
                messages.append({"role": "tool", "tool_call_id": asked["id"], "content": content})

    def client_alone() -> None:
        client.create(model=scripted.MODEL, messages=first, tools=tool_list)
        client.create(model=scripted.MODEL, messages=second, tools=tool_list)

    def whole_run() -> None:
        agent.run(scripted.QUESTION)

    cases: dict[str, Callable[[], None]] = {
        "floor: httpx.Client loop": floor_run,
        "agentkit's client alone (the run's two requests)": client_alone,
        "agentkit Agent.run": whole_run,
    }
    for case in cases.values():
        for _ in range(200):  # warm up
            case()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for _ in range(rounds):
        random.shuffle(order)
        for name, case in order:
            start = time.process_time()
            for _ in range(batch):
                case()
            samples[name].append((time.process_time() - start) / batch * 1e6)
    agent.close()
    client.close()
    floor.close()
    lines = [f"{'us CPU/run':>10} {'min':>7} {'25%':>7} {'75%':>7}  case"]
    for name, values in samples.items():
        low, _, high = statistics.quantiles(values, n=4)
        middle = statistics.median(values)
        lines.append(f"{middle:10.1f} {min(values):7.1f} {low:7.1f} {high:7.1f}  {name}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Profile one agentkit driver and print both views."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.profile")
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="run")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cpu", action="store_true", help="CPU per run, the model in memory")
    parser.add_argument("--rounds", type=int, default=150, help="batches of 20 runs (--cpu)")
    args = parser.parse_args(argv)
    if args.cpu:
        print(f"CPU per two-round run, model in memory, {args.rounds} batches of 20 runs:")
        print("\n".join(cpu_table(args.rounds)))
        return
    with ServerProcess() as server, asyncio.Runner() as loop:
        contender = DRIVERS[args.driver](server.url)
        call(contender, loop, 100)  # warm up
        if importlib.util.find_spec("pyinstrument") is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            call(contender, loop, args.runs)
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False))
        else:
            print("pyinstrument is not installed: only the cProfile table follows")
        profile = cProfile.Profile()
        profile.enable()
        call(contender, loop, args.runs)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"cProfile, agentkit {args.driver}, {args.runs} two-round runs:")
        print("\n".join(agentkit_table(stats, args.runs, args.top)))


if __name__ == "__main__":
    main()
