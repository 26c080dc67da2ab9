"""Sync tools' threads: kept between runs, bounded, closed with the agent, the caller's
context variables, a queued call dropped on close, SystemExit carried back."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from _helpers import WAIT, wait_until

from agentkit import Agent, ChatClient, RunLimits, tool
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-threads-test"

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def tool_messages(request: RecordedRequest) -> list[str]:
    return [m["content"] for m in request.messages if m["role"] == "tool"]


def agentkit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("agentkit-tool")]


def test_one_thread_serves_every_run_and_ends_with_the_agent(server: ScriptedServer) -> None:
    seen: list[threading.Thread] = []

    @tool
    def where() -> str:
        """Which thread runs me."""
        seen.append(threading.current_thread())
        return "here"

    before = set(agentkit_threads())  # another test's stuck tool thread may end meanwhile
    with Agent("m", [where], base_url=server.base_url, api_key=KEY) as agent:
        for _ in range(3):
            server.queue(Reply.tool_calls(("where", {})), Reply.text("ok"))
            assert agent.run("go").output == "ok"
        assert len(set(seen)) == 1  # kept, not started per call
        assert seen[0] is not threading.current_thread()
        # A daemon: a tool still running when the program ends does not keep it alive.
        assert seen[0].daemon
    wait_until(lambda: set(agentkit_threads()) <= before)


def test_threads_are_bounded_by_the_parallel_limit(server: ScriptedServer) -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    names: set[str] = set()
    pair = threading.Barrier(2, timeout=WAIT)  # two calls at once for certain, not by timing

    @tool
    def step(n: int) -> str:
        """Waits for a second call to run beside it."""
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            names.add(threading.current_thread().name)
        pair.wait()
        with lock:
            running -= 1
        return f"step {n}"

    server.queue(Reply.tool_calls(*(("step", {"n": n}) for n in range(6))), Reply.text("ok"))
    with Agent(
        "m",
        [step],
        base_url=server.base_url,
        api_key=KEY,
        limits=RunLimits(parallel_tool_calls_limit=2),
    ) as agent:
        agent.run("go")
    assert tool_messages(server.requests[1]) == [f"step {n}" for n in range(6)]
    assert most == 2
    assert len(names) == 2


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_a_sync_tool_sees_the_callers_context_variables(
    server: ScriptedServer, driver: str
) -> None:
    @tool
    def whoami() -> str:
        """The request id of the caller."""
        return REQUEST_ID.get()

    server.queue(Reply.tool_calls(("whoami", {})), Reply.text("ok"))
    agent = Agent("m", [whoami], base_url=server.base_url, api_key=KEY)
    token = REQUEST_ID.set("req-7")
    try:
        if driver == "run":
            with agent:
                agent.run("go")
        else:

            async def main() -> None:
                async with agent:
                    await agent.run_async("go")

            asyncio.run(main())
    finally:
        REQUEST_ID.reset(token)
    assert tool_messages(server.requests[1]) == ["req-7"]


def test_closing_the_agent_drops_a_queued_call_without_a_hang(server: ScriptedServer) -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    @tool
    def slow(n: int) -> str:
        """Blocks until released."""
        ran.append(f"slow {n}")
        started.set()
        release.wait(10)
        return f"slow {n} done"

    server.queue(Reply.tool_calls(("slow", {"n": 1}), ("slow", {"n": 2})), Reply.text("ok"))
    client = ChatClient(server.base_url, KEY)  # a client passed in stays open on close()
    agent = Agent("m", [slow], client=client, limits=RunLimits(parallel_tool_calls_limit=1))
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(agent.run("go").output))
    runner.start()
    try:
        assert started.wait(30)
        agent.close()  # the second call waits for the only thread: it never starts
    finally:
        release.set()
        runner.join(30)
        client.close()
    assert not runner.is_alive()
    assert outcome == ["ok"]
    assert ran == ["slow 1"]
    assert tool_messages(server.requests[1]) == [
        "slow 1 done",
        "tool slow was cancelled before it finished",
    ]


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_system_exit_in_a_sync_tool_ends_the_run(server: ScriptedServer, driver: str) -> None:
    @tool
    def leave() -> str:
        """Exits."""
        raise SystemExit(3)

    server.queue(Reply.tool_calls(("leave", {})))
    agent = Agent("m", [leave], base_url=server.base_url, api_key=KEY)
    with pytest.raises(SystemExit) as caught:
        if driver == "run":
            with agent:
                agent.run("go")
        else:

            async def main() -> None:
                async with agent:
                    await agent.run_async("go")

            asyncio.run(main())
    assert caught.value.code == 3
    messages = caught.value.messages  # type: ignore[attr-defined]
    assert messages[-1]["content"] == "tool leave was cancelled before it finished"
    server.queue(Reply.text("after"))
    with agent:
        assert agent.run(messages).output == "after"  # the transcript can be sent back


def test_run_waits_for_an_async_tools_cleanup_but_not_for_a_blocked_loop(
    server: ScriptedServer,
) -> None:
    cleaned: list[str] = []
    release = threading.Event()

    @tool(timeout=0.2)
    async def polite() -> str:
        """Sleeps, and cleans up when cancelled."""
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # cleanup that itself awaits
            cleaned.append("polite")
        return "late"

    @tool(timeout=0.2)
    async def blocking() -> str:
        """Blocks its own event loop: it cannot be cancelled."""
        release.wait(60)
        returned.set()
        return "late"

    returned = threading.Event()

    server.queue(Reply.tool_calls(("polite", {})), Reply.text("ok"))
    server.queue(Reply.tool_calls(("blocking", {})), Reply.text("ok"))
    with Agent("m", [polite, blocking], base_url=server.base_url, api_key=KEY) as agent:
        agent.run("go")
        assert cleaned == ["polite"]  # before the run went on
        try:
            agent.run("go")
            assert not returned.is_set()  # the run went on without the blocked tool
        finally:
            release.set()
    assert tool_messages(server.requests[1]) == ["tool polite timed out after 0.2 s"]
    assert tool_messages(server.requests[3]) == ["tool blocking timed out after 0.2 s"]
