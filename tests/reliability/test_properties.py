"""Properties, under hypothesis, over real loopback HTTP:

- any split of a valid SSE stream gives the same answer through the real client;
- any JSON value (or any text) as tool arguments gives either a call with valid arguments
  or a message fed back to the model, never an unhandled exception;
- after any failure, the transcript the error carries is valid wire format, and sending it
  back in finishes the run.

Example counts are modest (the suite runs on every commit); raise them with the
``AGENTKIT_PROPERTY_EXAMPLES`` environment variable for a longer hunt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from _helpers import assert_resendable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit import (
    AgentKitError,
    ChatClient,
    MaxTurnsExceededError,
    RepeatedToolCallError,
    RunLimits,
    ToolArgumentsError,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
    tool,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from ._support import (
    INSTRUCTIONS,
    KEY,
    MODEL,
    PROMPT,
    Driver,
    assert_carries_transcript,
    get_weather,
    run_with,
    sync_agent,
    tool_messages,
    weather_calls,
)

EXAMPLES = int(os.environ.get("AGENTKIT_PROPERTY_EXAMPLES", "30"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


# --- any split of a valid stream ------------------------------------------------------------


def _stream_reply(style: str) -> Reply:
    return Reply.tool_calls(
        ("get_weather", {"city": "Zürich", "days": 3}, "call_a"),
        ("get_weather", {"city": "東京 🗼"}, "call_b"),
        content="Let me check — ☀️ or 🌧?",
        style=style,  # type: ignore[arg-type]
        chunk_size=5,
    )


def _read_stream(client: ChatClient, reply: Reply, server: ScriptedServer) -> tuple[Any, Any]:
    server.queue(reply)
    with client.stream(model=MODEL, messages=[{"role": "user", "content": PROMPT}]) as stream:
        deltas = list(stream)
    completion = stream.completion
    return deltas, (
        [choice.model_dump() for choice in completion.choices],
        completion.usage.model_dump() if completion.usage else None,
    )


@PROPERTY
@given(
    style=st.sampled_from(["openai", "dashscope", "llama.cpp"]),
    sizes=st.lists(st.integers(1, 48), min_size=1, max_size=30),
)
def test_any_split_of_a_valid_stream_gives_the_same_result(
    shared_server: ScriptedServer, style: str, sizes: list[int]
) -> None:
    with (
        httpx.Client(verify=False, timeout=10) as http,
        ChatClient(shared_server.base_url, KEY, http_client=http, max_retries=0) as client,
    ):
        whole = _read_stream(client, _stream_reply(style), shared_server)
        split = _read_stream(
            client,
            _stream_reply(style).with_(split_bytes=sizes, chunk_delay=0.0005),
            shared_server,
        )
    assert split == whole
    calls = whole[1][0][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Zürich", "days": 3},
        {"city": "東京 🗼"},
    ]


# --- any JSON value as tool arguments -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Bias towards objects with the tool's own keys, so the valid path is well exercised too.
weather_like = st.fixed_dictionaries(
    {"city": st.one_of(st.text(max_size=12), json_values)},
    optional={
        "days": st.one_of(st.integers(-5, 10), json_values),
        "extra": json_values,
    },
)
any_arguments = st.one_of(
    json_values.map(json.dumps),
    weather_like.map(json.dumps),
    st.text(max_size=40),  # not even JSON, most of the time
)


@dataclass
class _Cell:
    arguments: str = "{}"


@PROPERTY
@given(arguments=any_arguments)
def test_any_tool_arguments_give_a_valid_call_or_a_fed_back_message(
    shared_server: ScriptedServer, arguments: str
) -> None:
    cell = _Cell(arguments)

    def model(request: RecordedRequest) -> Reply:
        last = request.messages[-1]
        if last.get("role") == "tool":
            return Reply.text("Done.")
        return Reply.tool_calls(("get_weather", cell.arguments))

    shared_server.respond_with(model)
    weather_calls.clear()
    try:
        expected: dict[str, Any] | None = get_weather.validate_json(arguments)
    except ToolArgumentsError as exc:
        expected, problem = None, str(exc)
    with sync_agent(shared_server.base_url) as agent:
        result = agent.run(PROMPT)  # never raises for bad arguments
    assert result.output == "Done."
    assert_resendable(result.messages)
    (told,) = tool_messages(result.messages)
    if expected is None:
        assert weather_calls == [], "the function never sees invalid arguments"
        assert told["content"] == problem, "the readable message goes to the model"
    else:
        assert len(weather_calls) == 1
        call = weather_calls[0]
        assert isinstance(call["city"], str) and isinstance(call["days"], int)
        assert call == {"days": 1, **expected}
        assert told["content"] == f"sunny in {call['city']} for {call['days']} day(s)"


# --- the transcript after any failure resumes -----------------------------------------------


@tool
def flaky_lookup(key: str) -> str:
    """Look a key up (this one always fails)."""
    raise LookupError(f"no such key {key!r}")


CALL_KINDS = {
    "valid": ("get_weather", {"city": "Paris"}),
    "valid_other": ("get_weather", {"city": "Lima", "days": 2}),
    "invalid": ("get_weather", '{"city": 5}'),
    "not_json": ("get_weather", "{city: Paris"),
    "unknown": ("get_wetter", {"city": "Paris"}),
    "raises": ("flaky_lookup", {"key": "k"}),
}

HTTP_FAILURES: dict[str, list[Reply]] = {
    "server_error": [Reply.error(503)] * 3,
    "quota": [Reply.quota_exceeded()],
    "auth": [Reply.invalid_api_key()],
    "not_a_completion": [Reply.raw("<html>oops</html>", status=200, content_type="text/html")],
    "connection_reset": [Reply.reset()] * 3,
    "cut_stream": [
        Reply.text("a partial answer that never ends", stream=True, chunk_size=4).with_(cut_after=4)
    ],
}
LIMIT_FAILURES = ("max_turns", "repeated_call", "tool_call_cap", "tool_failures")


@dataclass
class Failure:
    """A scripted run that fails after ``rounds`` tool rounds."""

    rounds: list[list[str]]
    kind: str
    driver: Driver
    options: dict[str, Any] = field(default_factory=dict)

    def replies(self) -> list[Reply]:
        replies = [
            Reply.tool_calls(*[_spec(kind, r, i) for i, kind in enumerate(calls)])
            for r, calls in enumerate(self.rounds)
        ]
        if self.kind in HTTP_FAILURES:
            return [*replies, *HTTP_FAILURES[self.kind]]
        if self.kind == "max_turns":
            self.options["max_turns"] = len(self.rounds) + 1
            return [*replies, Reply.tool_calls(("get_weather", {"city": "Oslo"}))]
        if self.kind == "repeated_call":
            self.options["max_repeated_calls"] = 0
            same = Reply.tool_calls(("get_weather", {"city": "Bergen"}))
            return [*replies, same, same]
        if self.kind == "tool_call_cap":
            self.options["max_tool_calls"] = sum(map(len, self.rounds)) + 1
            two = Reply.tool_calls(
                ("get_weather", {"city": "Rome"}), ("get_weather", {"city": "Bari"})
            )
            return [*replies, two, Reply.tool_calls(("get_weather", {"city": "Pisa"}))]
        self.options["max_tool_failures"] = 1
        return [*replies, Reply.tool_calls(("flaky_lookup", {"key": "last"}))]


def _spec(kind: str, round_: int, index: int) -> tuple[str, Any, str]:
    name, arguments = CALL_KINDS[kind]
    return name, arguments, f"call_r{round_}_{index}"


failures = st.builds(
    Failure,
    rounds=st.lists(
        st.lists(
            st.sampled_from(["valid", "valid_other", "invalid", "not_json", "unknown"]),
            min_size=1,
            max_size=3,
        ),
        max_size=2,
    ),
    kind=st.sampled_from([*HTTP_FAILURES, *LIMIT_FAILURES]),
    driver=st.sampled_from(["run", "stream", "run_async", "stream_async"]),
)

EXPECTED: dict[str, type[AgentKitError]] = {
    "max_turns": MaxTurnsExceededError,
    "repeated_call": RepeatedToolCallError,
    "tool_call_cap": ToolCallLimitExceededError,
    "tool_failures": ToolFailureLimitExceededError,
}


@PROPERTY
@given(failure=failures)
def test_transcript_after_any_failure_resumes(failure: Failure) -> None:
    replies = failure.replies()
    if failure.kind == "cut_stream" and failure.driver in ("run", "run_async"):
        replies[-1] = Reply.text("partial").with_(cut_after=10)  # a plain body cut, 3 times
        replies += [replies[-1]] * 2
    tools = (get_weather, flaky_lookup)
    # a strict server: it refuses assistant messages with null content, as llama.cpp does
    with ScriptedServer(replies=replies, reject_null_assistant_content=True) as server:
        with pytest.raises(AgentKitError) as caught:
            run_with(
                failure.driver, server.base_url, tools=tools, limits=RunLimits(**failure.options)
            )
        error = caught.value
        if failure.kind in EXPECTED:
            assert isinstance(error, EXPECTED[failure.kind])
        messages = assert_carries_transcript(error)
        assistant = [m for m in messages if m["role"] == "assistant"]
        assert all(m.get("tool_calls") for m in assistant), "no half answer in the transcript"
    # resumed against a fresh strict server: a failure may come before the script's end
    # (invalid arguments count as tool failures), so the old queue may still hold replies
    fresh_server = ScriptedServer(
        replies=[Reply.text("Resumed.")], reject_null_assistant_content=True
    )
    with fresh_server as fresh:
        resumed = run_with(failure.driver, fresh.base_url, messages, tools)
        assert resumed.output == "Resumed."
        assert fresh.requests[-1].messages == messages, "sent back as it was"
        assert not fresh.errors
    assert resumed.messages[: len(messages)] == messages
    assert resumed.messages[0] == {"role": "system", "content": INSTRUCTIONS}
