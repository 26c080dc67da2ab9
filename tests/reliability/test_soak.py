"""Soak: many concurrent runs against a server that injects random faults.

Every run must end as a result or a typed ``AgentKitError`` carrying a resendable
transcript, none may hang, and nothing may be left behind: no thread, no task, no socket,
no file descriptor. The faults are drawn from a seeded random generator per request.

CI runs 200 concurrent runs (a few seconds); scale up with ``AGENTKIT_SOAK_RUNS=5000`` and
vary the faults with ``AGENTKIT_SOAK_SEED``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from _helpers import assert_resendable

from agentkit import Agent, AgentKitError, AsyncChatClient, RunLimits, RunResult, tool
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from ._support import INSTRUCTIONS, KEY, MODEL, get_weather

RUNS = int(os.environ.get("AGENTKIT_SOAK_RUNS", "200"))
SEED = int(os.environ.get("AGENTKIT_SOAK_SEED", "7"))
# Seconds any one run may take before it counts as hung: generous, and growing with the
# number of runs, which queue for the client's 100 pooled connections.
RUN_BOUND = 30.0 + RUNS * 0.05


@tool
async def get_time(city: str) -> str:
    """The local time in a city."""
    await asyncio.sleep(0.005)
    return f"noon in {city}"


@tool(timeout=0.1)
def slow_lookup(key: str) -> str:
    """A lookup that sometimes runs past its timeout (the thread ends by itself)."""
    time.sleep(0.25)
    return key


@tool(timeout=0.1)
async def stuck_lookup(key: str) -> str:
    """A lookup that never finishes; it is cancelled at its timeout."""
    await asyncio.sleep(60)
    return key


@tool
def broken(key: str) -> str:
    """A tool that always raises."""
    raise RuntimeError(f"broken {key}")


TOOLS = (get_weather, get_time, slow_lookup, stuck_lookup, broken)

_CALLS: list[tuple[str, Any]] = [
    ("get_weather", {"city": "Paris"}),
    ("get_time", {"city": "Lima"}),
    ("slow_lookup", {"key": "a"}),
    ("stuck_lookup", {"key": "b"}),
    ("broken", {"key": "c"}),
    ("get_weather", '{"city": '),  # not JSON
    ("get_weather", {"city": 5}),  # wrong shape
    ("no_such_tool", {}),
]

_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def _fault(rng: random.Random, streamed: bool) -> Reply:
    kind = rng.choice(
        [
            "503",
            "502",
            "500",
            "504",
            "429",
            "quota",
            "401",
            "reset",
            "fin",
            "hang",
            "cut",
            "html",
            "not_json",
            "no_choices",
        ]
    )
    if kind == "cut":
        answer = Reply.text("a b c d e f g h i j", stream=streamed)
        return answer.with_(cut_after=4 if streamed else 30, rst=rng.random() < 0.5)
    return {
        "503": Reply.error(503),
        "502": Reply.error(502),
        "500": Reply.error(500),
        "504": Reply.error(504),
        "429": Reply.rate_limited("0"),
        "quota": Reply.quota_exceeded(),
        "401": Reply.invalid_api_key(),
        "reset": Reply.reset(),
        "fin": Reply.reset(rst=False),
        "hang": Reply.hang(),
        "html": Reply.raw(_PAGE, status=502, content_type="text/html"),
        "not_json": Reply.raw("upstream said no", status=200),
        "no_choices": Reply.raw('{"id": "x", "choices": []}', status=200),
    }[kind]


def _model(request: RecordedRequest) -> Reply:
    """Two or three rounds of tool calls and an answer, with a fault 30% of the time."""
    rng = random.Random(SEED * 1_000_003 + request.number)
    if rng.random() < 0.3:
        return _fault(rng, request.stream)
    rounds = sum(1 for m in request.messages if m.get("role") == "assistant")
    if rounds >= rng.choice((1, 2)):
        reply = Reply.text("All done, thank you.")
    else:
        count = rng.choice((1, 1, 2, 3))
        calls = [rng.choice(_CALLS) for _ in range(count)]
        reply = Reply.tool_calls(*calls, style=rng.choice(("openai", "dashscope", "llama.cpp")))
    if rng.random() < 0.2:
        reply = reply.with_(split_bytes=rng.randint(5, 60), chunk_delay=0.001)
    return reply


def _tcp_inodes() -> dict[str, set[int]]:
    """The inode of each TCP socket on this machine, with the two ports it joins."""
    found: dict[str, set[int]] = {}
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)  # the header
                for line in lines:
                    fields = line.split()
                    ports = {int(fields[1].rsplit(":", 1)[1], 16)}
                    ports.add(int(fields[2].rsplit(":", 1)[1], 16))
                    found[fields[9]] = ports
        except OSError:
            continue  # no IPv6
    return found


def _fd_kinds() -> collections.Counter[str]:
    """Open file descriptors of this process by kind (socket, pipe, anon_inode...); TCP
    sockets are left out: other tests' threads in this worker may still open and close
    them (a late result, a server shutting down), and the soak's own are counted by port
    (``_sockets_to``)."""
    tcp = _tcp_inodes()
    kinds: collections.Counter[str] = collections.Counter()
    for target in _fd_targets():
        if target.startswith("socket:[") and target[8:-1] in tcp:
            continue
        kinds[target.split(":", 1)[0] if ":" in target else "file"] += 1
    return kinds


def _sockets_to(port: int) -> int:
    """This process's TCP sockets on ``port`` (either end): the soak's client connections
    to its scripted server, and the server's side of them."""
    tcp = _tcp_inodes()
    return sum(
        1
        for target in _fd_targets()
        if target.startswith("socket:[") and port in tcp.get(target[8:-1], ())
    )


