"""Profile agentkit's hot path: many two-round runs against the scripted server.

``python -m tests.benchmarks.profile [--driver run|run_async|stream] [--runs N]``

Prints two views of the same workload:

1. pyinstrument's call tree (wall-clock samples, so time spent waiting for a worker thread
   or the socket shows up), when pyinstrument is installed;
2. cProfile's table of agentkit's own functions: own and cumulative microseconds per run,
   calls per run, ``file:line``. cProfile slows Python code several times over, so read
   the table for proportions, not absolute cost.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import pstats

from . import contenders
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


def main(argv: list[str] | None = None) -> None:
    """Profile one agentkit driver and print both views."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.profile")
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="run")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
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
