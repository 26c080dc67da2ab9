"""Agent.stream / stream_async: events in order, the non-streamed fallback, cut streams."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator

import pytest
from _helpers import wait_until, wait_until_async

from agentkit import PROVIDERS, Agent, ChatClient, IncompleteStreamError, ModelSettings, tool
from agentkit._events import (
    AgentEvent,
    ModelRoundFinished,
    ReasoningDelta,
    RunFinished,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolResult,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-stream-test"
ran: list[str] = []


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    ran.append(city)
    return f"Sunny in {city}."


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY, retry_base_delay=0.01, max_retries=1) as made:
        yield made


def kinds(events: list[AgentEvent]) -> list[str]:
    """Event class names with consecutive repeats collapsed."""
    out: list[str] = []
    for event in events:
        name = type(event).__name__
        if not out or out[-1] != name:
            out.append(name)
    return out


EXPECTED_ORDER = [
    "ToolCallArgumentsDelta",
    "ModelRoundFinished",
    "ToolCallStarted",
    "ToolResult",
    "TextDelta",
    "ModelRoundFinished",
    "RunFinished",
]


def two_rounds(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Oslo"}, "w1")),
        Reply.text("It is sunny in Oslo today."),
    )


def check_two_round_events(events: list[AgentEvent], server: ScriptedServer) -> None:
    assert kinds(events) == EXPECTED_ORDER
    fragments = [e for e in events if isinstance(e, ToolCallArgumentsDelta)]
    assert len(fragments) > 1  # arguments arrived piece by piece
    assert {(f.call_id, f.name) for f in fragments} == {("w1", "get_weather")}
    assert "".join(f.delta for f in fragments) == '{"city": "Oslo"}'
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert started == ToolCallStarted("w1", "get_weather", '{"city": "Oslo"}')
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.output == "Sunny in Oslo." and result.error is None and result.duration >= 0
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "It is sunny in Oslo today."
    rounds = [e for e in events if isinstance(e, ModelRoundFinished)]
    assert [r.turn for r in rounds] == [1, 2]
    assert [r.finish_reason for r in rounds] == ["tool_calls", "stop"]
    assert all(r.usage.total_tokens > 0 for r in rounds)  # the usage chunk was asked for
    final = events[-1]
    assert isinstance(final, RunFinished)
    assert final.result.output == text
    assert final.result.usage.total_tokens == sum(r.usage.total_tokens for r in rounds)
    assert all(request.stream for request in server.requests)
    assert all(request.include_usage for request in server.requests)


def test_stream_yields_events_in_order(server: ScriptedServer, client: ChatClient) -> None:
    two_rounds(server)
    with Agent("m", [get_weather], client=client) as agent:
        events = list(agent.stream("Weather in Oslo?"))
    check_two_round_events(events, server)


def test_stream_async_yields_events_in_order(server: ScriptedServer) -> None:
    two_rounds(server)

    async def main() -> list[AgentEvent]:
        async with Agent("m", [get_weather], base_url=server.base_url, api_key=KEY) as agent:
            return [event async for event in agent.stream_async("Weather in Oslo?")]

    check_two_round_events(asyncio.run(main()), server)


def test_text_arrives_as_it_is_sent(server: ScriptedServer, client: ChatClient) -> None:
    # The server waits between chunks; the first delta must reach us long before the last.
    server.queue(Reply.text("one two three four five", chunk_size=4).with_(chunk_delay=0.1))
    with Agent("m", client=client) as agent:
        arrivals = [(time.perf_counter(), event) for event in agent.stream("count")]
    deltas = [t for t, e in arrivals if isinstance(e, TextDelta)]
    assert len(deltas) >= 5
    assert deltas[-1] - deltas[0] > 0.3


def test_reasoning_deltas_come_before_the_answer(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.text("42", reasoning="Six times seven."))
    with Agent("qwen3-32b", client=client) as agent:
        events = list(agent.stream("6*7?"))
    assert kinds(events) == ["ReasoningDelta", "TextDelta", "ModelRoundFinished", "RunFinished"]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == "Six times seven."
    final = events[-1]
    assert isinstance(final, RunFinished) and final.result.output == "42"
    assert "reasoning_content" not in final.result.messages[-1]  # not sent back


# --- the fallback to a non-streamed round ------------------------------------------------------


def refuse_tools_with_stream(request: RecordedRequest) -> Reply:
    """A provider that answers 400 to tools with stream=True, as the seed's note says."""
    if request.stream and request.tools:
        return Reply.error(400, "tools cannot be used with stream=True", param="stream")
    last = request.messages[-1]
    if last["role"] == "tool":
        return Reply.text("It is sunny in Oslo today.")
    return Reply.tool_calls(("get_weather", {"city": "Oslo"}, "w1"))


