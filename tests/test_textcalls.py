"""``<tool_call>{...}</tool_call>`` in the content: extracted whole, never guessed, never leaked."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit._textcalls import ToolCallTextFilter, extract_text_tool_calls
from agentkit._wire import ChatMessage, FunctionCall, ToolCall

WEATHER = '{"name": "get_current_weather", "arguments": {"location": "Singapore"}}'
TIME = '{"name": "get_current_time", "arguments": {}}'


def block(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


def extract(content: str | None) -> ChatMessage:
    return extract_text_tool_calls(ChatMessage(content=content))


def streamed(pieces: list[str]) -> tuple[str, list[ToolCall]]:
    text_filter = ToolCallTextFilter()
    shown = [text_filter.feed(piece) for piece in pieces]
    shown.append(text_filter.finish())
    return "".join(shown), text_filter.calls


def test_single_block() -> None:
    message = extract(block(WEATHER))
    assert message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Singapore"}
    assert call.id.startswith("call_") and len(call.id) == 29


def test_several_blocks_with_text_before() -> None:
    content = "Checking both.\n" + block(WEATHER) + "\n" + block(TIME) + "\n"
    message = extract(content)
    assert message.content == "Checking both."
    assert message.tool_calls is not None
    assert [c.function.name for c in message.tool_calls] == [
        "get_current_weather",
        "get_current_time",
    ]
    assert message.tool_calls[1].function.arguments == "{}"
    assert len({c.id for c in message.tool_calls}) == 2


def test_text_around_a_block_keeps_its_spacing() -> None:
    message = extract("Before " + block(TIME) + " after.")
    assert message.content == "Before after."
    assert message.tool_calls is not None and len(message.tool_calls) == 1


def test_arguments_are_re_serialized_as_json_text() -> None:
    body = '{"name": "f", "arguments": {"city": "東京", "n": [1, 2.5, null, true]}}'
    call = extract(block(body)).tool_calls[0]  # type: ignore[index]
    assert call.function.arguments == '{"city":"東京","n":[1,2.5,null,true]}'


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('"{\\"a\\": 1}"', {"a": 1}), ("null", {}), (None, {})],
)
def test_arguments_as_a_string_or_absent(arguments: str | None, expected: dict[str, int]) -> None:
    body = '{"name": "f"' + ("" if arguments is None else f', "arguments": {arguments}') + "}"
    call = extract(block(body)).tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == expected


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"name": "f", "arguments": {"a": 1}',  # cut short
        '["f", {}]',  # not an object
        '{"arguments": {}}',  # no name
        '{"name": "", "arguments": {}}',  # empty name
        '{"name": 3, "arguments": {}}',  # name not a string
        '{"name": "f", "arguments": [1]}',  # arguments not an object
        '{"name": "f", "arguments": "not json"}',
        '{"name": "f", "arguments": "[1]"}',
        '{"name": "f", "arguments": {"x": NaN}}',  # not JSON, though Python would take it
    ],
)
def test_malformed_blocks_are_left_as_written(body: str) -> None:
    content = "Text " + block(body) + " more"
    original = ChatMessage(content=content)
    assert extract_text_tool_calls(original) is original
    text, calls = streamed(list(content))
    assert (text, calls) == (content, [])


def test_a_malformed_block_beside_a_good_one() -> None:
    content = block("oops") + "\n" + block(TIME)
    message = extract(content)
    assert message.content == block("oops")
    assert [c.function.name for c in message.tool_calls or []] == ["get_current_time"]


def test_unclosed_tag_is_text() -> None:
    content = "See <tool_call> in the docs, it is a tag."
    assert extract(content).content == content
    assert streamed(list(content)) == (content, [])


def test_no_markup_returns_the_same_message() -> None:
    for content in (None, "", "plain text", "a < b and <b>bold</b>", "<tool_cal"):
        message = ChatMessage(content=content)
        assert extract_text_tool_calls(message) is message


def test_existing_tool_calls_are_kept_first() -> None:
    existing = ToolCall(id="call_1", function=FunctionCall(name="a", arguments="{}"))
    message = ChatMessage(content=block(TIME), tool_calls=[existing])
    result = extract_text_tool_calls(message)
    assert [c.function.name for c in result.tool_calls or []] == ["a", "get_current_time"]
    assert message.tool_calls == [existing]  # the input is not changed


def test_extra_fields_and_role_survive() -> None:
    message = ChatMessage.model_validate(
        {"role": "assistant", "content": block(TIME), "reasoning_content": "r", "vendor": 1}
    )
    result = extract_text_tool_calls(message)
    assert result.reasoning_content == "r"
    assert result.model_extra == {"vendor": 1}


# --- streaming: markup never reaches the caller ----------------------------------------------

CONTENT = "I will look.\n" + block(WEATHER) + "\n" + block(TIME)


def test_streamed_with_the_tags_split_at_every_position() -> None:
    expected = extract(CONTENT)
    for cut in range(len(CONTENT) + 1):
        text, calls = streamed([CONTENT[:cut], CONTENT[cut:]])
        assert text == expected.content, cut
        assert [(c.function.name, c.function.arguments) for c in calls] == [
            (c.function.name, c.function.arguments) for c in expected.tool_calls or []
        ]


def test_streamed_character_by_character_shows_no_markup() -> None:
    text_filter = ToolCallTextFilter()
    shown = [text_filter.feed(ch) for ch in CONTENT] + [text_filter.finish()]
    assert "".join(shown) == "I will look."
    assert not any(set(piece) & set("<>{}") for piece in shown)
    assert len(text_filter.calls) == 2


def test_plain_text_passes_through_at_once() -> None:
    text_filter = ToolCallTextFilter()
    assert text_filter.feed("Hello") == "Hello"
    assert text_filter.feed(" world") == " world"
    # Trailing whitespace and a possible tag start wait until they are resolved.
    assert text_filter.feed(" a <") == " a"
    assert text_filter.feed("b>") == " <b>"
    assert text_filter.finish() == ""


def test_a_block_is_released_as_soon_as_it_closes() -> None:
    text_filter = ToolCallTextFilter()
    assert text_filter.feed("A " + block(TIME)[:-3]) == "A"
    assert text_filter.calls == []
    assert text_filter.feed("ll>") == ""
    assert [c.function.name for c in text_filter.calls] == ["get_current_time"]
    assert text_filter.feed(" B") == " B"


_pieces = st.sampled_from(
    ["Hi", " ", "\n", "<", ">", "tool_call>", "</tool_call>", "<tool_call>", WEATHER, TIME,
     "{bad", "x", "<tool", "_call", "</tool_", "日本", "\t"]
)  # fmt: skip


@given(parts=st.lists(_pieces, max_size=30), data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_split_streams_the_same_text_as_extraction(
    parts: list[str], data: st.DataObject
) -> None:
    content = "".join(parts)
    expected = extract(content)
    for _ in range(3):  # several splits of each drawn content: a split is cheap, a draw is not
        cuts = sorted(data.draw(st.lists(st.integers(0, len(content)), max_size=12)))
        bounds = [0, *cuts, len(content)]
        pieces = [content[a:b] for a, b in itertools.pairwise(bounds)]
        text, calls = streamed(pieces)
        assert text == (expected.content or "")
        names = [(c.function.name, c.function.arguments) for c in calls]
        assert names == [(c.function.name, c.function.arguments) for c in expected.tool_calls or []]
    # Every well-formed block became a call, and no block's markup is left in the text.
    if calls:
        assert text.count("<tool_call>") <= content.count("<tool_call>") - len(calls)


# --- linear in the text, however it is split ------------------------------------------------


def _feed_all(pieces: list[str]) -> tuple[str, ToolCallTextFilter]:
    scanner = ToolCallTextFilter()
    return "".join(scanner.feed(piece) for piece in pieces) + scanner.finish(), scanner


def _held_sizes(pieces: list[str]) -> int:
    """Characters joined while feeding: the work a quadratic filter does grows with n**2."""
    joined = 0
    scanner = ToolCallTextFilter()
    for piece in pieces:
        held = scanner._held
        if held and not (scanner._held_blank and piece.isspace()):
            joined += sum(map(len, held))
        scanner.feed(piece)
    return joined


@pytest.mark.parametrize(
    "pieces",
    [
        [" "] * 80_000 + ["x"],  # the review's case: 1.9 s before, quadratic
        ["\n"] * 40_000 + ["<tool_call>", '{"name": "f"}', "</tool_call>"],
        ["<tool_call>", '{"name": "f", "arguments": {"s": "', *"a" * 50_000, '"}}', "</tool_call>"],
    ],
)
def test_many_small_pieces_take_linear_work(pieces: list[str]) -> None:
    # The work is counted, not timed: quadratic, 80,000 pieces joined 3.2e9 characters.
    text, scanner = _feed_all(pieces)
    expected = extract_text_tool_calls(ChatMessage(content="".join(pieces)))
    assert text == (expected.content or "")
    assert len(scanner.calls) == len(expected.tool_calls or [])
    assert _held_sizes(pieces) <= 2 * sum(map(len, pieces))
