"""Scale: many two-round conversations at once on one event loop, in a child process.

``python -m tests.benchmarks.scale BASE_URL CONTENDER COUNT`` starts ``COUNT`` conversations
together (``asyncio.gather``) and prints one JSON object: wall time, errors, wrong answers,
the resident memory before the run and the process's peak (``VmHWM``). A child process
per measurement keeps the peak honest: nothing else has grown that interpreter.

The contenders: ``agentkit`` (``Agent.run_async``) and ``floor`` (a hand-written
``httpx.AsyncClient`` loop with httpx's default pool), for reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import scripted
from .contenders import API_KEY, MAX_TURNS
from .server import REPO_ROOT, ServerProcess

TARGET_MB = 150.0
CONTENDERS = ("floor", "agentkit")
LABELS = {"floor": "floor: httpx.AsyncClient loop", "agentkit": "agentkit Agent.run_async"}


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _floor(base_url: str) -> tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    async def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": scripted.QUESTION}]
        for _ in range(MAX_TURNS):
            response = await client.post(
                "/chat/completions",
                json={"model": scripted.MODEL, "messages": messages, "tools": scripted.TOOLS},
            )
            response.raise_for_status()
            message = response.json()["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                answer: str = message["content"]
                return answer
            for call in message["tool_calls"]:
                arguments = json.loads(call["function"]["arguments"])
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": scripted.get_weather(**arguments),
                    }
                )
        raise RuntimeError("no final answer")

    return run, client.aclose


def _agentkit(base_url: str) -> tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[None]]]:
    from .contenders import _agentkit_agent

    agent = _agentkit_agent(base_url)

    async def run() -> str:
        result = await agent.run_async(scripted.QUESTION)
        return str(result.output)

    async def close() -> None:
        closer = getattr(agent, "aclose", None)
        if closer is not None:
            await closer()

    return run, close


async def _main(base_url: str, contender: str, count: int) -> dict[str, Any]:
    run, close = (_agentkit if contender == "agentkit" else _floor)(base_url)
    await run()  # warm up: imports, first connection, first schema use
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    answers = await asyncio.gather(*(run() for _ in range(count)), return_exceptions=True)
    wall = time.perf_counter() - start
    await close()
    errors = [answer for answer in answers if isinstance(answer, BaseException)]
    return {
        "wall_s": wall,
        "errors": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "wrong_answers": sum(
            1 for a in answers if not isinstance(a, BaseException) and a != scripted.ANSWER
        ),
        "rss_before_mb": before,
        # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec.
        "peak_rss_mb": _status_mb("VmHWM"),
    }


def measure(server: ServerProcess, contender: str, count: int) -> dict[str, Any]:
    """Run ``count`` conversations of ``contender`` at once in a child process; its JSON
    report plus ``requests``, ``connections_opened`` and ``peak_open_connections`` as the
    server counted them."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    server.reset()
    process = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.scale", server.url, contender, str(count)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    if process.returncode != 0:
        lines = process.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"scale run of {contender} failed: {lines[-1]}")
    report: dict[str, Any] = json.loads(process.stdout)
    report.update(server.stats())
    report["requests_per_s"] = (report["requests"] - 2) / report["wall_s"]  # less the warm-up
    return report


if __name__ == "__main__":
    url, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(_main(url, name, size))))
