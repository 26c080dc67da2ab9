"""``python -m tests.benchmarks.mcp``: what one MCP tool call costs next to a ``@tool``.

The same function, ``add(a, b)``, three ways: a ``@tool`` in the process, and the same
``@tool`` served by ``agentkit mcp serve`` in a child process, reached over stdio
(``MCPStdio``) and over streamable HTTP on 127.0.0.1 (``MCPHttp``). Two figures each:

- one call as the agent makes it (validate the arguments, call, get the text back), timed
  back to back on one event loop, median of the samples;
- a whole two-round ``Agent.run`` against a scripted model on loopback (question, one tool
  call, answer), so the difference is the overhead a user sees per call.

Then the import time of ``from agentkit import Agent, tool`` with the ``mcp`` extra
installed, and which of the extra's modules it loaded (it must load none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentkit import Agent, Tool, tool
from agentkit.mcp import MCPHttp, MCPStdio
from agentkit.testing import Reply, ScriptedServer

_TOOLS = textwrap.dedent(
    '''
    from agentkit import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b
    '''
)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _serve_command(path: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentkit.cli", "mcp", "serve", path, *extra]


async def _time_calls(calls: list[Callable[[], Awaitable[Any]]], samples: int) -> list[list[float]]:
    """Samples of each call, interleaved (one of each per round), after a warm-up."""
    for _ in range(max(5, samples // 10)):
        for call in calls:
            await call()
    out: list[list[float]] = [[] for _ in calls]
    for _ in range(samples):
        for index, call in enumerate(calls):
            start = time.perf_counter()
            await call()
            out[index].append(time.perf_counter() - start)
    return out


def _one_call(item: Tool[..., Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        kwargs = item.validate_json('{"a": 2, "b": 3}')
        value = item.call(kwargs)
        return await value if item.is_async else value

    return call


def _runs(entries: list[Any], samples: int) -> list[list[float]]:
    """Two-round runs with each tool entry, interleaved, after a warm-up."""
    out: list[list[float]] = [[] for _ in entries]
    with contextlib.ExitStack() as stack:
        pairs = []
        for entry in entries:
            model = stack.enter_context(ScriptedServer())
            agent = Agent("qwen-plus", [entry], base_url=model.base_url, api_key="sk-bench-00000")
            pairs.append((model, stack.enter_context(agent)))
        for index in range(samples + 5):
            for position, (model, agent) in enumerate(pairs):
                model.queue(Reply.tool_calls(("add", {"a": 2, "b": index})), Reply.text("ok"))
                start = time.perf_counter()
                agent.run("add")
                if index >= 5:
                    out[position].append(time.perf_counter() - start)
    return out


def _import_probe() -> tuple[float, list[str]]:
    code = (
        "import sys, time; t = time.perf_counter(); from agentkit import Agent, tool; "
        "t = time.perf_counter() - t; "
        "extra = sorted(m for m in ('mcp', 'mcp_types', 'starlette', 'uvicorn', 'anyio', "
        "'httpx2', 'sse_starlette') if m in sys.modules); print(t, ','.join(extra))"
    )
    times = []
    loaded: list[str] = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split(" ", 1)
        times.append(float(out[0]))
        loaded = [m for m in out[1].strip().split(",") if m]
    return statistics.median(times), loaded


def main() -> None:
    """Measure and print the Markdown tables."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.mcp")
    parser.add_argument("--samples", type=int, default=200, help="calls timed per row")
    parser.add_argument("--runs", type=int, default=40, help="agent runs timed per row")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench_tools.py")
        Path(path).write_text(_TOOLS)
        http = subprocess.Popen(
            _serve_command(path, "--http", "--port", "0"),  # any port; the line names it
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert http.stderr is not None
            said = http.stderr.readline()  # "serving ... at http://HOST:PORT/mcp ..."
            found = re.search(r" at (http://\S+) ", said)
            assert found, f"agentkit mcp serve did not start: {said}"
            stdio = MCPStdio(sys.executable, _serve_command(path)[1:])
            remote = MCPHttp(found.group(1))
            contenders: list[tuple[str, Any, Tool[..., Any]]] = [("@tool", add, add)]
            for label, source in (("MCP over stdio", stdio), ("MCP over HTTP", remote)):
                contenders.append((label, source, source.tools()[0]))

            calls = [_one_call(item) for _, _, item in contenders]
            call_samples = asyncio.run(_time_calls(calls, options.samples))
            run_samples = _runs([entry for _, entry, _ in contenders], options.runs)
            stdio.close()
            remote.close()
        finally:
            http.terminate()
            http.wait(10)

    base_call = statistics.median(call_samples[0])
    base_run = statistics.median(run_samples[0])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians, interleaved\n")
    print(
        "| the same `add` as | one call, median (min), ms | overhead per call, ms "
        "| two-round `Agent.run`, ms (difference) |"
    )
    print("|---|---|---|---|")
    for index, (label, _, _) in enumerate(contenders):
        one = statistics.median(call_samples[index])
        fastest = min(call_samples[index])
        run = statistics.median(run_samples[index])
        print(
            f"| {label} | {one * 1000:.3f} ({fastest * 1000:.3f}) | "
            f"{(one - base_call) * 1000:+.3f} | {run * 1000:.2f} ({(run - base_run) * 1000:+.2f}) |"
        )
    seconds, loaded = _import_probe()
    print(
        f"\n`from agentkit import Agent, tool` with the mcp extra installed: "
        f"{seconds * 1000:.1f} ms (median of 5 fresh interpreters); modules of the extra "
        f"loaded: {', '.join(loaded) or 'none'}"
    )


if __name__ == "__main__":
    main()
