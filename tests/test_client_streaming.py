"""Streaming through the client: real servers' streams replayed byte for byte, quirks, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import WAIT, wait_until, wait_until_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit import AsyncChatClient, ChatClient, RetryPolicy
from agentkit._errors import (
    AgentKitError,
    APIStatusError,
    BadRequestError,
    ContentModerationError,
    IncompleteStreamError,
    InvalidResponseError,
    ServerError,
)
from agentkit._events import ReasoningDelta, StreamDelta, TextDelta, ToolCallArgumentsDelta
from agentkit._wire import ChatCompletion
from agentkit.testing import Reply, ScriptedServer

DATA = Path(__file__).parent / "data"
SEED_STREAM = (DATA / "dashscope" / "http_stream.txt").read_bytes()
SEED_TEXT = "I am a large-scale language model from Alibaba Cloud, and my name is Qwen."
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_current_weather"}}]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


def _stream(
    server: ScriptedServer, reply: Reply, **options: Any
) -> tuple[list[StreamDelta], ChatCompletion]:
    server.queue(reply)
    options.setdefault("retry_base_delay", 0.001)
    with ChatClient(server.base_url, **options) as client:
        with client.stream(model="m", messages=USER, tools=TOOLS) as stream:
            deltas = list(stream)
        return deltas, stream.completion


def _text(deltas: list[StreamDelta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


def _arguments(deltas: list[StreamDelta], index: int = 0) -> str:
    return "".join(
        d.delta for d in deltas if isinstance(d, ToolCallArgumentsDelta) and d.index == index
    )


# --- the seed's stream and the captured ones ------------------------------------------------


def test_seed_stream_replayed_byte_for_byte(server: ScriptedServer) -> None:
    request = json.loads((DATA / "dashscope" / "http_stream_request.json").read_bytes())
    server.queue(Reply.replay(SEED_STREAM))
    with ChatClient(server.base_url, "sk-test") as client:
        del request["stream"]
        with client.stream(**request) as stream:
            deltas = list(stream)
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == [
        "I am",
        " a large-scale",
        " language model",
        " from Alibaba Cloud",
        ", and my name is Qwen.",
    ]
    assert all(isinstance(d, TextDelta) for d in deltas)
    completion = stream.completion
    assert completion.id == "chatcmpl-3bb05cf5cd819fbca5f0b8d67a025022"
    assert completion.model == "qwen-plus"
    assert completion.created == 1715931028
    assert completion.choices[0].message.content == SEED_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is None  # the seed's curl example did not ask for it
    sent = server.requests[0].json()
    assert sent["messages"] == request["messages"] and sent["stream"] is True


def _seed_sdk_stream() -> bytes:
    # Lines 2 to 6 of the reference carry one stray "}" each; repair exactly that.
    typo = '"},"function_call":null,"role":null,"tool_calls":null}'
    lines = (DATA / "dashscope" / "sdk_stream_chunks.jsonl").read_text().splitlines()
    fixed = [
        line.replace(typo, '","function_call":null,"role":null,"tool_calls":null}')
        for line in lines
    ]
    return "".join(f"data: {line}\n\n" for line in fixed).encode() + b"data: [DONE]\n\n"


def test_seed_sdk_stream_usage_from_the_last_chunk(server: ScriptedServer) -> None:
    deltas, completion = _stream(server, Reply.replay(_seed_sdk_stream()))
    assert _text(deltas) == SEED_TEXT
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 22,
        "completion_tokens": 16,
        "total_tokens": 38,
        "cached_tokens": 0,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
    }


def test_llama_cpp_forced_tool_call_stream(server: ScriptedServer) -> None:
    body = (DATA / "llama-cpp" / "req_forced_stream.response.txt").read_bytes()
    deltas, completion = _stream(server, Reply.replay(body))
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1  # the legacy function_call is not a 2nd call
    assert calls[0].function.name == "get_current_weather"  # set once, never glued together
    assert calls[0].id == "call__0_get_current_weather_cmpl-421dd54f-9ff2-42a6-9fc1-729145664d2b"
    assert calls[0].function.arguments == _arguments(deltas)
    json.loads(calls[0].function.arguments)
    assert {d.name for d in deltas if isinstance(d, ToolCallArgumentsDelta)} == {
        "get_current_weather"
    }


def test_llama_cpp_plain_stream_ends_with_length(server: ScriptedServer) -> None:
    body = (DATA / "llama-cpp" / "req_plain_stream.response.txt").read_bytes()
    deltas, completion = _stream(server, Reply.replay(body))
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == _text(deltas)
    assert _text(deltas).startswith("To find")


def test_llama_cpp_empty_stream_is_incomplete_and_not_retried(server: ScriptedServer) -> None:
    body = (DATA / "llama-cpp" / "req_auto_stream.response.txt").read_bytes()
    assert body == b""
    server.queue(Reply.replay(body, content_type="text/event-stream"), Reply.text("no"))
    with (
        ChatClient(server.base_url) as client,
        client.stream(model="m", messages=USER) as s,
        pytest.raises(IncompleteStreamError) as info,
    ):
        list(s)
    assert info.value.code == "empty_stream"
    assert "empty stream" in str(info.value)
    assert info.value.partial is None
    assert len(server.requests) == 1


def test_dashscope_tool_call_continuations(server: ScriptedServer) -> None:
    reply = Reply.tool_calls(
        ("get_current_weather", {"location": "Singapore"}, "call_a"),
        ("get_current_time", {}, "call_b"),
        style="dashscope",
        chunk_size=3,
    )
    deltas, completion = _stream(server, reply)
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("call_a", "function", "get_current_weather"),
        ("call_b", "function", "get_current_time"),
    ]
    assert json.loads(calls[0].function.arguments) == {"location": "Singapore"}
    assert json.loads(calls[1].function.arguments) == {}
    assert _arguments(deltas, 0) == calls[0].function.arguments
    first = next(d for d in deltas if isinstance(d, ToolCallArgumentsDelta))
    assert (first.call_id, first.name) == ("call_a", "get_current_weather")
    assert completion.choices[0].finish_reason == "tool_calls"


def test_reasoning_then_text(server: ScriptedServer) -> None:
    deltas, completion = _stream(server, Reply.text("It is 4.", reasoning="2 plus 2 is 4"))
    kinds = [type(d) for d in deltas]
    assert kinds.index(TextDelta) > kinds.index(ReasoningDelta)
    message = completion.choices[0].message
    assert message.reasoning_content == "2 plus 2 is 4"
    assert message.content == "It is 4."
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_text_tool_calls_streamed(server: ScriptedServer) -> None:
    reply = Reply.text_tool_calls(
        ("get_current_weather", {"location": "Hangzhou"}), content="Let me check.", chunk_size=4
    )
    deltas, completion = _stream(server, reply)
    assert "<tool" not in _text(deltas)
    message = completion.choices[0].message
    assert message.content == "Let me check." == _text(deltas)
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"location": "Hangzhou"}
    deltas, completion = _stream(server, reply, parse_text_tool_calls=False)
    assert "<tool_call>" in _text(deltas)
    assert completion.choices[0].message.tool_calls is None


# --- what the SSE rules say to ignore, and what is an error ---------------------------------


def _chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_comments_unknown_fields_and_crlf_are_ignored(server: ScriptedServer) -> None:
    reply = Reply.sse(
        [
            ": keep-alive\n\n",
            "event: ping\nid: 7\nretry: 100\nfoo: bar\nnonsense\n\n",
            "data: " + json.dumps(_chunk("Hel")) + "\r\n\r\n",
            "data:" + json.dumps(_chunk("lo")) + "\r\r",
            "data: \n\n",
            "data: " + json.dumps(_chunk(None, "stop")) + "\n\n",
        ]
    )
    deltas, completion = _stream(server, reply)
    assert _text(deltas) == "Hello"
    assert completion.choices[0].finish_reason == "stop"


def test_a_data_line_that_is_not_json_is_named(server: ScriptedServer) -> None:
    reply = Reply.sse([_chunk("a"), "data: {not json at all\n\n", _chunk("b", "stop")])
    with pytest.raises(InvalidResponseError) as info:
        _stream(server, reply, max_retries=0)
    assert "not a valid chunk" in str(info.value)
    assert "{not json at all" in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("event", "cls", "status"),
    [
        (
            {
                "error": {
                    "code": "data_inspection_failed",
                    "message": "Output data may contain inappropriate content.",
                    "type": "data_inspection_failed",
                },
                "id": "chatcmpl-1",
            },
            ContentModerationError,
            200,
        ),
        (
            {
                "object": "error",
                "error": {"message": "context too long", "type": "BadRequestError", "code": 400},
            },
            BadRequestError,
            400,
        ),
        ({"error": {"message": "engine died", "code": 500}}, ServerError, 500),
        ("event: error\ndata: upstream went away\n\n", APIStatusError, 200),
    ],
)
def test_error_inside_the_stream_is_mapped(
    server: ScriptedServer, event: Any, cls: type[APIStatusError], status: int
) -> None:
    reply = Reply.sse([_chunk("partial "), event], done=False)
    with pytest.raises(APIStatusError) as info:
        _stream(server, reply, max_retries=3)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.request_id == "req-1"
    assert len(server.requests) == 1  # something was shown: never retried


def test_error_status_body_is_read(server: ScriptedServer) -> None:
    reply = Reply.error(400, "tools cannot be used with stream", code="invalid_parameter")
    with pytest.raises(BadRequestError) as info:
        _stream(server, reply)
    assert "tools cannot be used with stream" in str(info.value)
    assert info.value.code == "invalid_parameter"


def test_json_answer_to_a_stream_request_is_accepted(server: ScriptedServer) -> None:
    deltas, completion = _stream(
        server,
        Reply.tool_calls(("get_current_weather", {"x": 1}), content="Checking.", stream=False),
    )
    assert _text(deltas) == "Checking."
    assert json.loads(_arguments(deltas)) == {"x": 1}
    assert completion.choices[0].message.tool_calls is not None


def test_html_answer_to_a_stream_request(server: ScriptedServer) -> None:
    reply = Reply.raw("<html><title>Sign in</title></html>", content_type="text/html")
    with pytest.raises(InvalidResponseError, match="HTML"):
        _stream(server, reply)


# --- cuts, splits and the stream object ----------------------------------------------------


def test_cut_mid_tool_call_keeps_the_partial(server: ScriptedServer) -> None:
    reply = Reply.tool_calls(
        ("get_current_weather", {"location": "Singapore"}), chunk_size=4
    ).with_(cut_after=4)
    with pytest.raises(IncompleteStreamError) as info:
        _stream(server, reply)
    partial = info.value.partial
    assert partial is not None
    calls = partial.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_current_weather"
    assert calls[0].function.arguments  # some arguments arrived, not whole
    assert "cut" in str(info.value)


def test_finish_reason_then_cut_is_whole(server: ScriptedServer) -> None:
    reply = Reply.sse([_chunk("done"), _chunk(None, "stop")], done=False).with_(cut_after=2)
    deltas, completion = _stream(server, reply)
    assert _text(deltas) == "done"
    assert completion.choices[0].finish_reason == "stop"


def test_end_without_done_or_finish_reason_is_incomplete(server: ScriptedServer) -> None:
    reply = Reply.sse([_chunk("half an ans")], done=False)
    shown: list[StreamDelta] = []
    with ChatClient(server.base_url) as client, client.stream(model="m", messages=USER) as s:
        server.queue(reply)
        with pytest.raises(IncompleteStreamError):
            for delta in s:
                shown.append(delta)
        with pytest.raises(AgentKitError, match="not been read"):
            _ = s.completion
    assert _text(shown) == "half an ans"


@pytest.mark.parametrize("split", [1, 7, (10, 1, 1, 1), (45, 2)])
def test_any_split_of_the_bytes_gives_the_same_answer(
    server: ScriptedServer, split: int | tuple[int, ...]
) -> None:
    body = "data: " + json.dumps(_chunk("杭州今天下雨，🌧️ 31°C"), ensure_ascii=False) + "\n\n"
    body += "data: " + json.dumps(_chunk(None, "stop")) + "\n\ndata: [DONE]\n\n"
    reply = Reply.replay(body.encode(), content_type="text/event-stream")
    deltas, completion = _stream(server, reply.with_(split_bytes=split))
    assert completion.choices[0].message.content == "杭州今天下雨，🌧️ 31°C" == _text(deltas)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=10))
def test_seed_stream_under_random_splits(shared_server: ScriptedServer, sizes: list[int]) -> None:
    reply = Reply.replay(SEED_STREAM).with_(split_bytes=sizes, chunk_delay=0.0005)
    deltas, completion = _stream(shared_server, reply)
    assert _text(deltas) == SEED_TEXT == completion.choices[0].message.content


def test_early_exit_releases_the_connection(server: ScriptedServer) -> None:
    server.queue(Reply.text("one two three four five"), Reply.text("next"))
    with ChatClient(server.base_url) as client:
        with client.stream(model="m", messages=USER) as stream:
            first = next(iter(stream))
        assert isinstance(first, TextDelta)
        answer = client.create(model="m", messages=USER)
        assert answer.choices[0].message.content == "next"


def test_a_failed_or_closed_stream_sends_nothing_more(server: ScriptedServer) -> None:
    server.queue(Reply.error(400, "no"), Reply.text("one two three"), Reply.text("spare"))
    with ChatClient(server.base_url) as client:
        failed = client.stream(model="m", messages=USER)
        with pytest.raises(BadRequestError):
            next(failed)
        assert list(failed) == []
        closed = client.stream(model="m", messages=USER)
        next(closed)
        closed.close()
        assert list(closed) == []
    assert len(server.requests) == 2


def test_create_accepts_a_stream_it_did_not_ask_for(server: ScriptedServer) -> None:
    server.queue(Reply.replay(SEED_STREAM))
    with ChatClient(server.base_url) as client:
        completion = client.create(model="m", messages=USER)
    assert completion.choices[0].message.content == SEED_TEXT


def test_consecutive_streams_reuse_one_connection(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b"), Reply.replay(SEED_STREAM), Reply.text("c"))
    with ChatClient(server.base_url) as client:
        for _ in range(3):
            with client.stream(model="m", messages=USER) as stream:
                stream.until_done()
    assert server.connections_opened == 1


# --- async parity ------------------------------------------------------------------------


def test_async_streaming_parity(server: ScriptedServer) -> None:
    llama = (DATA / "llama-cpp" / "req_forced_stream.response.txt").read_bytes()
    server.queue(
        Reply.replay(SEED_STREAM),
        Reply.replay(llama),
        Reply.text("x y z").with_(cut_after=3),
        Reply.sse([_chunk("a"), {"error": {"code": "data_inspection_failed", "message": "no"}}]),
        Reply.empty_stream(),
        Reply.text("one two three"),
        Reply.text("after"),
    )

    async def main() -> list[Any]:
        out: list[Any] = []
        async with AsyncChatClient(server.base_url, retry_base_delay=0.001) as client:
            for _ in range(5):
                try:
                    async with client.stream(model="m", messages=USER) as stream:
                        deltas = [d async for d in stream]
                    out.append((_text(deltas), stream.completion))
                except AgentKitError as exc:
                    out.append(exc)
            async with client.stream(model="m", messages=USER) as stream:
                async for _ in stream:
                    break
            out.append((await client.create(model="m", messages=USER)).choices[0].message)
        return out

    seed, llama_cpp, cut, moderated, empty, after = asyncio.run(main())
    assert seed[0] == SEED_TEXT and seed[1].choices[0].message.content == SEED_TEXT
    calls = llama_cpp[1].choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_current_weather"]
    assert isinstance(cut, IncompleteStreamError) and cut.partial is not None
    assert isinstance(moderated, ContentModerationError)
    assert isinstance(empty, IncompleteStreamError) and empty.code == "empty_stream"
    assert after.content == "after"
    assert len(server.requests) == 7


def test_async_cancellation_closes_the_stream_and_leaves_the_client_usable(
    server: ScriptedServer,
) -> None:
    server.queue(Reply.text("one two three").with_(hang_after=2), Reply.text("still here"))

    async def main() -> tuple[str | None, bool]:
        # The stream stalls for longer than the test may take: only a cancel ends it.
        async with AsyncChatClient(server.base_url, read_timeout=600) as client:
            stream = client.stream(model="m", messages=USER)
            first = asyncio.Event()

            async def consume() -> None:
                async with stream:
                    async for _ in stream:
                        first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            released = stream._response is None
            answer = await client.create(model="m", messages=USER)
            return answer.choices[0].message.content, released

    assert asyncio.run(main()) == ("still here", True)


# --- an interrupt in the middle of a stream's I/O --------------------------------------------


class _InterruptedBody(httpx.SyncByteStream):
    """A body whose first read is interrupted (Ctrl-C while its bytes are awaited)."""

    def __init__(self, body: httpx.SyncByteStream) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        raise KeyboardInterrupt
        yield b""  # makes this a generator  # pragma: no cover

    def close(self) -> None:
        self._body.close()


class _CtrlCOnRead(httpx.HTTPTransport):
    """The real transport, whose answers are interrupted as their body is read."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_InterruptedBody(response.stream),
            extensions=response.extensions,
        )


