"""Broken and bent SSE streams: garbage lines, a missing ``[DONE]``, bytes split in the
middle of a UTF-8 character. One test per row of ``docs/reliability.md``.

As in ``test_http_faults``, the fault meets the second model call, after a tool round, so a
failed run must hand back the tool's result and no half answer.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from agentkit import IncompleteStreamError, InvalidResponseError, ServerError
from agentkit.testing import Reply, ScriptedServer

from ._support import (
    MODEL,
    STREAMING,
    SUNNY_PARIS,
    Driver,
    assert_carries_transcript,
    run_expecting,
    run_with,
    tool_messages,
    weather_calls,
)

CALL = Reply.tool_calls(("get_weather", {"city": "Paris"}))
ANSWER = "Sunny and 23 °C in Paris — café weather ☀️ 你好 🙂 naïve"


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def answer_chunks(text: str = ANSWER, *, finish: bool = True) -> list[dict[str, Any]]:
    """A streamed text answer, one word per chunk, with (or without) its finish reason."""
    words = text.split(" ")
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": word if not i else " " + word}) for i, word in enumerate(words)]
    if finish:
        chunks.append(chunk({}, "stop"))
    return chunks


def sse_bytes(event: dict[str, Any] | str) -> bytes:
    """An event as ``Reply.sse`` sends it."""
    if isinstance(event, str):
        return event.encode()
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def splits_inside_characters(body: bytes) -> tuple[int, ...]:
    """``split_bytes`` sizes that cut ``body`` before every UTF-8 continuation byte, so each
    multi-byte character arrives in two or more pieces."""
    cuts = [i for i, byte in enumerate(body) if 0x80 <= byte <= 0xBF]
    edges = [0, *cuts]
    return tuple(b - a for a, b in itertools.pairwise(edges) if b > a)


def script(server: ScriptedServer, fault: Reply) -> None:
    server.queue(CALL, fault)


def assert_failed_after_the_tool(error: BaseException, server: ScriptedServer) -> None:
    messages = assert_carries_transcript(error)
    assert [m["content"] for m in tool_messages(messages)] == [SUNNY_PARIS]
    assert messages[-1]["role"] == "tool", "no half answer was added to the transcript"
    assert server.request_count == 2, "a stream is not resent once the caller saw part of it"


# --- garbage --------------------------------------------------------------------------------

GARBAGE_LINES: list[dict[str, Any] | str] = [
    ": a comment the server sends as a keep-alive\n\n",
    "garbage-without-a-colon\n\n",
    "event: ping\ndata:\n\n",  # an event with empty data
    "retry: 3000\nid: 41\n\n",
    "\n\n\n",  # stray blank lines
    "x-vendor-field: whatever\n\n",
    "event: message\r\n",  # a CRLF line, then a chunk on the same event
]


@pytest.mark.parametrize("driver", STREAMING)
def test_sse_stream_with_garbage_lines(server: ScriptedServer, driver: Driver) -> None:
    # lines that carry no data are skipped, as the SSE standard says; the answer is whole
    chunks = answer_chunks()
    events: list[dict[str, Any] | str] = [chunks[0]]
    for garbage, text_chunk in zip(GARBAGE_LINES, chunks[1:], strict=False):
        events += [garbage, text_chunk]
    events += chunks[len(GARBAGE_LINES) + 1 :]
    script(server, Reply.sse(events))
    result = run_with(driver, server.base_url)
    assert result.output == ANSWER
    assert server.request_count == 2


BAD_DATA = {
    "not_json": "data: {this is not json\n\n",
    "json_not_a_chunk": 'data: ["a", "list"]\n\n',
    "error_object": 'data: {"error": {"message": "the engine fell over", "code": 500}}\n\n',
}


@pytest.mark.parametrize("driver", STREAMING)
@pytest.mark.parametrize("line", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_sse_stream_with_garbage_data(server: ScriptedServer, driver: Driver, line: str) -> None:
    # a data line that is no chunk cannot be skipped: the answer would have a hole in it
    chunks = answer_chunks()
    script(server, Reply.sse([*chunks[:4], line, *chunks[4:]]))
    expected = ServerError if "error" in line else InvalidResponseError
    error = run_expecting(expected, driver, server.base_url)
    if expected is ServerError:
        assert "the engine fell over" in str(error)
    else:
        assert line[6:16] in str(error), "the message quotes what arrived"
    assert_failed_after_the_tool(error, server)


# --- a missing [DONE] -----------------------------------------------------------------------


@pytest.mark.parametrize("driver", STREAMING)
def test_sse_stream_missing_done_after_the_finish_reason(
    server: ScriptedServer, driver: Driver
) -> None:
    # the finish reason arrived and only [DONE] is missing: the answer is whole
    script(server, Reply.sse(answer_chunks(), done=False))
    result = run_with(driver, server.base_url)
    assert result.output == ANSWER
    assert server.request_count == 2


@pytest.mark.parametrize("driver", STREAMING)
@pytest.mark.parametrize("what", ["text", "tool_call"])
def test_sse_stream_missing_done_and_finish_reason(
    server: ScriptedServer, driver: Driver, what: str
) -> None:
    # the stream just stops: never taken for a whole answer, never a half tool call run
    if what == "text":
        chunks = answer_chunks(finish=False)
    else:
        head = {
            "index": 0,
            "id": "call_x",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": '},
        }
        chunks = [chunk({"role": "assistant", "content": ""}), chunk({"tool_calls": [head]})]
    script(server, Reply.sse(chunks, done=False))
    error = run_expecting(IncompleteStreamError, driver, server.base_url)
    assert_failed_after_the_tool(error, server)
    assert len(weather_calls) == 1, "the half tool call was never run"


@pytest.mark.parametrize("driver", STREAMING)
def test_sse_stream_empty_falls_back_to_a_plain_request(
    server: ScriptedServer, driver: Driver
) -> None:
    # llama.cpp answers tools + stream=True with an empty 200: the round is sent unstreamed
    script(server, Reply.empty_stream())
    server.queue(Reply.text(ANSWER))
    result = run_with(driver, server.base_url)
    assert result.output == ANSWER
    assert [r.stream for r in server.requests] == [True, True, False]


# --- bytes split inside a character ---------------------------------------------------------


def test_chunk_split_mid_utf8_character(server: ScriptedServer, driver: Driver) -> None:
    if driver in STREAMING:
        events = answer_chunks()
        body = b"".join(map(sse_bytes, events)) + b"data: [DONE]\n\n"
        reply = Reply.sse(events)
    else:
        completion = {
            "id": "chatcmpl-7",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": ANSWER},
                }
            ],
        }
        body = json.dumps(completion, ensure_ascii=False).encode()
        reply = Reply.raw(body)
    sizes = splits_inside_characters(body)
    assert len(sizes) >= 12, "the answer has many multi-byte characters to split"
    script(server, reply.with_(split_bytes=sizes))
    result = run_with(driver, server.base_url)
    assert result.output == ANSWER
    assert "\ufffd" not in json.dumps(result.messages, ensure_ascii=False)
