"""A whole-request deadline and a cap on the answer's size: rows of ``docs/reliability.md``.

``read_timeout`` bounds one read, so a server that trickles its body a byte at a time, or
sends SSE keep-alive comments forever, never timed out; and a 400 MB body was read whole.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

import pytest

from agentkit import (
    Agent,
    AsyncChatClient,
    ChatClient,
    ConfigurationError,
    DeadlineExceededError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
)
from agentkit.testing import Reply, ScriptedServer

from ._support import INSTRUCTIONS, KEY, MODEL

USER = [{"role": "user", "content": "Hi"}]
# The slow answers and the read timeout outlast the test's own timeout (pytest's), so only
# the limit under test can end a request: "in time" is said by order, not by a clock.
TRICKLED = Reply.text("a slow answer").with_(split_bytes=1, chunk_delay=0.2)  # ~80 s
PINGS = Reply.sse([": ping\n\n"] * 20_000, done=False).with_(chunk_delay=0.005)  # ~100 s
PATIENT = 600.0  # a read_timeout that never ends a read here


def _chunk(content: str) -> dict[str, Any]:
    return {"id": "c", "model": MODEL, "choices": [{"index": 0, "delta": {"content": content}}]}


def _get(server: ScriptedServer, how: str, **options: Any) -> Any:
    options.setdefault("read_timeout", PATIENT)
    options.setdefault("max_retries", 0)
    if how == "create":
        with ChatClient(server.base_url, KEY, **options) as client:
            return client.create(model=MODEL, messages=USER)
    if how == "stream":
        with ChatClient(server.base_url, KEY, **options) as client:
            return client.stream(model=MODEL, messages=USER).until_done()

    async def main() -> Any:
        async with AsyncChatClient(server.base_url, KEY, **options) as client:
            if how == "create_async":
                return await client.create(model=MODEL, messages=USER)
            return await client.stream(model=MODEL, messages=USER).until_done()

    return asyncio.run(main())


HOWS = ["create", "stream", "create_async", "stream_async"]


# --- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("fault", ["trickled", "pings"])
def test_a_trickling_or_pinging_server_meets_the_deadline(
    server: ScriptedServer, how: str, fault: str
) -> None:
    server.queue(TRICKLED if fault == "trickled" else PINGS)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        _get(server, how, deadline=0.5)
    # Not before the deadline; after it, only the deadline can have ended the ~80 s answer.
    assert time.monotonic() - started >= 0.45
    assert caught.value.deadline == 0.5
    assert "deadline of 0.5 s" in str(caught.value)
    assert not caught.value.retryable


def test_a_silent_server_meets_the_deadline_before_the_read_timeout(
    server: ScriptedServer,
) -> None:
    server.queue(Reply.hang())
    with pytest.raises(DeadlineExceededError):
        _get(server, "create", deadline=0.3, read_timeout=PATIENT)


def test_the_deadline_covers_the_retries(server: ScriptedServer) -> None:
    waits: list[float] = []
    # The server asks for 5 s; with 1 s left, waiting is pointless: its error comes at once.
    server.queue(Reply.error(503).with_(headers={"retry-after": "5"}))
    policy = RetryPolicy(sleep=waits.append)
    with pytest.raises(ServerError) as caught:
        _get(server, "create", deadline=1.0, retry=policy, max_retries=2)
    assert waits == []
    assert caught.value.retry_after == 5.0
    assert server.request_count == 1


def test_an_agent_run_meets_the_deadline_with_its_transcript(server: ScriptedServer) -> None:
    server.queue(TRICKLED)
    client = ChatClient(server.base_url, KEY, deadline=0.4, max_retries=0)
    with (
        client,
        Agent(MODEL, (), INSTRUCTIONS, client=client) as agent,
        pytest.raises(DeadlineExceededError) as caught,
    ):
        agent.run("Hi")
    assert caught.value.messages is not None
    assert caught.value.messages[-1] == {"role": "user", "content": "Hi"}


def test_the_default_deadline_is_finite_and_settable(server: ScriptedServer) -> None:
    with ChatClient(server.base_url) as default, ChatClient(server.base_url, deadline=None) as off:
        assert default.deadline == 1800.0
        assert off.deadline is None


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_a_bad_deadline_is_refused(server: ScriptedServer, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="deadline"):
        ChatClient(server.base_url, deadline=bad)


# --- the size cap ----------------------------------------------------------------------------


def _big_completion(size: int) -> bytes:
    return json.dumps(
        {
            "id": "big",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * size}}],
        }
    ).encode()


@pytest.mark.parametrize("how", ["create", "create_async"])
def test_a_body_past_the_cap_is_refused(server: ScriptedServer, how: str) -> None:
    server.queue(Reply.raw(_big_completion(3_000_000)))
    with pytest.raises(ResponseTooLargeError) as caught:
        _get(server, how, max_response_bytes=1_000_000)
    assert caught.value.limit == 1_000_000
    assert "max_response_bytes" in str(caught.value)


def test_a_body_under_the_cap_is_read(server: ScriptedServer) -> None:
    server.queue(Reply.raw(_big_completion(900_000)))
    completion = _get(server, "create", max_response_bytes=1_000_000)
    assert len(completion.choices[0].message.content) == 900_000


def test_a_compressed_bomb_counts_at_its_real_size(server: ScriptedServer) -> None:
    bomb = gzip.compress(_big_completion(20_000_000), compresslevel=9)  # ~20 kB on the wire
    server.queue(Reply.raw(bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ResponseTooLargeError):
        _get(server, "create", max_response_bytes=1_000_000)


@pytest.mark.parametrize("how", ["stream", "stream_async"])
def test_a_stream_past_the_cap_is_refused(server: ScriptedServer, how: str) -> None:
    server.queue(Reply.sse([_chunk("y" * 10_000)] * 200))  # ~2 MB
    with pytest.raises(ResponseTooLargeError):
        _get(server, how, max_response_bytes=1_000_000)


def test_the_default_cap_reads_a_large_answer(server: ScriptedServer) -> None:
    server.queue(Reply.raw(_big_completion(8_000_000)))
    assert len(_get(server, "create").choices[0].message.content) == 8_000_000


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_a_bad_cap_is_refused(server: ScriptedServer, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        ChatClient(server.base_url, max_response_bytes=bad)
