"""The stream assembler: captured and seed streams replayed, servers' quirks, cut streams."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit._assemble import StreamAssembler
from agentkit._errors import APIError, IncompleteStreamError
from agentkit._events import ReasoningDelta, StreamDelta, TextDelta, ToolCallArgumentsDelta
from agentkit._sse import SSEDecoder
from agentkit._wire import ChatCompletion, ChatCompletionChunk

DATA = Path(__file__).parent / "data"
LLAMA_FORCED = DATA / "llama-cpp" / "req_forced_stream.response.txt"
LLAMA_PLAIN = DATA / "llama-cpp" / "req_plain_stream.response.txt"
LLAMA_EMPTY = DATA / "llama-cpp" / "req_auto_stream.response.txt"
SEED_STREAM = DATA / "dashscope" / "http_stream.txt"
SEED_SDK_CHUNKS = DATA / "dashscope" / "sdk_stream_chunks.jsonl"

SEED_TEXT = "I am a large-scale language model from Alibaba Cloud, and my name is Qwen."


def replay(
    pieces: list[bytes], *, parse_text_tool_calls: bool = True
) -> tuple[StreamAssembler, list[StreamDelta]]:
    """Decode and assemble a byte stream as the client does; return the assembler and deltas."""
    decoder = SSEDecoder()
    assembler = StreamAssembler(parse_text_tool_calls=parse_text_tool_calls)
    deltas: list[StreamDelta] = []

    def handle(events: list[Any]) -> None:
        for event in events:
            if event.data == "[DONE]":
                deltas.extend(assembler.mark_done())
            else:
                deltas.extend(assembler.feed(ChatCompletionChunk.model_validate_json(event.data)))

    for piece in pieces:
        handle(decoder.feed(piece))
    handle(decoder.flush())
    return assembler, deltas


def feed_chunks(
    chunks: list[dict[str, Any]], *, done: bool = True, parse_text_tool_calls: bool = True
) -> tuple[StreamAssembler, list[StreamDelta]]:
    assembler = StreamAssembler(parse_text_tool_calls=parse_text_tool_calls)
    deltas: list[StreamDelta] = []
    for chunk in chunks:
        deltas.extend(assembler.feed(ChatCompletionChunk.model_validate(chunk)))
    if done:
        deltas.extend(assembler.mark_done())
    return assembler, deltas


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, index: int = 0
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "qwen-plus",
        "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish_reason}],
    }


def text_of(deltas: list[StreamDelta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


# --- replayed captures and seed examples ------------------------------------------------


def test_llama_cpp_forced_tool_call_name_set_once_arguments_concatenated() -> None:
    assembler, deltas = replay([LLAMA_FORCED.read_bytes()])
    completion = assembler.finish()
    message = completion.choices[0].message
    assert completion.id == "chatcmpl-421dd54f-9ff2-42a6-9fc1-729145664d2b"
    assert completion.model == "smollm2"
    assert completion.created == 1795729809
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1  # legacy ignored
    call = message.tool_calls[0]
    # Repeated in all eleven chunks; the openai SDK's accumulator glues it eleven times.
    assert call.function.name == "get_current_weather"
    assert call.id == "call__0_get_current_weather_cmpl-421dd54f-9ff2-42a6-9fc1-729145664d2b"
    assert call.type == "function"
    assert call.function.arguments == '{ "location": "Sydney" }'
    assert json.loads(call.function.arguments) == {"location": "Sydney"}
    arg_deltas = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert "".join(d.delta for d in arg_deltas) == call.function.arguments
    assert {(d.index, d.call_id, d.name) for d in arg_deltas} == {(0, call.id, call.function.name)}
    assert not [d for d in deltas if isinstance(d, TextDelta)]


def test_llama_cpp_plain_stream() -> None:
    assembler, deltas = replay([LLAMA_PLAIN.read_bytes()])
    completion = assembler.finish()
    content = completion.choices[0].message.content
    assert content is not None and content.startswith("To find the number of ways")
    assert content.endswith("The formula for combinations is n")
    assert text_of(deltas) == content
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is None


def test_llama_cpp_empty_200_stream_raises() -> None:
    raw = LLAMA_EMPTY.read_bytes()
    assert raw == b""
    assembler, deltas = replay([raw])
    assert deltas == [] and not assembler.received_any
    with pytest.raises(IncompleteStreamError, match="before any chunk") as caught:
        assembler.finish()
    assert caught.value.partial is None
    assert isinstance(caught.value, APIError) and caught.value.retryable


def test_seed_curl_stream_replayed_byte_for_byte() -> None:
    assembler, deltas = replay([SEED_STREAM.read_bytes()])
    assert assembler.done
    completion = assembler.finish()
    assert isinstance(completion, ChatCompletion)
    assert completion.id == "chatcmpl-3bb05cf5cd819fbca5f0b8d67a025022"
    assert completion.model == "qwen-plus"
    assert completion.created == 1715931028
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == SEED_TEXT
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert completion.usage is None
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == [
        "I am",
        " a large-scale",
        " language model",
        " from Alibaba Cloud",
        ", and my name is Qwen.",
    ]


def _seed_sdk_chunks() -> list[str]:
    """The SDK example's printed chunks, with the reference's one typo repaired.

    Lines 2 to 6 close ``delta`` right after ``content`` (``"...",}"function_call"...``
    as printed), which makes them invalid JSON; removing that one ``}`` restores the
    chunk every other line shows.
    """
    lines = SEED_SDK_CHUNKS.read_text(encoding="utf-8").splitlines()
    typo = '"},"function_call":null,"role":null,"tool_calls":null}'
    repaired = []
    for number, line in enumerate(lines):
        if 1 <= number <= 5:
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            assert line.count(typo) == 1
            line = line.replace(typo, '","function_call":null,"role":null,"tool_calls":null}')
        json.loads(line)
        repaired.append(line)
    return repaired


def test_seed_sdk_stream_with_usage_chunk() -> None:
    lines = _seed_sdk_chunks()
    last = json.loads(lines[-1])
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 38
    stream = "".join(f"data: {line}\n\n" for line in lines).encode() + b"data: [DONE]\n\n"
    assembler, deltas = replay([stream])
    completion = assembler.finish()
    assert completion.choices[0].message.content == SEED_TEXT
    assert text_of(deltas) == SEED_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 22,
        "completion_tokens": 16,
        "total_tokens": 38,
        "cached_tokens": 0,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert completion.created == 1719286190


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_any_split_of_the_captured_streams_assembles_the_same(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([LLAMA_FORCED, LLAMA_PLAIN, SEED_STREAM]))
    raw = path.read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    bounds = [0, *cuts, len(raw)]
    pieces = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    whole_assembler, whole_deltas = replay([raw])
    split_assembler, split_deltas = replay(pieces)
    assert split_deltas == whole_deltas
    assert split_assembler.finish() == whole_assembler.finish()


# --- servers' quirks ----------------------------------------------------------------------


def test_dashscope_continuation_chunks_with_empty_id_and_trailing_empty_function() -> None:
    # The shape DashScope streams tool calls in: the first chunk names the call; later
    # ones carry "id": "" and "type", and the last may carry "function": {}.
    chunks = [
        chunk({"content": None, "role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_8f08d2b0fc0c4d8fab7123", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "", "type": "function",
                               "function": {"arguments": " \"Hangzhou\"}"}}]}),
        chunk({"tool_calls": [{"function": {}, "index": 0, "id": "", "type": "function"}]},
              finish_reason="tool_calls"),
    ]  # fmt: skip
    assembler, deltas = feed_chunks(chunks)
    message = assembler.finish().choices[0].message
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.id == "call_8f08d2b0fc0c4d8fab7123"
    assert call.function.name == "get_current_weather"
    assert call.function.arguments == '{"location": "Hangzhou"}'
    assert [d.delta for d in deltas if isinstance(d, ToolCallArgumentsDelta)] == [
        '{"location":',
        ' "Hangzhou"}',
    ]


def _tool_call_chunks(style: str, calls: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """Chunks streaming ``calls`` (id, name, argument fragments) the way a server does."""
    out = []
    for index, (call_id, name, fragments) in enumerate(calls):
        for number, fragment in enumerate(fragments or [""]):
            first = number == 0
            delta: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
            if style == "openai":  # id, type and name once, then arguments only
                if first:
                    delta.update(id=call_id, type="function")
                    delta["function"]["name"] = name
            elif style == "llama.cpp":  # everything repeated, plus a legacy function_call
                delta.update(id=call_id, type="function")
                delta["function"]["name"] = name
            else:  # dashscope: "id": "" and "type" on continuations, a trailing {}
                delta.update(id=call_id if first else "", type="function")
                if first:
                    delta["function"]["name"] = name
            body: dict[str, Any] = {"tool_calls": [delta]}
            if style == "llama.cpp":
                body["function_call"] = {"name": name, "arguments": fragment}
            out.append(chunk(body))
        if style == "dashscope":
            out.append(chunk({"tool_calls": [
                {"index": index, "id": "", "type": "function", "function": {}}]}))  # fmt: skip
    out.append(chunk(finish_reason="tool_calls"))
    return out


_names = st.text(st.sampled_from("abcdefgh_"), min_size=1, max_size=12)
_fragments = st.lists(st.text(max_size=6), max_size=8)


@given(
    style=st.sampled_from(["openai", "llama.cpp", "dashscope"]),
    calls=st.lists(st.tuples(_names, _names, _fragments), min_size=1, max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_tool_calls_assemble_the_same_whatever_the_server_repeats(
    style: str, calls: list[tuple[str, str, list[str]]]
) -> None:
    calls = [(f"call_{i}_{call_id}", name, fragments) for i, (call_id, name, fragments) in
             enumerate(calls)]  # fmt: skip
    assembler, deltas = feed_chunks(_tool_call_chunks(style, calls), done=False)
    got = assembler.finish().choices[0].message.tool_calls
    assert got is not None
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in got] == [
        (call_id, "function", name, "".join(fragments)) for call_id, name, fragments in calls
    ]
    for index, (call_id, name, fragments) in enumerate(calls):
        mine = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta) and d.index == index]
        assert "".join(d.delta for d in mine) == "".join(fragments)
        assert {(d.call_id, d.name) for d in mine} == {(call_id, name)}


def test_parallel_tool_calls_interleaved_by_index() -> None:
    chunks = [
        chunk({"tool_calls": [{"index": 1, "id": "b", "type": "function",
                               "function": {"name": "second", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                               "function": {"name": "first", "arguments": "{\"x\""}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}},
                              {"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk(finish_reason="tool_calls"),
    ]  # fmt: skip
    assembler, deltas = feed_chunks(chunks)
    calls = assembler.finish().choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("a", "first", '{"x": 1}'),
        ("b", "second", "{}"),
    ]
    # A call is announced when it first appears, even before any argument text.
    first = next(d for d in deltas if isinstance(d, ToolCallArgumentsDelta))
    assert (first.index, first.call_id, first.name, first.delta) == (1, "b", "second", "")


def test_tool_call_deltas_without_index() -> None:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"delta": {"tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "one", "arguments": "{\"a\""}}
        ]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "two", "arguments": "{}"}}
        ]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    assembler, _ = feed_chunks(chunks)
    calls = assembler.finish().choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("c1", "one", '{"a": 1}'),
        ("c2", "two", "{}"),
    ]


def test_a_call_without_an_id_gets_one() -> None:
    chunks = [
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
        chunk(finish_reason="tool_calls"),
    ]
    assembler, deltas = feed_chunks(chunks)
    calls = assembler.finish().choices[0].message.tool_calls
    assert calls is not None and calls[0].id.startswith("call_") and len(calls[0].id) > 10
    assert assembler.finish().choices[0].message.tool_calls == calls  # stable
    assert [d.call_id for d in deltas if isinstance(d, ToolCallArgumentsDelta)] == [""]


def test_legacy_function_call_alone_becomes_a_tool_call() -> None:
    chunks = [
        chunk(
            {"role": "assistant", "function_call": {"name": "get_current_time", "arguments": ""}}
        ),
        chunk({"function_call": {"arguments": "{}"}}),
        chunk(finish_reason="function_call"),
    ]
    assembler, deltas = feed_chunks(chunks)
    choice = assembler.finish().choices[0]
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_current_time"
    assert call.function.arguments == "{}"
    assert call.id.startswith("call_") and len(call.id) > 10
    assert {d.call_id for d in deltas if isinstance(d, ToolCallArgumentsDelta)} == {call.id}


def test_legacy_function_call_beside_tool_calls_is_ignored() -> None:
    chunks = [
        chunk({"function_call": {"name": "f", "arguments": "{"},
               "tool_calls": [{"index": 0, "id": "x", "type": "function",
                               "function": {"name": "f", "arguments": "{"}}]}),
        chunk({"function_call": {"name": "f", "arguments": "}"},
               "tool_calls": [{"index": 0, "id": "x", "type": "function",
                               "function": {"name": "f", "arguments": "}"}}]}),
        chunk(finish_reason="tool_calls"),
    ]  # fmt: skip
    assembler, deltas = feed_chunks(chunks)
    calls = assembler.finish().choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [("x", "f", "{}")]
    assert len([d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]) == 2


def test_reasoning_content_is_kept_and_streamed() -> None:
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "Think"}),
        chunk({"reasoning_content": "ing."}),
        chunk({"content": "Answer"}),
        chunk({"content": ""}, finish_reason="stop"),
    ]
    assembler, deltas = feed_chunks(chunks)
    message = assembler.finish().choices[0].message
    assert message.reasoning_content == "Thinking."
    assert message.content == "Answer"
    assert deltas == [ReasoningDelta("Think"), ReasoningDelta("ing."), TextDelta("Answer")]


def test_several_choices_are_assembled_per_index() -> None:
    chunks = [
        chunk({"content": "A"}, index=0),
        chunk({"content": "B"}, index=1),
        chunk({"content": "a"}, index=0, finish_reason="stop"),
        chunk({"content": "b"}, index=1, finish_reason="length"),
    ]
    assembler, _ = feed_chunks(chunks, done=False)
    choices = assembler.finish().choices
    assert [(c.index, c.message.content, c.finish_reason) for c in choices] == [
        (0, "Aa", "stop"),
        (1, "Bb", "length"),
    ]


def test_usage_only_from_the_chunk_that_carries_it() -> None:
    usage_chunk = {"id": "chatcmpl-t", "choices": [], "usage": {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip
    assembler, _ = feed_chunks([chunk({"content": "hi"}, finish_reason="stop"), usage_chunk])
    usage = assembler.finish().usage
    assert usage is not None and usage.total_tokens == 5


# --- whole or not ---------------------------------------------------------------------------


def test_cut_stream_raises_with_the_partial_answer() -> None:
    raw = SEED_STREAM.read_bytes()
    cut = raw.index(b'data: {"choices":[{"delta":{"content":""},"finish_reason":"stop"')
    assembler, _deltas = replay([raw[:cut]])
    assert assembler.received_any
    with pytest.raises(IncompleteStreamError, match=r"without \[DONE\] or a finish reason") as e:
        assembler.finish()
    partial = e.value.partial
    assert isinstance(partial, ChatCompletion)
    assert partial.choices[0].message.content == SEED_TEXT
    assert partial.choices[0].finish_reason is None


@pytest.mark.parametrize("path", [LLAMA_FORCED, LLAMA_PLAIN, SEED_STREAM], ids=lambda p: p.name)
def test_every_cut_before_the_finish_reason_raises(path: Path) -> None:
    raw = path.read_bytes()
    end = raw.rindex(b"data: {")  # the chunk with the finish reason starts here
    for cut in range(0, end + 1, 13):
        assembler, _ = replay([raw[:cut]])
        with pytest.raises(IncompleteStreamError):
            assembler.finish()


def test_finish_reason_without_done_is_whole() -> None:
    raw = SEED_STREAM.read_bytes()
    assembler, _ = replay([raw[: raw.index(b"data: [DONE]")]])
    assert not assembler.done
    assert assembler.finish().choices[0].message.content == SEED_TEXT


def test_done_without_finish_reason_is_whole_for_text() -> None:
    assembler, _ = feed_chunks([chunk({"content": "Hello"})], done=True)
    choice = assembler.finish().choices[0]
    assert choice.message.content == "Hello" and choice.finish_reason is None


def test_done_without_finish_reason_and_a_cut_tool_call_raises() -> None:
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "x", "type": "function",
                               "function": {"name": "f", "arguments": "{\"a\": "}}]}),
    ]  # fmt: skip
    assembler, _ = feed_chunks(chunks, done=True)
    with pytest.raises(IncompleteStreamError, match="'f' are not whole JSON") as caught:
        assembler.finish()
    calls = caught.value.partial.choices[0].message.tool_calls
    assert calls[0].function.arguments == '{"a": '
    # Whole JSON (or no arguments at all) with [DONE] is fine.
    for arguments in ('{"a": 1}', ""):
        call = {"index": 0, "id": "x", "type": "function",
                "function": {"name": "f", "arguments": arguments}}  # fmt: skip
        good = [chunk({"tool_calls": [call]})]
        assembler, _ = feed_chunks(good, done=True)
        assert assembler.finish().choices[0].message.tool_calls is not None


def test_a_stream_with_no_choice_at_all_raises() -> None:
    usage_only = {"choices": [], "usage": {"total_tokens": 1}}
    assembler, _ = feed_chunks([usage_only], done=True)
    with pytest.raises(IncompleteStreamError, match="no choices"):
        assembler.finish()


def test_only_done_raises() -> None:
    assembler = StreamAssembler()
    assembler.mark_done()
    with pytest.raises(IncompleteStreamError):
        assembler.finish()


def test_an_error_sent_mid_stream_is_named_when_the_stream_is_cut() -> None:
    error = {"error": {"message": "Internal error, please retry", "code": "InternalError"}}
    assembler, _ = feed_chunks([chunk({"content": "Hel"}), error], done=False)
    with pytest.raises(IncompleteStreamError, match="Internal error, please retry"):
        assembler.finish()


def test_all_choices_must_finish_unless_done() -> None:
    chunks = [chunk({"content": "A"}, "stop", index=0), chunk({"content": "B"}, index=1)]
    assembler, _ = feed_chunks(chunks, done=False)
    with pytest.raises(IncompleteStreamError):
        assembler.finish()


# --- text tool calls through the assembler -------------------------------------------------

QWEN_TEXT_CALL = (
    "Let me check.\n<tool_call>\n"
    '{"name": "get_current_weather", "arguments": {"location": "Singapore"}}\n'
    "</tool_call>"
)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 1000])
def test_text_tool_calls_are_extracted_and_never_shown(size: int) -> None:
    pieces = [QWEN_TEXT_CALL[i : i + size] for i in range(0, len(QWEN_TEXT_CALL), size)]
    chunks = [chunk({"content": p}) for p in pieces] + [chunk({"content": ""}, "stop")]
    assembler, deltas = feed_chunks(chunks, done=True)
    message = assembler.finish().choices[0].message
    assert message.content == "Let me check."
    assert text_of(deltas) == "Let me check."
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Singapore"}
    announced = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert [(d.call_id, d.name, d.delta) for d in announced] == [
        (call.id, call.function.name, call.function.arguments)
    ]


def test_text_tool_calls_can_be_switched_off() -> None:
    chunks = [chunk({"content": QWEN_TEXT_CALL}), chunk(finish_reason="stop")]
    assembler, deltas = feed_chunks(chunks, parse_text_tool_calls=False)
    message = assembler.finish().choices[0].message
    assert message.content == QWEN_TEXT_CALL
    assert text_of(deltas) == QWEN_TEXT_CALL
    assert message.tool_calls is None


def test_held_text_is_released_by_done_when_no_finish_reason_comes() -> None:
    assembler, deltas = feed_chunks([chunk({"content": "a <tool_"})], done=False)
    assert text_of(deltas) == "a"
    released = assembler.mark_done()
    assert text_of(released) == " <tool_"
    assert assembler.finish().choices[0].message.content == "a <tool_"


@given(
    pieces=st.lists(
        st.sampled_from(["Hi", " ", "\n", "<", "tool_call>", "</tool_call>", "<tool_call>",
                         '{"name": "f", "arguments": {}}', "{bad", "x", "<tool"]),
        max_size=25,
    )
)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_streamed_text_always_equals_the_final_content(pieces: list[str]) -> None:
    chunks = [chunk({"content": p}) for p in pieces] + [chunk(finish_reason="stop")]
    assembler, deltas = feed_chunks(chunks, done=True)
    message = assembler.finish().choices[0].message
    assert text_of(deltas) == (message.content or "")
    found = message.tool_calls or []
    announced = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert [d.call_id for d in announced] == [c.id for c in found]