def _fd_targets() -> list[str]:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # the listing's own descriptor, already closed
    return targets


def _settle(condition: Any, timeout: float = 30.0) -> bool:
    """Wait for background threads and sockets to finish closing (the bound only ends a
    wait for something that never happens: a loaded machine takes seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def _soak(base_url: str) -> list[Any]:
    # a short read timeout, so hung replies end fast; waiting for a pooled connection is
    # not a fault here, so it may take as long as a run may
    timeout = httpx.Timeout(5.0, connect=2.0, read=0.5, pool=RUN_BOUND)
    client = AsyncChatClient(
        base_url,
        KEY,
        max_retries=2,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        timeout=timeout,
    )
    outcomes: list[Any] = []
    async with (
        client,
        Agent(MODEL, TOOLS, INSTRUCTIONS, client=client, limits=RunLimits(max_turns=6)) as agent,
    ):

        async def one(index: int) -> Any:
            prompt = f"Question {index}: the weather and the time?"
            if index % 4 == 3:  # a quarter of the runs stream

                async def streamed() -> Any:
                    last = None
                    async for last in agent.stream_async(prompt):  # noqa: B007
                        pass
                    return last.result  # type: ignore[union-attr]

                work = streamed()
            else:
                work = agent.run_async(prompt)
            try:
                return await asyncio.wait_for(work, RUN_BOUND)
            except AgentKitError as error:
                return error
            except TimeoutError:
                return TimeoutError(f"run {index} hung for {RUN_BOUND} s")

        outcomes = await asyncio.gather(*(one(i) for i in range(RUNS)), return_exceptions=True)
    current = asyncio.current_task()
    stray = [task for task in asyncio.all_tasks() if task is not current]
    assert stray == [], f"tasks left running: {stray}"
    return outcomes


@pytest.mark.soak
# Every run is started at once and bounded by RUN_BOUND, so the whole soak ends within about
# RUN_BOUND: the suite's 60 s hang guard is for one test, and failed 2,000 runs on a loaded
# machine (105 s, every check held) as an "untyped error" it raised into the runs.
@pytest.mark.timeout(60 + 2 * RUN_BOUND)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_soak_concurrent_runs_with_random_faults() -> None:
    # What earlier tests in this process left for the garbage collector (a store never
    # closed) is closed now, not while the soak runs; a kind that shrinks during the soak is
    # someone else's file closing, and only one that grows is left behind by the soak.
    gc.collect()
    threads_before = set(threading.enumerate())
    fds_before = _fd_kinds()
    with ScriptedServer(handler=_model) as server:
        outcomes = asyncio.run(_soak(server.base_url))
        port = server.port
        requests = server.request_count
        script_errors = server.errors

    assert not script_errors
    kinds = collections.Counter(type(o).__name__ for o in outcomes)
    hung = [o for o in outcomes if isinstance(o, TimeoutError)]
    assert hung == [], f"{len(hung)} runs hung: {kinds}"
    untyped = [o for o in outcomes if not isinstance(o, RunResult | AgentKitError)]
    assert untyped == [], f"runs ended with untyped errors: {untyped[:5]!r}"
    results = [o for o in outcomes if isinstance(o, RunResult)]
    errors = [o for o in outcomes if isinstance(o, AgentKitError)]
    assert len(results) + len(errors) == RUNS
    # the mix is real: both outcomes happen, and faults were survived, not just suffered
    assert len(results) > RUNS // 4 and errors, kinds
    assert requests > 2 * RUNS, f"{requests} requests for {RUNS} runs"
    for result in results:
        assert result.output == "All done, thank you."
        assert_resendable(result.messages)
    for error in errors:
        assert error.messages is not None, f"{type(error).__name__} carries no transcript"
        assert_resendable(error.messages)

    # by identity: another test's leftover thread ending meanwhile is not a new one
    assert _settle(lambda: set(threading.enumerate()) <= threads_before), (
        f"threads left: {[t.name for t in threading.enumerate() if t not in threads_before]}"
    )
    assert _settle(lambda: _sockets_to(port) == 0), f"{_sockets_to(port)} sockets left open"
    assert _settle(lambda: _fd_kinds() <= fds_before), (
        f"file descriptors left: before {dict(fds_before)}, after {dict(_fd_kinds())}"
    )
