"""The async client's bound on requests in flight: its pool's size, a slot per request or
stream, given back on every path (done, broken off, cancelled, failed)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agentkit import AsyncChatClient
from agentkit._errors import APIConnectionError, APIStatusError, IncompleteStreamError
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-inflight-test"
USER = [{"role": "user", "content": "Hi"}]
ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)


async def answer(client: AsyncChatClient) -> str | None:
    completion = await asyncio.wait_for(client.create(model="m", messages=USER), 5)
    return completion.choices[0].message.content


def test_every_path_gives_its_slot_back(server: ScriptedServer) -> None:
    """With one slot, any path that kept it would make the last request wait forever."""

    async def main() -> None:
        async with AsyncChatClient(server.base_url, KEY, pool_limits=ONE, max_retries=0) as client:
            # A stream broken off after its first delta.
            server.queue(Reply.text("one two three four"))
            async with client.stream(model="m", messages=USER) as stream:
                async for _ in stream:
                    break
            # A request cancelled while the server thinks.
            server.queue(Reply.text("late").with_(delay=5))
            thinking = asyncio.create_task(client.create(model="m", messages=USER))
            await asyncio.to_thread(server.wait_for_requests, 2)
            thinking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await thinking
            # A stream cancelled while it waits for its next event.
            server.queue(Reply.text("one two three").with_(hang_after=2))

            async def read_all() -> None:
                async with client.stream(model="m", messages=USER) as stalled:
                    async for _ in stalled:
                        pass

            reading = asyncio.create_task(read_all())
            await asyncio.to_thread(server.wait_for_requests, 3)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            # An error status, a stream cut mid-way, a connection reset while opening one.
            server.queue(Reply.error(500), Reply.text("a b c d").with_(cut_after=2), Reply.reset())
            with pytest.raises(APIStatusError):
                await client.create(model="m", messages=USER)
            with pytest.raises(IncompleteStreamError):
                async with client.stream(model="m", messages=USER) as cut:
                    async for _ in cut:
                        pass
            with pytest.raises(APIConnectionError):
                async with client.stream(model="m", messages=USER) as reset:
                    async for _ in reset:
                        pass
            server.queue(Reply.text("still here"))
            assert await answer(client) == "still here"

    asyncio.run(main())


def test_a_stream_holds_its_slot_until_it_is_released(server: ScriptedServer) -> None:
    async def main() -> None:
        async with AsyncChatClient(server.base_url, KEY, pool_limits=ONE) as client:
            server.queue(Reply.text("one two three"), Reply.text("next"))
            async with client.stream(model="m", messages=USER) as stream:
                first = await anext(stream)
                waiting = asyncio.create_task(answer(client))
                await asyncio.sleep(0.2)
                assert not waiting.done()
                assert server.request_count == 1  # not sent while the stream is open
                rest = [delta async for delta in stream]
            assert first is not None and rest
            assert await waiting == "next"

    asyncio.run(main())


@pytest.mark.parametrize("streamed", [False, True])
def test_many_runs_share_a_small_pool(server: ScriptedServer, streamed: bool) -> None:
    server.respond_with(lambda request: Reply.text(request.messages[-1]["content"]))

    async def ask(client: AsyncChatClient, number: int) -> str | None:
        messages = [{"role": "user", "content": f"q{number}"}]
        if not streamed:
            completion = await client.create(model="m", messages=messages)
            return completion.choices[0].message.content
        async with client.stream(model="m", messages=messages) as stream:
            return (await stream.until_done()).choices[0].message.content

    async def main() -> list[str | None]:
        limits = httpx.Limits(max_connections=3, max_keepalive_connections=3)
        async with AsyncChatClient(server.base_url, KEY, pool_limits=limits) as client:
            return await asyncio.wait_for(asyncio.gather(*(ask(client, n) for n in range(60))), 30)

    assert asyncio.run(main()) == [f"q{n}" for n in range(60)]
    assert server.connections_opened <= 3
