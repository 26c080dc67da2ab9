"""Racing a request's work against the client leaving (``until_disconnect``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentkit.serve._asgi import ClientGone, until_disconnect


def _receiver() -> tuple[asyncio.Queue[dict[str, Any]], Any]:
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await messages.get()

    return messages, receive


def test_the_works_answer_comes_back_and_nothing_is_left_waiting() -> None:
    async def scenario() -> None:
        _, receive = _receiver()

        async def work() -> str:
            await asyncio.sleep(0)
            return "answer"

        before = len(asyncio.all_tasks())
        assert await until_disconnect(receive, work()) == "answer"
        await asyncio.sleep(0)  # the watcher's cancellation is processed
        assert len(asyncio.all_tasks()) == before

    asyncio.run(scenario())


def test_a_client_leaving_stops_the_work_and_its_cleanup_ends_first() -> None:
    async def scenario() -> list[str]:
        messages, receive = _receiver()
        said: list[str] = []
        started = asyncio.Event()

        async def work() -> str:
            try:
                started.set()
                await asyncio.Event().wait()  # a tool that never ends
            finally:
                await asyncio.sleep(0)  # cleanup that itself waits
                said.append("cleaned up")
            return "never"

        async def leave() -> None:
            await started.wait()
            await messages.put({"type": "http.request", "body": b"", "more_body": False})
            await messages.put({"type": "http.disconnect"})

        leaving = asyncio.ensure_future(leave())
        with pytest.raises(ClientGone):
            await until_disconnect(receive, work())
        said.append("ClientGone")
        await leaving
        return said

    assert asyncio.run(scenario()) == ["cleaned up", "ClientGone"]


def test_the_request_cancelled_from_outside_cancels_the_work_not_client_gone() -> None:
    async def scenario() -> list[str]:
        _, receive = _receiver()
        said: list[str] = []
        started = asyncio.Event()

        async def work() -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                said.append("work cancelled")
                raise

        request = asyncio.ensure_future(until_disconnect(receive, work()))
        await started.wait()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        return said

    assert asyncio.run(scenario()) == ["work cancelled"]


def test_a_work_failure_is_raised_as_is() -> None:
    async def scenario() -> None:
        _, receive = _receiver()

        async def work() -> None:
            raise ValueError("the store is away")

        with pytest.raises(ValueError, match="the store is away"):
            await until_disconnect(receive, work())

    asyncio.run(scenario())
