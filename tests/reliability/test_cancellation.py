"""Cancellation: a cancelled ``run_async`` or ``stream_async`` and Ctrl-C in ``agentkit chat``
stop promptly, close the response stream (the server sees the connection go), leave a
resendable transcript, and leave the agent's client usable for the next run.

"Promptly" is said by order, not by a clock: the answer or the tool stalls for longer than
the test may take (a hang lasts until the client leaves), so only the cancel can end it.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import assert_resendable, wait_until_async

from agentkit import Agent, tool
from agentkit._events import TextDelta
from agentkit.testing import Reply, ScriptedServer

from ._support import (
    PROMPT,
    async_agent,
    tool_messages,
)

REPO = Path(__file__).resolve().parents[2]
STORY = " ".join(f"word{n}" for n in range(60))  # 60 stream events
HALF = 10  # a stalled answer stops after this many events (or bytes of a plain body)


async def cancel(task: asyncio.Task[Any]) -> BaseException:
    """Cancel ``task``; return what it raised. A run that ignores the cancel hangs on the
    stalled answer or tool, and the test times out."""
    task.cancel()
    await asyncio.wait({task})
    assert task.cancelled(), "asyncio semantics kept: the task ends cancelled"
    try:
        task.result()  # raises the CancelledError the run raised, with its transcript
    except asyncio.CancelledError as exc:
        return exc
    raise AssertionError("unreachable: a cancelled task has no result")


async def next_run_succeeds(agent: Agent[Any], server: ScriptedServer) -> None:
    """The same agent (and its client) answers the next question."""
    server.queue(Reply.text("Still here."))
    result = await agent.run_async("Are you there?")
    assert result.output == "Still here."


def assert_no_stray_tasks() -> None:
    current = asyncio.current_task()
    stray = [task for task in asyncio.all_tasks() if task is not current]
    assert stray == [], f"tasks left running: {stray}"


def run_cancellation(
    server: ScriptedServer, scenario: Callable[[Agent[Any]], Awaitable[None]], **options: Any
) -> None:
    async def main() -> None:
        async with async_agent(server.base_url, **options) as agent:
            await scenario(agent)
            assert_no_stray_tasks()

    asyncio.run(main())


# --- mid-stream -----------------------------------------------------------------------------


def test_cancel_run_async_while_the_answer_arrives(server: ScriptedServer) -> None:
    # run_async reads a plain answer whose body stalls after its first bytes
    server.queue(Reply.text(STORY).with_(hang_after=HALF))

    async def scenario(agent: Agent[Any]) -> None:
        task = asyncio.create_task(agent.run_async(PROMPT))
        await wait_until_async(lambda: server.request_count == 1 and server.open_connections == 1)
        error = await cancel(task)
        assert_resendable(error.messages)  # type: ignore[attr-defined]
        await wait_until_async(lambda: server.open_connections == 0)  # the socket was closed
        await next_run_succeeds(agent, server)

    run_cancellation(server, scenario)


def test_cancel_stream_async_mid_stream(server: ScriptedServer) -> None:
    server.queue(Reply.text(STORY, stream=True).with_(hang_after=HALF))
    seen: list[str] = []
    first_text = asyncio.Event()

    async def consume(agent: Agent[Any]) -> None:
        async for event in agent.stream_async(PROMPT):
            if isinstance(event, TextDelta):
                seen.append(event.text)
                first_text.set()

    async def scenario(agent: Agent[Any]) -> None:
        task = asyncio.create_task(consume(agent))
        await first_text.wait()
        error = await cancel(task)
        assert 0 < len(seen) < HALF, "cancelled mid-stream, not at its end"
        messages = error.messages  # type: ignore[attr-defined]
        assert_resendable(messages)
        assert "word0" not in str(messages), "the half answer is not in the transcript"
        await wait_until_async(lambda: server.open_connections == 0)
        await next_run_succeeds(agent, server)

    run_cancellation(server, scenario)


# --- mid-tool -------------------------------------------------------------------------------

_tool_started = threading.Event()
_tool_cancelled = threading.Event()
_tool_returned = threading.Event()
_release = threading.Event()


@pytest.fixture(autouse=True)
def _tool_state() -> Iterator[None]:
    for event in (_tool_started, _tool_cancelled, _tool_returned, _release):
        event.clear()
    yield
    _release.set()  # a sync tool's thread cannot be stopped: let it finish


@tool(name="forecast")
async def slow_forecast_async(city: str) -> str:
    """The forecast (takes longer than the test may)."""
    _tool_started.set()
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        _tool_cancelled.set()
        raise
    return "sunny"


@tool(name="forecast")
def slow_forecast(city: str) -> str:
    """The forecast (takes until released)."""
    _tool_started.set()
    _release.wait(600)
    _tool_returned.set()
    return "sunny"


@pytest.mark.parametrize(
    "forecast", [slow_forecast_async, slow_forecast], ids=["async_tool", "sync_tool"]
)
def test_cancel_run_async_mid_tool(server: ScriptedServer, forecast: Any) -> None:
    server.queue(Reply.tool_calls(("forecast", {"city": "Paris"}), ("forecast", {"city": "Rome"})))

    async def scenario(agent: Agent[Any]) -> None:
        task = asyncio.create_task(agent.run_async(PROMPT))
        await wait_until_async(_tool_started.is_set)
        error = await cancel(task)
        if forecast is slow_forecast_async:
            assert _tool_cancelled.is_set(), "the tool task was cancelled, not abandoned"
        else:
            assert not _tool_returned.is_set(), "the run stopped without waiting for the tool"
        messages = error.messages  # type: ignore[attr-defined]
        assert_resendable(messages)  # one tool message per call, "cancelled"
        told = tool_messages(messages)
        assert [m["tool_call_id"] for m in told] == ["call_1_0", "call_1_1"]
        assert all("cancelled" in m["content"] for m in told)
        # the transcript resumes: sent back in, the run finishes
        server.queue(Reply.text("Sorry, that took too long."))
        resumed = await agent.run_async(messages)
        assert resumed.output == "Sorry, that took too long."
        assert server.requests[-1].messages == messages
        await next_run_succeeds(agent, server)

    run_cancellation(server, scenario, tools=(forecast,))


# --- Ctrl-C in the CLI ----------------------------------------------------------------------


def _wait_for_output(stream: Any, timeout: float) -> str:
    """Read what the process has printed so far, waiting for at least one byte."""
    os.set_blocking(stream.fileno(), False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.05)
        if ready:
            data = stream.read()
            if data:
                return data.decode("utf-8", "replace")  # type: ignore[no-any-return]
    raise AssertionError("the CLI printed nothing")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
@pytest.mark.parametrize("when", ["mid_stream", "waiting_for_the_answer"])
def test_ctrl_c_in_cli_chat(server: ScriptedServer, when: str) -> None:
    if when == "mid_stream":
        server.queue(Reply.text(STORY, stream=True).with_(hang_after=HALF))
    else:
        server.queue(Reply.hang())
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DASHSCOPE_", "OPENAI_", "AGENTKIT_"))
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentkit.cli",
            "chat",
            "--base-url",
            server.base_url,
            "--no-tools",
            "Tell me a long story.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        cwd=REPO,
    )
    try:
        server.wait_for_requests(1, timeout=20)
        shown = _wait_for_output(process.stdout, 10) if when == "mid_stream" else ""
        process.send_signal(signal.SIGINT)
        out, err = process.communicate()  # only Ctrl-C ends the stalled answer
    finally:
        process.kill()
        process.wait()
    stderr = err.decode("utf-8", "replace")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    stdout = shown + out.decode("utf-8", "replace")
    if when == "mid_stream":
        assert stdout.startswith("word0") and "word59" not in stdout, "stopped mid-answer"
    assert server.request_count == 1, "Ctrl-C is not retried"
