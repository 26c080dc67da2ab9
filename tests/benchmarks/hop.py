"""``python -m tests.benchmarks.hop [--rounds N]``: what handing the tool to a thread costs a
two-round run on loopback, by the primitive that wakes the threads.

The floor's ``httpx.Client`` loop against the scripted server (in its child process, as in
the run section), with the tool called in place and then handed to a kept worker thread in
several ways. Interleaved in a random order each round, 5 runs per contender per round; the
ratio is the median over rounds of each round's ratio to the in-place loop.

The pinned variants set the worker's CPU affinity to the CPU the caller runs on before each
hand-off (Linux only; skipped elsewhere): the worker then wakes on the caller's CPU, which
its scheduler switches to when the caller sleeps, instead of on an idle one. They are here
because they are what a cheaper hop would take; agentkit does not pin its threads
(docs/decisions.md, "Tool threads are not pinned").
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from . import scripted
from .contenders import API_KEY
from .server import ServerProcess

Tool = Callable[..., str]
Hop = Callable[[Tool, dict[str, Any]], str]


def in_place(fn: Tool, arguments: dict[str, Any]) -> str:
    """No hop: the floor."""
    return fn(**arguments)


class PoolHop:
    """``ThreadPoolExecutor(1).submit().result()``: the run section's floor with a hop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1)

    def __call__(self, fn: Tool, arguments: dict[str, Any]) -> str:
        return self._pool.submit(fn, **arguments).result()


class QueueHop:
    """One ``SimpleQueue`` put each way, as agentkit's tool threads hand a call over."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Tool, dict[str, Any]]] = queue.SimpleQueue()
        self._reports: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, arguments = self._jobs.get()
            self._reports.put(fn(**arguments))

    def __call__(self, fn: Tool, arguments: dict[str, Any]) -> str:
        self._jobs.put((fn, arguments))
        return self._reports.get(timeout=0.5)


class PipeHop:
    """A byte down a pipe each way: a pipe's wake-up tells the scheduler the writer is about
    to sleep. ``pin``: the worker is pinned to the caller's CPU before each hand-off;
    ``widen``: the worker takes its whole CPU set back before it runs the tool (what a tool
    that starts threads or processes would need)."""

    def __init__(self, *, pin: bool = False, widen: bool = False) -> None:
        self._to_worker = os.pipe()
        self._to_caller = os.pipe()
        self._job: tuple[Tool, dict[str, Any]] | None = None
        self._result = ""
        self._pin, self._widen = pin, widen
        self._everywhere = os.sched_getaffinity(0) if pin else set()
        self._getcpu: Callable[[], int] | None = (
            ctypes.CDLL(None).sched_getcpu if pin else None  # glibc; Linux only
        )
        started = threading.Event()
        self._worker = 0
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        self._worker = threading.get_native_id()
        started.set()
        while True:
            os.read(self._to_worker[0], 1)
            if self._widen:
                os.sched_setaffinity(0, self._everywhere)
            assert self._job is not None
            fn, arguments = self._job
            self._result = fn(**arguments)
            os.write(self._to_caller[1], b"x")

    def __call__(self, fn: Tool, arguments: dict[str, Any]) -> str:
        if self._getcpu is not None:
            os.sched_setaffinity(self._worker, {self._getcpu()})
        self._job = (fn, arguments)
        os.write(self._to_worker[1], b"x")
        os.read(self._to_caller[0], 1)
        return self._result


def floor_loop(base_url: str, hop: Hop) -> Callable[[], str]:
    """The run section's ``httpx.Client`` floor, its tool called through ``hop``."""
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        while True:
            response = client.post(
                "/chat/completions",
                json={"model": scripted.MODEL, "messages": messages, "tools": scripted.TOOLS},
            )
            message = response.json()["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                answer: str = message["content"]
                return answer
            for asked in message["tool_calls"]:
                content = hop(scripted.get_weather, json.loads(asked["function"]["arguments"]))
                messages.append({"role": "tool", "tool_call_id": asked["id"], "content": content})

    return run


def hops() -> dict[str, Hop]:
    """The hand-offs to compare, by name (the pinned ones only where they can run)."""
    found: dict[str, Hop] = {
        "tool in place (the floor)": in_place,
        "ThreadPoolExecutor": PoolHop(),
        "SimpleQueue each way (agentkit's)": QueueHop(),
        "pipe each way": PipeHop(),
    }
    if sys.platform == "linux":
        found["pipe, worker pinned to the caller's CPU"] = PipeHop(pin=True)
        found["pipe, pinned, widened before the tool"] = PipeHop(pin=True, widen=True)
    return found


def main() -> None:
    """Print each hop's run time and ratio to the in-place loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    with ServerProcess() as server:
        cases = {name: floor_loop(server.url, hop) for name, hop in hops().items()}
        for run in cases.values():
            for _ in range(50):  # warm up
                run()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases.items())
        for _ in range(rounds):
            random.shuffle(order)
            for name, run in order:
                start = time.perf_counter()
                for _ in range(5):
                    run()
                samples[name].append((time.perf_counter() - start) / 5)
    base = samples["tool in place (the floor)"]
    print(f"load average {os.getloadavg()[0]:.1f}; {rounds} rounds of 5 runs each")
    print(f"{'ms/run':>8} {'x floor':>8}  hand-off")
    for name, values in samples.items():
        ratio = statistics.median(a / b for a, b in zip(values, base, strict=True))
        print(f"{statistics.median(values) * 1e3:8.3f} {ratio:8.3f}  {name}")


if __name__ == "__main__":
    main()
