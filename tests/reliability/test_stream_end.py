"""A stream is whole at ``[DONE]`` and comes back at once: rows of ``docs/reliability.md``.

The review's server sent ``[DONE]`` and then kept the connection open (the answer came back
only at ``read_timeout``), or kept sending ``: ping`` comments (it never came back).

"At once" is said by order, not by a clock: the silence and the pings last longer than the
test may take (pytest's timeout), and so does the client's ``read_timeout``, so only the
end of the stream at ``[DONE]`` can bring the answer back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentkit import Agent, AsyncChatClient, ChatClient
from agentkit.testing import Reply, ScriptedServer

from ._support import INSTRUCTIONS, KEY, MODEL

USER = [{"role": "user", "content": "Hi"}]
PATIENT = 600.0  # read_timeout: longer than the test may take, so it never ends a read


def _chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


EVENTS = [_chunk("whole "), _chunk("answer"), _chunk(finish="stop")]
HELD_OPEN = Reply.sse(EVENTS).with_(hang_after=len(EVENTS) + 1)  # [DONE], then silence
# 100 s of pings, longer than the test may take
PINGING = Reply.sse([*EVENTS, "data: [DONE]\n\n", *[": ping\n\n"] * 20_000], done=False).with_(
    chunk_delay=0.005
)
# `data: [DONE]` ended by one line end, not the blank line that closes the event; then silence
UNCLOSED_DONE = Reply.sse([*EVENTS, "data: [DONE]\n"], done=False).with_(hang_after=len(EVENTS) + 1)
FAULTS = {"held_open": HELD_OPEN, "pinging": PINGING, "unclosed_done": UNCLOSED_DONE}


def _read(server: ScriptedServer, asynchronous: bool) -> str | None:
    if not asynchronous:
        with ChatClient(server.base_url, KEY, read_timeout=PATIENT) as client:
            stream = client.stream(model=MODEL, messages=USER)
            return stream.until_done().choices[0].message.content

    async def main() -> str | None:
        async with AsyncChatClient(server.base_url, KEY, read_timeout=PATIENT) as client:
            stream = client.stream(model=MODEL, messages=USER)
            completion = await stream.until_done()
            return completion.choices[0].message.content

    return asyncio.run(main())


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_stream_comes_back_at_done(
    server: ScriptedServer, fault: str, asynchronous: bool
) -> None:
    server.queue(FAULTS[fault])
    assert _read(server, asynchronous) == "whole answer"


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("driver", ["stream", "stream_async"])
def test_an_agent_run_comes_back_at_done(server: ScriptedServer, fault: str, driver: str) -> None:
    server.queue(FAULTS[fault], Reply.text("second"))
    if driver == "stream":
        chat = ChatClient(server.base_url, KEY, read_timeout=PATIENT)
        with chat, Agent(MODEL, (), INSTRUCTIONS, client=chat) as agent:
            events = list(agent.stream("Hi"))
            events += list(agent.stream("Again"))
    else:

        async def main() -> list[Any]:
            chat = AsyncChatClient(server.base_url, KEY, read_timeout=PATIENT)
            async with chat, Agent(MODEL, (), INSTRUCTIONS, client=chat) as agent:
                seen = [event async for event in agent.stream_async("Hi")]
                return seen + [event async for event in agent.stream_async("Again")]

        events = asyncio.run(main())
    outputs = [event.result.output for event in events if hasattr(event, "result")]
    assert outputs == ["whole answer", "second"]
    assert server.connections_opened == 2  # the held connection was dropped, not reused


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_well_behaved_stream_keeps_its_connection(
    server: ScriptedServer, asynchronous: bool
) -> None:
    server.queue(*[Reply.text("one two three").with_(chunk_delay=0.001)] * 3)
    if asynchronous:

        async def main() -> None:
            async with AsyncChatClient(server.base_url, KEY) as client:
                for _ in range(3):
                    await client.stream(model=MODEL, messages=USER).until_done()

        asyncio.run(main())
    else:
        with ChatClient(server.base_url, KEY) as client:
            for _ in range(3):
                client.stream(model=MODEL, messages=USER).until_done()
    assert server.connections_opened == 1