def test_ctrl_c_while_a_stream_reads_lets_its_connection_go(server: ScriptedServer) -> None:
    # No `with` around the stream: the stream itself lets the connection go, and is over.
    server.queue(Reply.text("one two three").with_(hang_after=1))
    with (
        httpx.Client(transport=_CtrlCOnRead()) as http,
        ChatClient(server.base_url, http_client=http) as client,
    ):
        stream = client.stream(model="m", messages=USER)
        with pytest.raises(KeyboardInterrupt):
            next(stream)
        wait_until(lambda: server.open_connections == 0)
        assert list(stream) == []
    assert len(server.requests) == 1


def test_a_cancel_while_a_stream_reads_gives_back_its_connection_and_slot(
    server: ScriptedServer,
) -> None:
    # The answer stalls: only the cancel ends the read. No `async with` around the stream,
    # and a pool of one connection: the next request goes through only once the stream
    # itself gave back its connection and its slot of the client's bound.
    server.queue(Reply.text("one two three").with_(hang_after=2), Reply.text("still here"))

    async def main() -> str | None:
        one = httpx.Limits(max_connections=1)
        async with AsyncChatClient(server.base_url, pool_limits=one) as client:
            stream = client.stream(model="m", messages=USER)
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in stream:
                    first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until_async(lambda: server.open_connections == 0)
            assert [delta async for delta in stream] == []
            answer = await client.create(model="m", messages=USER)
            return answer.choices[0].message.content

    assert asyncio.run(main()) == "still here"
    assert len(server.requests) == 2


