"""Regression tests for the run-side failures of the adversarial review (issue 10, failures
1, 3, 5, 6 and 7): each reproduces the failure as the review found it and must pass now.

A run that could hang is driven from a daemon thread with a bound, so a regression fails
the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from _helpers import WAIT, assert_resendable, wait_until

from agentkit import Agent, RunLimits, ToolThreadsExhaustedError, tool
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from ._support import (
    INSTRUCTIONS,
    KEY,
    MODEL,
    Driver,
    run_with,
    tool_messages,
)

T = TypeVar("T")
ANSWER = "Done."


def bounded(call: Callable[[], T], seconds: float) -> T:
    """``call()`` on a daemon thread; fails the test if it takes longer than ``seconds`` (a
    guard against a wedged run, never a measure: pass ``WAIT``)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: the run is wedged"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _last_is_user(request: RecordedRequest) -> bool:
    return bool(request.messages[-1].get("role") == "user")


def calls_then_answer(*calls: tuple[str, dict[str, Any]]) -> Callable[[RecordedRequest], Reply]:
    """A model that calls ``calls`` after each user message and answers after the tools."""

    def handle(request: RecordedRequest) -> Reply:
        return Reply.tool_calls(*calls) if _last_is_user(request) else Reply.text(ANSWER)

    return handle


# --- 1. timed-out sync tools never wedge the agent ------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test: lets blocked tools (and their threads) finish."""
    event = threading.Event()
    yield event
    event.set()


def test_timed_out_sync_tools_do_not_starve_later_runs(
    server: ScriptedServer, release: threading.Event
) -> None:
    @tool
    def fetch(url: str) -> str:
        """Fetch a page (a network call with no timeout of its own)."""
        release.wait(60)
        return "late"

    server.respond_with(calls_then_answer(("fetch", {"url": "a"}), ("fetch", {"url": "b"})))
    agent = Agent(
        MODEL,
        [fetch],
        INSTRUCTIONS,
        base_url=server.base_url,
        api_key=KEY,
        limits=RunLimits(tool_timeout=0.2, parallel_tool_calls_limit=2),
    )
    with agent:
        for _ in range(2):  # each run leaves two threads stuck; run 2 hung before
            result = bounded(lambda: agent.run("go"), WAIT)
            told = tool_messages(result.messages)
            assert [m["content"] for m in told] == ["tool fetch timed out after 0.2 s"] * 2
        # The leak bound (2 x parallel_tool_calls_limit threads) is reached: refused, at once.
        with pytest.raises(ToolThreadsExhaustedError, match="4 of this agent's 4 tool threads"):
            bounded(lambda: agent.run("go"), WAIT)
        release.set()  # the stuck calls return; their threads serve later runs
        runtime = agent._runtime
        wait_until(lambda: runtime.threads is not None and runtime.threads._stuck == 0)
        result = bounded(lambda: asyncio.run(agent.run_async("go")), WAIT)
        assert [m["content"] for m in tool_messages(result.messages)] == ["late", "late"]
        assert agent._runtime.threads is not None
        assert agent._runtime.threads._count == 4, "at most 2 x the limit, ever"


def test_a_queued_call_times_out_from_when_it_was_queued(
    server: ScriptedServer, release: threading.Event
) -> None:
    """With one thread, the second call cannot start while the first blocks; its clock runs
    from the moment it was queued, so the round ends at the timeout, not after it."""

    @tool
    def fetch(url: str) -> str:
        """Fetch a page."""
        release.wait(60)
        return "late"

    server.respond_with(calls_then_answer(("fetch", {"url": "a"}), ("fetch", {"url": "b"})))
    with Agent(
        MODEL,
        [fetch],
        base_url=server.base_url,
        api_key=KEY,
        limits=RunLimits(tool_timeout=0.3, parallel_tool_calls_limit=1),
    ) as agent:
        result = bounded(lambda: agent.run("go"), WAIT)
    durations = [m["content"] for m in tool_messages(result.messages)]
    assert durations == ["tool fetch timed out after 0.3 s"] * 2


def test_a_tool_that_runs_its_own_agent_does_not_deadlock(server: ScriptedServer) -> None:
    """The outer call holds the only tool thread while the inner run needs one."""
    holder: dict[str, Agent[Any]] = {}

    @tool
    def leaf() -> str:
        """The inner run's tool."""
        return "leaf ok"

    @tool
    def delegate(question: str) -> str:
        """Ask the same agent, in a nested run."""
        return str(holder["agent"].run(question).output)

    def handle(request: RecordedRequest) -> Reply:
        first = str(request.messages[1]["content"])
        if not _last_is_user(request):
            return Reply.text("inner answer" if first == "inner" else ANSWER)
        if first == "inner":
            return Reply.tool_calls(("leaf", {}))
        return Reply.tool_calls(("delegate", {"question": "inner"}))

    server.respond_with(handle)
    with Agent(
        MODEL,
        [leaf, delegate],
        INSTRUCTIONS,
        base_url=server.base_url,
        api_key=KEY,
        limits=RunLimits(tool_timeout=30, parallel_tool_calls_limit=1),
    ) as agent:
        holder["agent"] = agent
        result = bounded(lambda: agent.run("outer"), WAIT)
    assert tool_messages(result.messages)[0]["content"] == "inner answer"


# --- 3. one agent, several event loops -------------------------------------------------------


def test_one_agent_on_several_event_loops_at_once(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text("hello"))
    agent = Agent(MODEL, [], base_url=server.base_url, api_key=KEY)
    errors: list[BaseException] = []

    def worker() -> None:
        for _ in range(10):
            try:
                assert asyncio.run(agent.run_async("hi")).output == "hello"
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    agent.close()
    assert not errors, f"{len(errors)} of 40 runs failed, first: {errors[0]!r}"
    assert server.request_count == 40