def test_a_400_for_tools_with_stream_falls_back_to_a_plain_request(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.respond_with(refuse_tools_with_stream)
    with Agent("m", [get_weather], client=client) as agent:
        events = list(agent.stream("Weather in Oslo?"))
        assert [r.stream for r in server.requests] == [True, False, False]
        # The agent remembers: the next run does not try streaming with tools again.
        list(agent.stream("Again?"))
        assert [r.stream for r in server.requests[3:]] == [False, False]

    assert ran == ["Oslo", "Oslo"]
    assert kinds(events) == EXPECTED_ORDER
    (arguments,) = [e for e in events if isinstance(e, ToolCallArgumentsDelta)]
    assert arguments.delta == '{"city": "Oslo"}'  # the whole arguments at once
    (text,) = [e for e in events if isinstance(e, TextDelta)]
    assert text.text == "It is sunny in Oslo today."  # the whole text as one delta
    final = events[-1]
    assert isinstance(final, RunFinished) and final.result.turns == 2


def test_the_fallback_in_stream_async(server: ScriptedServer) -> None:
    server.respond_with(refuse_tools_with_stream)

    async def main() -> list[AgentEvent]:
        async with Agent("m", [get_weather], base_url=server.base_url, api_key=KEY) as agent:
            return [event async for event in agent.stream_async("Weather in Oslo?")]

    events = asyncio.run(main())
    assert kinds(events) == EXPECTED_ORDER
    assert [r.stream for r in server.requests] == [True, False, False]


def test_llama_cpp_empty_stream_falls_back(server: ScriptedServer, client: ChatClient) -> None:
    # llama.cpp answers tools + stream=True with an empty 200 body: no chunks, no [DONE].
    def handler(request: RecordedRequest) -> Reply:
        if request.stream and request.tools:
            return Reply.empty_stream()
        return refuse_tools_with_stream(request)

    server.respond_with(handler)
    with Agent("m", [get_weather], client=client) as agent:
        events = list(agent.stream("Weather in Oslo?"))
    assert kinds(events) == EXPECTED_ORDER
    assert ran == ["Oslo"]
    assert [r.stream for r in server.requests][-2:] == [False, False]


def test_a_provider_known_to_refuse_is_never_streamed_with_tools(server: ScriptedServer) -> None:
    server.respond_with(refuse_tools_with_stream)
    refuses = dataclasses.replace(PROVIDERS["custom"], tools_with_stream=False)
    with Agent("m", [get_weather], base_url=server.base_url, provider=refuses) as agent:
        events = list(agent.stream("Weather in Oslo?"))
    assert [r.stream for r in server.requests] == [False, False]
    assert kinds(events) == EXPECTED_ORDER


def test_a_400_without_tools_is_not_a_stream_refusal(
    server: ScriptedServer, client: ChatClient
) -> None:
    from agentkit import BadRequestError

    server.queue(Reply.error(400, "temperature out of range", param="temperature"))
    with Agent("m", client=client) as agent, pytest.raises(BadRequestError) as caught:
        list(agent.stream("hi"))
    assert len(server.requests) == 1
    assert caught.value.messages == [{"role": "user", "content": "hi"}]


# --- cut streams and early exits ---------------------------------------------------------------


def test_a_stream_cut_mid_tool_call_raises_and_runs_nothing(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Oslo"}), chunk_size=3).with_(cut_after=4)
    )
    seen: list[AgentEvent] = []
    with Agent("m", [get_weather], "Be brief.", client=client) as agent:
        with pytest.raises(IncompleteStreamError) as caught:
            for event in agent.stream("Weather in Oslo?"):
                seen.append(event)
        assert any(isinstance(e, ToolCallArgumentsDelta) for e in seen)
        assert not any(isinstance(e, ToolCallStarted | ToolResult) for e in seen)
        assert ran == []
        assert caught.value.messages == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
        ]
        assert len(server.requests) == 1  # not retried once deltas were handed out

        # The client is still usable, and the transcript resends as it is.
        server.queue(Reply.text("Sorry, try again."))
        result = agent.run(caught.value.messages)
    assert result.output == "Sorry, try again."


def test_breaking_out_of_a_stream_closes_the_response(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.text("a b c d e f g h i j", chunk_size=2).with_(chunk_delay=0.2))
    with Agent("m", client=client) as agent:
        events = agent.stream("go")
        for event in events:
            if isinstance(event, TextDelta):
                break
        events.close()  # what a for-loop's end does when the generator is collected
        # Closed, not read to its end: a drained response would go back to the pool and
        # keep its connection open.
        wait_until(lambda: server.open_connections == 0)
        server.queue(Reply.text("still works"))
        assert agent.run("again").output == "still works"


def test_closing_stream_async_early_closes_the_response(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c d e f g h i j", chunk_size=2).with_(chunk_delay=0.2))

    async def main() -> None:
        async with Agent("m", base_url=server.base_url, api_key=KEY) as agent:
            async with contextlib.aclosing(agent.stream_async("go")) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        break
            await wait_until_async(lambda: server.open_connections == 0)

    asyncio.run(main())


def test_run_streams_when_qwen_thinking_requires_it(server: ScriptedServer) -> None:
    # DashScope answers thinking-mode requests only when streamed; run() just works.
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Oslo"})),
        Reply.text("Sunny.", reasoning="The tool said so."),
    )
    with Agent(
        "qwen3-32b",
        [get_weather],
        base_url=server.base_url,
        provider="dashscope",
        api_key=KEY,
        settings=ModelSettings(extra_body={"enable_thinking": True}),
    ) as agent:
        result = agent.run("Weather in Oslo?")
    assert result.output == "Sunny."
    assert [r.stream for r in server.requests] == [True, True]
    assert all(r.json()["enable_thinking"] is True for r in server.requests)