class _WaitFailed(Exception):
    """The retry policy's wait itself failed."""


def _failing_wait(delay: float) -> None:
    raise _WaitFailed


async def _failing_wait_async(delay: float) -> None:
    raise _WaitFailed


def test_a_failed_wait_before_a_retry_ends_the_stream_without_resending(
    server: ScriptedServer,
) -> None:
    # The wait before a retry fails (an injected sleep, a signal handler raising): its own
    # error reaches the caller as it is, and iterating again sends nothing (it re-sent the
    # request, outside the retry count).
    policy = RetryPolicy(sleep=_failing_wait, async_sleep=_failing_wait_async)
    server.queue(Reply.error(503, "busy"), Reply.error(503, "busy"), Reply.text("unsent"))
    with ChatClient(server.base_url, retry=policy) as client:
        stream = client.stream(model="m", messages=USER)
        with pytest.raises(_WaitFailed):
            next(stream)
        assert list(stream) == []

    async def main() -> list[StreamDelta]:
        async with AsyncChatClient(server.base_url, retry=policy) as client:
            stream = client.stream(model="m", messages=USER)
            with pytest.raises(_WaitFailed):
                await anext(stream)
            return [delta async for delta in stream]

    assert asyncio.run(main()) == []
    assert len(server.requests) == 2