def test_alternating_event_loops_keep_their_connection_pools(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text("hello"))
    agent = Agent(MODEL, [], base_url=server.base_url, api_key=KEY)
    with asyncio.Runner() as first, asyncio.Runner() as second:
        for _ in range(5):
            for runner in (first, second):
                assert runner.run(agent.run_async("hi")).output == "hello"
        assert server.connections_opened == 2, "one pool per live loop, reused by every run"
    assert bounded(lambda: asyncio.run(agent.run_async("hi")), WAIT).output == "hello"


# --- 5. lone surrogates ---------------------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"report-\xff.txt")  # what os.listdir gives for such a name


def assert_encodable(messages: list[dict[str, Any]]) -> None:
    json.dumps(messages, ensure_ascii=False).encode("utf-8")


@tool
def list_files() -> str:
    """The files in the report folder."""
    return NOT_UTF8


def test_a_lone_surrogate_in_tool_output_is_sent_and_resendable(
    server: ScriptedServer, driver: Driver
) -> None:
    server.queue(Reply.tool_calls(("list_files", {})), Reply.text(ANSWER))
    result = run_with(driver, server.base_url, tools=(list_files,))
    assert result.output == ANSWER
    assert_encodable(result.messages)
    assert_resendable(result.messages)
    assert tool_messages(server.requests[1].messages)[0]["content"] == "report-\ufffd.txt"
    server.queue(Reply.text("again"))
    assert run_with(driver, server.base_url, result.messages, tools=(list_files,)).output == (
        "again"
    )


def test_a_lone_surrogate_in_the_prompt_or_transcript_is_sent(server: ScriptedServer) -> None:
    server.queue(Reply.text(ANSWER), Reply.text(ANSWER))
    result = run_with("run", server.base_url, f"open {NOT_UTF8}")
    assert_encodable(result.messages)
    assert server.requests[0].messages[-1]["content"] == "open report-\ufffd.txt"
    transcript = [{"role": "user", "content": [{"type": "text", "text": "\ud800 odd"}]}]
    result = run_with("run", server.base_url, transcript)
    assert_encodable(result.messages)


def test_a_lone_surrogate_in_a_tool_call_written_as_text_is_replaced(
    server: ScriptedServer, driver: Driver
) -> None:
    # A tool call written in the content holds JSON of its own, whose "\\ud800" escape is
    # a lone surrogate once parsed: the transcript keeps U+FFFD in the call's name and
    # arguments (and in the tool message naming it), so it can be sent again.
    written = (
        '<tool_call>{"name": "look\\ud800up", "arguments": {"city": "Par\\udcffis"}}</tool_call>'
    )
    server.queue(Reply.text(written), Reply.text(ANSWER))
    result = run_with(driver, server.base_url)
    assert result.output == ANSWER
    assert_encodable(result.messages)
    assert_resendable(result.messages)
    call = next(m for m in result.messages if m.get("tool_calls"))["tool_calls"][0]
    assert call["function"]["name"] == "look\ufffdup"
    assert json.loads(call["function"]["arguments"]) == {"city": "Par\ufffdis"}
    assert tool_messages(server.requests[1].messages)[0]["name"] == "look\ufffdup"


# --- 6. a tool's return value inside its time budget ----------------------------------------


def test_a_lazy_generator_is_refused_not_consumed(
    server: ScriptedServer, driver: Driver, release: threading.Event
) -> None:
    @tool(timeout=0.3)
    def slow_rows() -> Any:
        """Rows, produced slowly."""

        def rows() -> Iterator[int]:
            yield 1
            release.wait(60)
            yield 2

        return rows()

    @tool
    def endless() -> Any:
        """Counts for ever."""
        return itertools.count()

    server.queue(Reply.tool_calls(("slow_rows", {}), ("endless", {})), Reply.text(ANSWER))
    result = bounded(lambda: run_with(driver, server.base_url, tools=(slow_rows, endless)), WAIT)
    assert result.output == ANSWER
    told = [m["content"] for m in tool_messages(result.messages)]
    assert all("generator or iterator" in text for text in told), told


def test_a_big_return_value_is_capped(server: ScriptedServer, driver: Driver) -> None:
    @tool
    def dump() -> list[int]:
        """A big table."""
        return list(range(100_000))

    server.queue(Reply.tool_calls(("dump", {})), Reply.text(ANSWER))
    result = run_with(
        driver, server.base_url, tools=(dump,), limits=RunLimits(max_tool_output_chars=1000)
    )
    text = tool_messages(result.messages)[0]["content"]
    assert len(text) < 1200 and "output cut" in text


# --- 7. a tool's own cancellation -----------------------------------------------------------


@tool
async def flaky_lookup(city: str) -> str:
    """Look a city up (its inner request gets cancelled by someone else)."""
    inner = asyncio.ensure_future(asyncio.sleep(10))
    asyncio.get_running_loop().call_soon(inner.cancel)
    await inner
    return "never"


def test_a_tools_own_cancellation_is_a_tool_failure(server: ScriptedServer, driver: Driver) -> None:
    server.queue(Reply.tool_calls(("flaky_lookup", {"city": "Oslo"})), Reply.text(ANSWER))
    result = run_with(driver, server.base_url, tools=(flaky_lookup,))
    assert result.output == ANSWER
    told = tool_messages(result.messages)[0]["content"]
    assert told.startswith("tool flaky_lookup failed: CancelledError"), told
