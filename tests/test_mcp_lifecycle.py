"""MCP connections leave nothing behind: processes, sockets, pipes and threads are counted
before and after (as the soak does), through close, Ctrl-C, errors and concurrent runs."""

from __future__ import annotations

import _thread
import asyncio
import gc
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import wait_until
from _mcp_support import agent_for, children, fake, open_fds, tool_messages, uvicorn_serving

from agentkit import tool
from agentkit.mcp import MCPHttp, asgi_app
from agentkit.mcp import _runtime as mcp_runtime
from agentkit.testing import Reply, ScriptedServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

TOKEN = "lifecycle-token-0123456789"


@tool
def double(n: int) -> int:
    """Double a number."""
    return 2 * n


def _settled(condition: Any) -> bool:
    """Whether ``condition()`` holds within 30 s (closing is asynchronous; the bound only
    ends a wait for what never happens, on a loaded machine too)."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class LoopReports:
    """What asyncio reports about this test's own tasks, and nothing of another test's.

    asyncio reports a task destroyed while pending, an exception never retrieved, or an
    async generator that failed to close (anyio's "cancel scope" errors among them) to the
    loop of the task, whichever thread the garbage collector finalised it on. This test's
    tasks are those of the loops it ran (:attr:`loops`) and those the MCP client's loop
    (one per process, shared with every other MCP test of the worker) started after this
    test began. An earlier test's task, on its own loop or left on the MCP loop, may be
    collected while this test runs: it is not this test's.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gc.collect()  # what earlier tests left unreachable is reported now, before we listen
        self.loops: set[asyncio.AbstractEventLoop] = set()
        # by id, not held: a task held here could not be destroyed while this test runs
        self._before = {id(task) for task in self._mcp_tasks()}
        self._reports: list[tuple[asyncio.BaseEventLoop, dict[str, Any]]] = []
        default = asyncio.BaseEventLoop.default_exception_handler

        def report(loop: asyncio.BaseEventLoop, context: dict[str, Any]) -> None:
            self._reports.append((loop, context))
            default(loop, context)  # logged as ever

        monkeypatch.setattr(asyncio.BaseEventLoop, "default_exception_handler", report)

    @staticmethod
    def _mcp_tasks() -> set[asyncio.Task[Any]]:
        loop = mcp_runtime._loop
        return asyncio.all_tasks(loop) if loop is not None else set()

    def pending(self) -> list[asyncio.Task[Any]]:
        """The MCP client's tasks started since this test began and not ended."""
        return [task for task in self._mcp_tasks() if id(task) not in self._before]

    def ours(self) -> list[str]:
        """asyncio's reports about this test's tasks, each as one line."""
        gc.collect()  # a task leaked in a reference cycle is destroyed, and reported, now
        found = []
        for loop, context in self._reports:
            subject = context.get("task") or context.get("future")
            mcp = loop is mcp_runtime._loop and id(subject) not in self._before
            if loop in self.loops or mcp:
                found.append(f"{context.get('message')} {subject!r} {context.get('exception')!r}")
        return found


def _stranger_tasks() -> list[asyncio.Task[Any]]:
    """Tasks an earlier test left pending: one on a loop of its own, one on the MCP
    client's loop. Each waits for an event nobody will set, in a reference cycle: dropped,
    it is destroyed while pending when the garbage collector next runs."""

    async def leave_one() -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="stranger")
        await asyncio.sleep(0)  # its first step runs: it is waiting
        return task

    loop = asyncio.new_event_loop()
    try:
        return [loop.run_until_complete(leave_one()), mcp_runtime.call_sync(leave_one())]
    finally:
        loop.close()


