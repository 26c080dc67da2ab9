"""Cancelling a run: prompt, transcript kept, tool tasks cancelled, nothing left behind."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import pytest
from _helpers import assert_resendable, wait_until, wait_until_async

from agentkit import Agent, ChatClient, tool
from agentkit._agent import Hooks
from agentkit._calls import PlannedCall
from agentkit._events import TextDelta, ToolResult
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-cancel-test"


@tool
def quick() -> str:
    """Answers at once."""
    return "quick result"


def test_cancelling_run_async_cancels_tool_tasks_and_keeps_the_transcript(
    server: ScriptedServer,
) -> None:
    state: dict[str, Any] = {"cancelled": False}

    @tool
    async def slow() -> str:
        """Takes forever."""
        state["entered"].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return "late"

    server.queue(Reply.tool_calls(("quick", {}, "q1"), ("slow", {}, "s1")))

    async def main() -> None:
        state["entered"] = asyncio.Event()
        quick_done = asyncio.Event()

        def after_tool(call: PlannedCall, result: ToolResult) -> None:
            quick_done.set()

        async with Agent(
            "m",
            [quick, slow],
            base_url=server.base_url,
            api_key=KEY,
            hooks=Hooks(after_tool_call=after_tool),
        ) as agent:
            task = asyncio.create_task(agent.run_async("go"))
            await state["entered"].wait()
            await quick_done.wait()  # cancel with one call done and one in flight
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as caught:
                await task
            assert state["cancelled"]  # the slow call was cancelled, not awaited for 30 s
            assert task.cancelled()  # asyncio semantics are kept
            messages = caught.value.messages  # type: ignore[attr-defined]
            assert_resendable(messages)
            assert messages[-2]["content"] == "quick result"
            assert "cancelled" in messages[-1]["content"]

            # The same agent and client go on working; the transcript resends as it is.
            server.queue(Reply.text("Resumed."))
            result = await agent.run_async(messages)
            assert result.output == "Resumed."
            assert server.requests[-1].messages == messages

    asyncio.run(main())
    assert state["cancelled"]


def test_cancelling_during_a_model_call_closes_the_connection(server: ScriptedServer) -> None:
    server.queue(Reply.text("slow answer").with_(delay=0.5), Reply.text("next"))

    async def main() -> None:
        async with Agent("m", base_url=server.base_url, api_key=KEY) as agent:
            task = asyncio.create_task(agent.run_async("go"))
            await asyncio.to_thread(server.wait_for_requests, 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as caught:
                await task
            assert caught.value.messages == [  # type: ignore[attr-defined]
                {"role": "user", "content": "go"}
            ]
            await wait_until_async(lambda: server.open_connections == 0)
            assert (await agent.run_async("again")).output == "next"

    asyncio.run(main())


def test_cancelling_stream_async_closes_the_response_stream(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c d e f g h", chunk_size=2).with_(chunk_delay=0.2))

    async def consume(agent: Agent[str], first: asyncio.Event) -> None:
        async for event in agent.stream_async("go"):
            if isinstance(event, TextDelta):
                first.set()

    async def main() -> None:
        async with Agent("m", base_url=server.base_url, api_key=KEY) as agent:
            first = asyncio.Event()
            task = asyncio.create_task(consume(agent, first))
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until_async(lambda: server.open_connections == 0)

    asyncio.run(main())


def test_asyncio_timeout_around_run_async(server: ScriptedServer) -> None:
    @tool
    async def forever() -> str:
        """Never ends."""
        await asyncio.sleep(30)
        return "never"

    server.queue(Reply.tool_calls(("forever", {})))

    async def main() -> None:
        async with Agent("m", [forever], base_url=server.base_url, api_key=KEY) as agent:
            with pytest.raises(TimeoutError) as caught:  # the tool sleeps 30 s: not awaited
                async with asyncio.timeout(0.3):
                    await agent.run_async("go")
            # asyncio.timeout turned our CancelledError into TimeoutError; it is the cause.
            messages = caught.value.__cause__.messages  # type: ignore[union-attr]
            assert "cancelled" in messages[-1]["content"]

    asyncio.run(main())


def test_no_thread_or_connection_is_left_behind(server: ScriptedServer) -> None:
    release = threading.Event()
    started = threading.Event()

    @tool
    def blocking(n: int) -> str:
        """Blocks until released."""
        started.set()
        release.wait(60)
        returned.set()
        return "done"

    returned = threading.Event()
    server.queue(Reply.tool_calls(("blocking", {"n": 1}), ("blocking", {"n": 2})), Reply.text("ok"))
    before = set(threading.enumerate())  # by identity: another test's thread may end meanwhile

    async def main() -> None:
        agent = Agent("m", [blocking], base_url=server.base_url, api_key=KEY)
        task = asyncio.create_task(agent.run_async("go"))
        await asyncio.to_thread(started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # At once, although the sync tool keeps its thread until it returns.
        assert not returned.is_set()
        release.set()
        await agent.aclose()

    asyncio.run(main())
    wait_until(lambda: set(threading.enumerate()) <= before)
    wait_until(lambda: server.open_connections == 0)


def test_ctrl_c_during_a_sync_run(server: ScriptedServer) -> None:
    release = threading.Event()
    started = threading.Event()

    @tool
    def blocking() -> str:
        """Blocks until released."""
        started.set()
        release.wait(10)
        return "done"

    quick_done = threading.Event()

    def press_ctrl_c() -> None:
        # Ctrl-C with one call done and one still running.
        if started.wait(30) and quick_done.wait(30):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def after_tool(call: PlannedCall, result: ToolResult) -> None:
        quick_done.set()

    server.queue(Reply.tool_calls(("blocking", {}, "b1"), ("quick", {}, "q1")))
    presser = threading.Thread(target=press_ctrl_c)
    with (
        ChatClient(server.base_url, KEY) as client,
        Agent(
            "m", [blocking, quick], client=client, hooks=Hooks(after_tool_call=after_tool)
        ) as agent,
    ):
        presser.start()
        try:
            with pytest.raises(KeyboardInterrupt) as caught:
                agent.run("go")
        finally:
            release.set()
            presser.join()
        messages = caught.value.messages  # type: ignore[attr-defined]
        assert_resendable(messages)
        assert [m["content"] for m in messages[-2:]] == [
            "tool blocking was cancelled before it finished",
            "quick result",
        ]
        server.queue(Reply.text("after"))
        assert agent.run(messages).output == "after"


def test_ctrl_c_during_a_sync_stream_closes_it(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c d e f g h", chunk_size=2).with_(chunk_delay=0.2))
    main_thread = threading.main_thread().ident or 0
    with ChatClient(server.base_url, KEY) as client, Agent("m", client=client) as agent:
        with pytest.raises(KeyboardInterrupt) as caught:
            for event in agent.stream("go"):
                if isinstance(event, TextDelta):
                    # Ctrl-C lands while the next chunk is awaited from the socket.
                    threading.Timer(0.05, signal.pthread_kill, (main_thread, signal.SIGINT)).start()
        assert caught.value.messages == [{"role": "user", "content": "go"}]  # type: ignore[attr-defined]
        wait_until(lambda: server.open_connections == 0)
        server.queue(Reply.text("after"))
        assert agent.run("again").output == "after"
