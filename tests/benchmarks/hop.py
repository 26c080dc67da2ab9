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
import asyncio
import ctypes
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .contenders import Hop, sync_floor
from .measure import call, interleaved_ms, median, paired_ratio
from .server import ServerProcess

Tool = Callable[..., str]


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


def hops() -> dict[str, Hop | None]:
    """The hand-offs to compare, by name (the pinned ones only where they can run)."""
    found: dict[str, Hop | None] = {
        "tool in place (the floor)": None,
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
    with ServerProcess() as server, asyncio.Runner() as loop:
        contenders = [sync_floor(server.url, name, hop) for name, hop in hops().items()]
        for contender in contenders:
            call(contender, loop, 50)  # warm up
        samples = interleaved_ms(contenders, loop, rounds=rounds, batch=5)
    base = samples["tool in place (the floor)"]
    print(f"load average {os.getloadavg()[0]:.1f}; {rounds} rounds of 5 runs each")
    print(f"{'ms/run':>8} {'x floor':>8}  hand-off")
    for name, values in samples.items():
        print(f"{median(values):8.3f} {paired_ratio(values, base):8.3f}  {name}")


if __name__ == "__main__":
    main()