@pytest.mark.parametrize("stranger", [False, True], ids=["alone", "beside_a_strangers_leak"])
def test_stdio_and_http_sources_leave_no_process_fd_or_thread(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, stranger: bool
) -> None:
    strangers = _stranger_tasks() if stranger else []
    reports = LoopReports(monkeypatch)
    if strangers:  # collected while this test runs: another test's, not a failure of this one
        strangers.clear()
        gc.collect()
    mcp_app = asgi_app([double], token=TOKEN)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reports.loops.add(asyncio.get_running_loop())  # the server side is this test's too
        await mcp_app(scope, receive, send)

    with uvicorn_serving(app) as base:
        url = f"{base}/mcp"
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def one_round(driver: str) -> None:
            sources = [fake(), MCPHttp(url, headers=headers, prefix="web")]
            server.queue(
                Reply.tool_calls(("fake_echo", {"text": "a"}), ("web_double", {"n": 2})),
                Reply.text("ok"),
            )
            agent = agent_for(server, sources)
            if driver == "run":
                with agent:
                    messages = agent.run("go").messages
            else:

                async def main() -> list[dict[str, Any]]:
                    reports.loops.add(asyncio.get_running_loop())
                    async with agent:
                        return (await agent.run_async("go")).messages

                messages = asyncio.run(main())
            assert tool_messages(messages) == ["a", "4"]

        one_round("run")  # warm up: the MCP loop thread, imports, lazy pools
        processes, fds, threads = children(), open_fds(), set(threading.enumerate())
        for driver in ("run", "run_async", "run", "run_async"):
            one_round(driver)
        assert _settled(lambda: children() <= processes), "a server process was left"
        assert _settled(lambda: open_fds() <= fds), f"fds: before {fds}, after {open_fds()}"
        # by identity: another test's leftover thread ending meanwhile is not a new one
        assert _settled(lambda: set(threading.enumerate()) <= threads), [
            t.name for t in threading.enumerate() if t not in threads
        ]
    # no task of this test dropped unfinished or with its error, no anyio scope left in the
    # wrong task, no task of the MCP client's left running
    found = reports.ours()
    for bad in ("cancel scope", "never retrieved", "destroyed but it is pending"):
        assert not [report for report in found if bad in report]
    assert _settled(lambda: not reports.pending()), reports.pending()


def test_ctrl_c_while_a_sync_run_waits_on_a_call(server: ScriptedServer, tmp_path: Path) -> None:
    before = children()
    arrived = tmp_path / "arrived"  # the fake server writes it when the call reaches it
    source = fake(env={"FAKE_MCP_ARRIVED": str(arrived)})
    server.queue(Reply.tool_calls(("fake_slow", {})))
    agent = agent_for(server, [source])
    started = threading.Event()
    agent_hooks_seen: list[str] = []

    def interrupt_when_started() -> None:
        try:
            started.wait(10)
            wait_until(arrived.exists)  # the call is in flight on the server
        finally:  # interrupt even when the signal never came, so the run cannot hang
            _thread.interrupt_main()

    timer = threading.Thread(target=interrupt_when_started)
    timer.start()
    with pytest.raises(KeyboardInterrupt), agent:
        for event in agent.stream("go"):
            agent_hooks_seen.append(type(event).__name__)
            if type(event).__name__ == "ToolCallStarted":
                started.set()
    timer.join()
    assert "ToolCallStarted" in agent_hooks_seen
    assert arrived.exists(), "the call never reached the server"
    assert _settled(lambda: children() <= before)


def test_two_runs_at_once_share_one_server(server: ScriptedServer) -> None:
    source = fake()
    server.respond_with(
        lambda request: (
            Reply.text("done")
            if any(m["role"] == "tool" for m in request.json()["messages"])
            else Reply.tool_calls(("fake_whoami", {}))
        )
    )
    with agent_for(server, [source]) as agent:

        def one(_: int) -> str:
            return tool_messages(agent.run("who?").messages)[0]

        with ThreadPoolExecutor(4) as pool:
            pids = set(pool.map(one, range(8)))
    assert len(pids) == 1 and pids.pop().isdigit()  # one process served all eight


def test_the_loopback_server_refuses_another_host_name() -> None:
    app = asgi_app([double])  # no token: loopback only, with DNS-rebinding protection
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    with uvicorn_serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        rebound = http.post("/mcp", json=ping, headers={**accept, "Host": "evil.example"})
        origin = http.post("/mcp", json=ping, headers={**accept, "Origin": "http://evil.example"})
    assert rebound.status_code in (400, 403, 421)
    assert origin.status_code in (400, 403)


def test_a_source_is_reusable_after_close(server: ScriptedServer) -> None:
    source = fake()
    for _ in range(2):
        server.queue(Reply.tool_calls(("fake_echo", {"text": "x"})), Reply.text("ok"))
        with agent_for(server, [source]) as agent:
            assert tool_messages(agent.run("go").messages) == ["x"]
    wait_until(lambda: source._connection is None)


def test_ctrl_c_while_connecting_ends_the_server(server: ScriptedServer) -> None:
    before = children()
    source = fake("hang", connect_timeout=30)
    agent = agent_for(server, [source])
    spawned = threading.Event()

    def interrupt_once_spawned() -> None:
        deadline = time.monotonic() + 10
        while not children() - before and time.monotonic() < deadline:
            time.sleep(0.01)
        spawned.set()
        _thread.interrupt_main()

    timer = threading.Thread(target=interrupt_once_spawned)
    timer.start()
    # connect_timeout is 30 s: a KeyboardInterrupt (not MCPTimeoutError) means the wait woke
    with pytest.raises(KeyboardInterrupt):
        agent.run("go")
    timer.join()
    assert spawned.is_set()
    assert _settled(lambda: children() <= before)
    assert server.requests == []
    agent.close()
