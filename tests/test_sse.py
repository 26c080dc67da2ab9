"""The SSE decoder: WHATWG parsing rules, any split of the bytes, bounded memory."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit._errors import AgentKitError, InvalidResponseError
from agentkit._sse import ServerSentEvent, SSEDecoder

DATA = Path(__file__).parent / "data"
CAPTURED = [
    DATA / "dashscope" / "http_stream.txt",
    DATA / "llama-cpp" / "req_forced_stream.response.txt",
    DATA / "llama-cpp" / "req_plain_stream.response.txt",
]


def decode(*pieces: bytes, max_line_bytes: int | None = None) -> list[ServerSentEvent]:
    decoder = SSEDecoder() if max_line_bytes is None else SSEDecoder(max_line_bytes=max_line_bytes)
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    return events


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


# --- the WHATWG rules, one at a time ----------------------------------------------------


def test_single_event_and_defaults() -> None:
    assert decode(b"data: hello\n\n") == [ServerSentEvent("message", "hello", "", None)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    # The standard's own example.
    assert decode(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [ServerSentEvent(data="YHOO\n+2\n10")]


def test_standard_example_with_comments_and_ids() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert decode(stream) == [
        ServerSentEvent(data="first event", id="1"),
        ServerSentEvent(data="second event", id=""),  # "id" alone resets the last id
        ServerSentEvent(data=" third event", id=""),  # only one leading space is dropped
    ]


def test_field_without_colon_and_empty_data_lines() -> None:
    # "data" alone appends an empty line; two of them make "\n"; an event made only of
    # empty data lines is still dispatched because a data field was present.
    assert decode(b"data\ndata\n\n") == [ServerSentEvent(data="\n")]
    assert decode(b"data:\n\n") == [ServerSentEvent(data="")]


def test_block_without_data_dispatches_nothing_but_keeps_the_id() -> None:
    assert decode(b"event: ping\nid: 7\n\ndata: x\n\n") == [ServerSentEvent(data="x", id="7")]


def test_event_type_applies_to_its_block_only() -> None:
    assert decode(b"event: error\ndata: {}\n\ndata: next\n\n") == [
        ServerSentEvent(event="error", data="{}"),
        ServerSentEvent(event="message", data="next"),
    ]


def test_id_with_nul_is_ignored_and_unknown_fields_are_ignored() -> None:
    assert decode(b"id: 1\n\ndata: a\nid: bad\0id\nfoo: bar\n\n") == [
        ServerSentEvent(data="a", id="1")
    ]


def test_retry_only_with_ascii_digits() -> None:
    assert decode(b"retry: 1500\ndata: a\n\ndata: b\nretry: 1x\n\n") == [
        ServerSentEvent(data="a", retry=1500),
        ServerSentEvent(data="b", retry=None),
    ]
    # An absurd number is ignored instead of crashing int().
    assert decode(b"retry: " + b"9" * 5000 + b"\ndata: c\n\n") == [ServerSentEvent(data="c")]


def test_comments_are_ignored_anywhere() -> None:
    assert decode(b": keep-alive\n\ndata: a\n: inside\ndata: b\n\n:\n\n") == [
        ServerSentEvent(data="a\nb")
    ]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(end: bytes) -> None:
    stream = end.join([b"data: a", b"data: b", b"", b"event: e", b"data: c", b"", b""])
    assert decode(stream) == [ServerSentEvent(data="a\nb"), ServerSentEvent("e", "c")]


def test_cr_at_end_of_one_piece_and_lf_at_start_of_next_is_one_line_end() -> None:
    # Were the CR and LF two line ends, the blank line would dispatch "a" too early and
    # "b" would be a second event.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ServerSentEvent(data="a\nb")]
    assert decode(b"data: a\r", b"\n", b"\r", b"\n") == [ServerSentEvent(data="a")]
    # CR then CR is two line ends: the second ends an empty line and dispatches.
    assert decode(b"data: a\r", b"\rdata: b\r\r") == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b"),
    ]


def test_bom_at_start_is_skipped_even_split() -> None:
    raw = b"\xef\xbb\xbfdata: a\n\n"
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent(data="a")], cut
    assert decode(b"\xef", b"\xbb", b"\xbf", b"data: a\n\n") == [ServerSentEvent(data="a")]


def test_bom_later_in_the_stream_is_not_skipped() -> None:
    # Only the first bytes of a stream may be a BOM: later, it is part of a field name.
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent(data="a")]


def test_multibyte_character_split_across_feeds() -> None:
    text = "天气 🌦 Zürich"
    raw = f"data: {text}\n\n".encode()
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent(data=text)], cut
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == [ServerSentEvent(data=text)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: a\xffb\n\n") == [ServerSentEvent(data="a\ufffdb")]


# --- end of input -----------------------------------------------------------------------


def test_flush_dispatches_an_event_whose_lines_all_ended() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\n") == []
    assert decoder.flush() == [ServerSentEvent(data="[DONE]")]


def test_flush_drops_a_line_that_never_ended() -> None:
    # It may have been cut mid-way: half a JSON chunk must not pass as an event.
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n\ndata: {"cut') == [ServerSentEvent(data='{"a": 1}')]
    assert decoder.flush() == []
    # The same when earlier lines of the event did end: the event is not whole.
    assert decode(b"data: one\ndata: tw") == []


def test_flush_resets_but_keeps_the_last_id() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 42\nevent: x\ndata: a")
    assert decoder.flush() == []
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent(data="b", id="42")]


def test_empty_input() -> None:
    assert decode() == []
    assert decode(b"", b"") == []


# --- bounded memory -----------------------------------------------------------------------


def test_a_line_without_end_beyond_the_bound_raises_a_clear_error() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(InvalidResponseError, match="longer than 1000 bytes") as caught:
        for _ in range(10):
            decoder.feed(b"x" * 100)
    assert isinstance(caught.value, AgentKitError)


def test_an_event_whose_data_exceeds_the_bound_raises() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    with pytest.raises(InvalidResponseError, match="more than 1000 bytes of data"):
        for _ in range(100):
            decoder.feed(b"data: " + b"y" * 50 + b"\n")


def test_long_lines_within_the_bound_are_fine() -> None:
    payload = "z" * 200_000
    raw = f"data: {payload}\n\n".encode()
    pieces = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    assert decode(*pieces, max_line_bytes=300_000) == [ServerSentEvent(data=payload)]


def test_default_bound_is_generous_and_positive() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_line_bytes=0)
    payload = "q" * (2 * 1024 * 1024)
    assert decode(f"data: {payload}\n\n".encode()) == [ServerSentEvent(data=payload)]


# --- any split gives the same events ------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.name)
def test_captured_streams_split_at_every_byte(path: Path) -> None:
    raw = path.read_bytes()
    whole = decode(raw)
    assert whole, "the sample decodes to events"
    assert whole[-1].data == "[DONE]"
    assert all(event.event == "message" for event in whole)
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == whole, cut
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == whole


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.name)
@pytest.mark.parametrize("end", [b"\r\n", b"\r"])
def test_captured_streams_with_other_line_endings(path: Path, end: bytes) -> None:
    raw = path.read_bytes()
    converted = raw.replace(b"\n", end)
    assert decode(converted) == decode(raw)
    for cut in range(0, len(converted) + 1, 7):
        assert decode(converted[:cut], converted[cut:]) == decode(raw), cut


def test_seed_stream_events_are_the_chunks_then_done() -> None:
    events = decode((DATA / "dashscope" / "http_stream.txt").read_bytes())
    assert len(events) == 8
    assert events[0].data.startswith('{"choices":[{"delta":{"content":"","role":"assistant"}')
    assert '"finish_reason":"stop"' in events[6].data
    assert events[7] == ServerSentEvent(data="[DONE]")


@given(raw=st.sampled_from([p.read_bytes() for p in CAPTURED]), data=st.data())
@settings(max_examples=60, deadline=None)
def test_captured_streams_any_split(raw: bytes, data: st.DataObject) -> None:
    whole = decode(raw)
    for _ in range(4):  # several splits of each drawn stream: a split is cheap, a draw is not
        cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=40))
        assert decode(*split_at(raw, cuts)) == whole


# A generated stream: the events it must decode to are known from how it was built.

_value = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0"), max_size=12
)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id = ""
    for _ in range(draw(st.integers(0, 6))):
        data_lines: list[str] = []
        event = ""
        retry: int | None = None
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(
                st.sampled_from(["data", "data", "data", "comment", "event", "id", "retry"])
            )
            value = draw(_value)
            sep = draw(st.sampled_from([": ", ":"]))
            if sep == ":" and value.startswith(" "):
                sep = ": "  # keep "the value" unambiguous: one space is always dropped
            if kind == "comment":
                lines.append(":" + value)
            elif kind == "data":
                if not value and draw(st.booleans()):
                    lines.append("data")  # no colon: the value is empty
                else:
                    lines.append("data" + sep + value)
                data_lines.append(value)
            elif kind == "event":
                lines.append("event" + sep + value)
                event = value
            elif kind == "id":
                lines.append("id" + sep + value)
                last_id = value
            else:
                number = draw(st.integers(0, 10**9))
                lines.append(f"retry{sep}{number}")
                retry = number
        lines.append("")
        if data_lines:
            expected.append(
                ServerSentEvent(event or "message", "\n".join(data_lines), last_id, retry)
            )
    # Join with random line endings; after a CR, an empty line must not end in a lone LF,
    # or the CR LF pair would be one line end (the format itself cannot say otherwise).
    out = bytearray()
    if draw(st.booleans()):
        out += b"\xef\xbb\xbf"
    previous = b"\n"
    for line in lines:
        end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
        if previous == b"\r" and end == b"\n" and not line:
            end = b"\r\n"
        out += line.encode() + end
        previous = end
    return bytes(out), expected


@given(stream=_streams(), data=st.data())
@settings(max_examples=150, deadline=None)
def test_generated_streams_decode_to_their_events_for_any_split(
    stream: tuple[bytes, list[ServerSentEvent]], data: st.DataObject
) -> None:
    raw, expected = stream
    assert decode(raw) == expected
    for _ in range(3):  # several splits of each generated stream (generating one costs most)
        cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
        assert decode(*split_at(raw, cuts)) == expected
