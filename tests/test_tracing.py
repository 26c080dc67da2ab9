"""Tracing with the real OpenTelemetry SDK: span tree, GenAI attribute names (checked against
the semantic-conventions package), events (retries, stream fallback, approvals, limits),
content capture off and on, errors, the API key never in a span, and the OTLP/HTTP exporter
against a receiver on 127.0.0.1 that decodes the protobuf it gets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

if os.environ.get("CI") != "true":  # in CI the dev extra must have installed it: fail loudly
    pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import SpanKind, StatusCode

import agentkit
from agentkit import (
    Agent,
    AsyncChatClient,
    AuthenticationError,
    ChatClient,
    ConfigurationError,
    MaxTurnsExceededError,
    ModelSettings,
    RunLimits,
    tool,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer
from agentkit.tracing import Instrumentation, _otel

KEY = "sk-tracing-secret-0123456789abcdef"


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {city}."


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"10:00 in {city}."


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY, retry_base_delay=0.001, retry_max_delay=0.002) as made:
        yield made


def traced(
    provider: TracerProvider, *, capture_content: bool | None = False
) -> list[Instrumentation]:
    return [Instrumentation(tracer_provider=provider, capture_content=capture_content)]


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def weather_and_time() -> list[Reply]:
    return [
        Reply.tool_calls(
            ("get_weather", {"city": "Hangzhou"}, "w1"),
            ("get_time", {"city": "Hangzhou"}, "t1"),
            usage=usage(50, 10, reasoning=4),
            model="qwen-plus-2025-07-28",
        ),
        Reply.text("Sunny, ten o'clock.", usage=usage(1200, 9, cached=1024)),
    ]


# --- the names are the conventions' ----------------------------------------------------------


def test_attribute_names_are_the_semantic_conventions() -> None:
    pairs = {
        _otel.OPERATION_NAME: gen_ai.GEN_AI_OPERATION_NAME,
        _otel.PROVIDER_NAME: gen_ai.GEN_AI_PROVIDER_NAME,
        _otel.AGENT_NAME: gen_ai.GEN_AI_AGENT_NAME,
        _otel.CONVERSATION_ID: gen_ai.GEN_AI_CONVERSATION_ID,
        _otel.REQUEST_MODEL: gen_ai.GEN_AI_REQUEST_MODEL,
        _otel.REQUEST_TEMPERATURE: gen_ai.GEN_AI_REQUEST_TEMPERATURE,
        _otel.REQUEST_TOP_P: gen_ai.GEN_AI_REQUEST_TOP_P,
        _otel.REQUEST_TOP_K: gen_ai.GEN_AI_REQUEST_TOP_K,
        _otel.REQUEST_MAX_TOKENS: gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
        _otel.REQUEST_SEED: gen_ai.GEN_AI_REQUEST_SEED,
        _otel.REQUEST_STOP_SEQUENCES: gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES,
        _otel.REQUEST_PRESENCE_PENALTY: gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY,
        _otel.REQUEST_FREQUENCY_PENALTY: gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY,
        _otel.REQUEST_CHOICE_COUNT: gen_ai.GEN_AI_REQUEST_CHOICE_COUNT,
        _otel.REQUEST_STREAM: gen_ai.GEN_AI_REQUEST_STREAM,
        _otel.OUTPUT_TYPE: gen_ai.GEN_AI_OUTPUT_TYPE,
        _otel.RESPONSE_MODEL: gen_ai.GEN_AI_RESPONSE_MODEL,
        _otel.RESPONSE_ID: gen_ai.GEN_AI_RESPONSE_ID,
        _otel.RESPONSE_FINISH_REASONS: gen_ai.GEN_AI_RESPONSE_FINISH_REASONS,
        _otel.USAGE_INPUT_TOKENS: gen_ai.GEN_AI_USAGE_INPUT_TOKENS,
        _otel.USAGE_OUTPUT_TOKENS: gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,
        _otel.USAGE_CACHE_READ_INPUT_TOKENS: gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        _otel.USAGE_CACHE_CREATION_INPUT_TOKENS: gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        _otel.USAGE_REASONING_OUTPUT_TOKENS: gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        _otel.TOOL_NAME: gen_ai.GEN_AI_TOOL_NAME,
        _otel.TOOL_CALL_ID: gen_ai.GEN_AI_TOOL_CALL_ID,
        _otel.TOOL_TYPE: gen_ai.GEN_AI_TOOL_TYPE,
        _otel.TOOL_DESCRIPTION: gen_ai.GEN_AI_TOOL_DESCRIPTION,
        _otel.TOOL_CALL_ARGUMENTS: gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS,
        _otel.TOOL_CALL_RESULT: gen_ai.GEN_AI_TOOL_CALL_RESULT,
        _otel.INPUT_MESSAGES: gen_ai.GEN_AI_INPUT_MESSAGES,
        _otel.OUTPUT_MESSAGES: gen_ai.GEN_AI_OUTPUT_MESSAGES,
        _otel.SYSTEM_INSTRUCTIONS: gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS,
        _otel.ERROR_TYPE: error_attributes.ERROR_TYPE,
        _otel.SERVER_ADDRESS: server_attributes.SERVER_ADDRESS,
        _otel.SERVER_PORT: server_attributes.SERVER_PORT,
    }
    assert {ours: theirs for ours, theirs in pairs.items() if ours != theirs} == {}
    operations = {v.value for v in gen_ai.GenAiOperationNameValues}
    assert {"invoke_agent", "chat", "execute_tool"} <= operations
    assert gen_ai.GenAiProviderNameValues.OPENAI.value == "openai"
    # DashScope has no value of its own: ours must not pretend to be one of theirs
    assert _otel.DASHSCOPE_PROVIDER not in {v.value for v in gen_ai.GenAiProviderNameValues}


# --- the span tree -------------------------------------------------------------------------


def check_run_tree(spans: tuple[ReadableSpan, ...], *, streamed: bool) -> None:
    named = by_name(spans)
    assert (
        set(named)
        == {
            "invoke_agent weather-bot",
            "chat qwen-plus",
            "execute_tool get_weather",
            "execute_tool get_time",
        }
        or len(spans) == 5
    )
    run = named["invoke_agent weather-bot"]
    chats = [s for s in spans if s.name == "chat qwen-plus"]
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert len(chats) == 2 and len(tools) == 2
    assert run.parent is None and run.kind is SpanKind.INTERNAL
    for child in [*chats, *tools]:
        assert child.parent is not None and child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id
    assert all(chat.kind is SpanKind.CLIENT for chat in chats)

    attrs = run.attributes or {}
    assert attrs[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attrs[gen_ai.GEN_AI_AGENT_NAME] == "weather-bot"
    assert attrs[gen_ai.GEN_AI_PROVIDER_NAME] == "openai_compatible"
    assert attrs[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    assert attrs[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 19
    assert attrs[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    assert attrs[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 4

    first, second = sorted(chats, key=lambda s: s.start_time or 0)
    one = first.attributes or {}
    assert one[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert one[gen_ai.GEN_AI_REQUEST_MODEL] == "qwen-plus"
    assert one[gen_ai.GEN_AI_RESPONSE_MODEL] == "qwen-plus-2025-07-28"
    assert one[gen_ai.GEN_AI_RESPONSE_ID]
    assert one[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert one[gen_ai.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert one[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 500
    assert one[gen_ai.GEN_AI_REQUEST_SEED] == 7
    assert one[gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert one[gen_ai.GEN_AI_REQUEST_STREAM] is streamed
    assert one[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 50
    assert one[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 4
    assert one[server_attributes.SERVER_ADDRESS] == "127.0.0.1"
    assert isinstance(one[server_attributes.SERVER_PORT], int)
    two = second.attributes or {}
    assert two[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert two[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    # the tools ran between the two model calls
    for span in tools:
        assert (first.end_time or 0) <= (span.start_time or 0)
        assert (span.end_time or 0) <= (second.start_time or 0)

    weather = named["execute_tool get_weather"].attributes or {}
    assert weather[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert weather[gen_ai.GEN_AI_TOOL_NAME] == "get_weather"
    assert weather[gen_ai.GEN_AI_TOOL_CALL_ID] == "w1"
    assert weather[gen_ai.GEN_AI_TOOL_TYPE] == "function"
    assert weather[gen_ai.GEN_AI_TOOL_DESCRIPTION] == "Get the weather in a city."
    # content is off by default
    for span in spans:
        keys = set(span.attributes or {})
        assert not keys & {
            gen_ai.GEN_AI_INPUT_MESSAGES,
            gen_ai.GEN_AI_OUTPUT_MESSAGES,
            gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS,
            gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS,
            gen_ai.GEN_AI_TOOL_CALL_RESULT,
        }


def bot(
    client: ChatClient | AsyncChatClient, provider: TracerProvider, **options: Any
) -> Agent[str]:
    return Agent(
        "qwen-plus",
        [get_weather, get_time],
        "Be brief.",
        client=client,
        name="weather-bot",
        observers=traced(provider),
        settings=ModelSettings(temperature=0.3, max_tokens=500, seed=7, stop=["END"]),
        **options,
    )


def test_run_span_tree(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(*weather_and_time())
    with bot(client, provider) as agent:
        agent.run("Weather and time in Hangzhou?")
    check_run_tree(exporter.get_finished_spans(), streamed=False)


def test_streamed_run_span_tree(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(*weather_and_time())
    with bot(client, provider) as agent:
        list(agent.stream("Weather and time in Hangzhou?"))
    check_run_tree(exporter.get_finished_spans(), streamed=True)


def test_async_run_span_tree(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    server.queue(*weather_and_time())

    async def main() -> None:
        async with (
            AsyncChatClient(server.base_url, KEY) as client,
            bot(client, provider) as agent,
        ):
            await agent.run_async("Weather and time in Hangzhou?")

    asyncio.run(main())
    check_run_tree(exporter.get_finished_spans(), streamed=False)


def test_the_run_span_is_a_child_of_the_callers_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.text("hi"))
    outer = provider.get_tracer("app").start_as_current_span("handle request")
    with outer as parent, bot(client, provider) as agent:
        agent.run("Hi")
    run = by_name(exporter.get_finished_spans())["invoke_agent weather-bot"]
    assert run.parent is not None and run.parent.span_id == parent.get_span_context().span_id


# --- events --------------------------------------------------------------------------------


def test_retries_are_events_on_the_chat_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.error(503), Reply.rate_limited(), Reply.text("hi"))
    with bot(client, provider) as agent:
        agent.run("Hi")
    chat = by_name(exporter.get_finished_spans())["chat qwen-plus"]
    retries = [e for e in chat.events if e.name == "agentkit.retry"]
    assert [(e.attributes or {})["http.response.status_code"] for e in retries] == [503, 429]
    assert [(e.attributes or {})["agentkit.retry.attempt"] for e in retries] == [1, 2]
    first = retries[0].attributes or {}
    assert first[error_attributes.ERROR_TYPE] == "agentkit.ServerError"
    assert first["agentkit.retry.max"] == 2
    delay = first["agentkit.retry.delay_s"]
    assert isinstance(delay, float) and 0 <= delay <= 0.01


def test_retries_while_streaming_are_events_too(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.error(502), Reply.text("hi"))
    with bot(client, provider) as agent:
        list(agent.stream("Hi"))
    chat = by_name(exporter.get_finished_spans())["chat qwen-plus"]
    assert [e.name for e in chat.events] == ["agentkit.retry"]


def test_a_retry_outside_any_run_reaches_no_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.text("hi"), Reply.error(503), Reply.text("again"))
    with bot(client, provider) as agent:
        events = agent.stream("Hi")
        for _ in events:  # the consumer's code runs between events: no observer there
            pass
    client.create(model="m", messages=[{"role": "user", "content": "x"}])
    (chat,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    assert chat.events == ()


def refuse_tools_with_stream(request: RecordedRequest) -> Reply:
    if request.stream and request.tools:
        return Reply.error(400, "tools cannot be used with stream=True", param="stream")
    if request.messages[-1]["role"] == "tool":
        return Reply.text("Sunny.")
    return Reply.tool_calls(("get_weather", {"city": "Oslo"}, "w1"))


def test_the_stream_fallback_is_an_event(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.respond_with(refuse_tools_with_stream)
    with bot(client, provider) as agent:
        list(agent.stream("Weather in Oslo?"))
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    first = min(chats, key=lambda s: s.start_time or 0)
    (fallback,) = [e for e in first.events if e.name == "agentkit.stream_fallback"]
    assert (fallback.attributes or {})[error_attributes.ERROR_TYPE] == "agentkit.BadRequestError"
    assert first.status.status_code is StatusCode.UNSET


def test_approvals_granted_and_refused(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(
        Reply.tool_calls(
            ("delete_file", {"path": "a.txt"}, "d1"), ("delete_file", {"path": "b.txt"}, "d2")
        ),
        Reply.text("Deleted a.txt; b.txt was not allowed."),
    )
    agent = Agent(
        "qwen-plus",
        [delete_file],
        client=client,
        observers=traced(provider),
        approve=lambda call: call.kwargs == {"path": "a.txt"},
    )
    with agent:
        agent.run("Delete a.txt and b.txt")
    spans = exporter.get_finished_spans()
    run = by_name(spans)["invoke_agent"]
    approvals = {
        (e.attributes or {})["gen_ai.tool.call.id"]: (e.attributes or {})[
            "agentkit.approval.granted"
        ]
        for e in run.events
        if e.name == "agentkit.approval"
    }
    assert approvals == {"d1": True, "d2": False}
    tools = {
        (s.attributes or {})["gen_ai.tool.call.id"]: s for s in spans if "execute_tool" in s.name
    }
    assert tools["d1"].status.status_code is StatusCode.UNSET
    assert tools["d2"].status.status_code is StatusCode.ERROR
    assert (tools["d2"].attributes or {})[error_attributes.ERROR_TYPE] == "refused"


def test_a_limit_hit_is_an_event_and_the_error_type(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.tool_calls(("get_weather", {"city": "A"})))
    with (
        bot(client, provider, limits=RunLimits(max_turns=1)) as agent,
        pytest.raises(MaxTurnsExceededError),
    ):
        agent.run("Weather?")
    run = by_name(exporter.get_finished_spans())["invoke_agent weather-bot"]
    assert run.status.status_code is StatusCode.ERROR
    assert (run.attributes or {})[error_attributes.ERROR_TYPE] == "agentkit.MaxTurnsExceededError"
    (limit,) = [e for e in run.events if e.name == "agentkit.limit"]
    assert (limit.attributes or {})["agentkit.limit.name"] == "max_turns"


def test_an_api_error_ends_the_chat_span_and_the_key_is_never_in_a_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.error(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"))
    with (
        Agent(
            "qwen-plus", client=client, observers=traced(provider, capture_content=True)
        ) as agent,
        pytest.raises(AuthenticationError),
    ):
        agent.run(f"my key is not {KEY[:6]}")
    spans = exporter.get_finished_spans()
    chat = by_name(spans)["chat qwen-plus"]
    assert chat.status.status_code is StatusCode.ERROR
    assert (chat.attributes or {})[error_attributes.ERROR_TYPE] == "agentkit.AuthenticationError"
    for span in spans:
        dumped = span.to_json()
        assert KEY not in dumped
        assert KEY[:20] not in dumped


def test_a_stream_closed_early_ends_every_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(Reply.text("one two three four five six", chunk_size=3))
    with bot(client, provider) as agent:
        events = agent.stream("Count")
        next(events)
        events.close()
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {"invoke_agent weather-bot", "chat qwen-plus"}
    run = by_name(spans)["invoke_agent weather-bot"]
    assert (run.attributes or {})["agentkit.interrupted"] is True
    assert by_name(spans)["chat qwen-plus"].status.status_code is StatusCode.ERROR


# --- content capture -----------------------------------------------------------------------


def test_content_capture_follows_the_conventions(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(*weather_and_time())
    agent = Agent(
        "qwen-plus",
        [get_weather, get_time],
        "Be brief.",
        client=client,
        observers=traced(provider, capture_content=True),
    )
    with agent:
        agent.run("Weather and time in Hangzhou?")
    spans = exporter.get_finished_spans()
    chats = sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time or 0)
    first = chats[0].attributes or {}
    assert json.loads(str(first[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(str(first[gen_ai.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather and time in Hangzhou?"}]}
    ]
    (output,) = json.loads(str(first[gen_ai.GEN_AI_OUTPUT_MESSAGES]))
    assert output["role"] == "assistant" and output["finish_reason"] == "tool_calls"
    assert [p["name"] for p in output["parts"] if p["type"] == "tool_call"] == [
        "get_weather",
        "get_time",
    ]
    second = json.loads(str((chats[1].attributes or {})[gen_ai.GEN_AI_INPUT_MESSAGES]))
    responses = [p for m in second for p in m["parts"] if p["type"] == "tool_call_response"]
    assert {r["id"]: r["response"] for r in responses} == {
        "w1": "Sunny in Hangzhou.",
        "t1": "10:00 in Hangzhou.",
    }
    weather = by_name(spans)["execute_tool get_weather"].attributes or {}
    assert json.loads(str(weather[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"city": "Hangzhou"}
    assert weather[gen_ai.GEN_AI_TOOL_CALL_RESULT] == "Sunny in Hangzhou."


EMAIL = "jo.doe@example.com"
IBAN = "DE89370400440532013000"


@tool
def refund(account: str) -> str:
    """Refund to an account."""
    raise ValueError(f"account {account} is closed; mail {EMAIL}")


@tool(requires_approval=True)
def close_account(account: str) -> str:
    """Close an account."""
    return "closed"


def _private_run(provider: TracerProvider, client: ChatClient, *, capture: bool) -> None:
    agent = Agent(
        "qwen-plus",
        [refund, close_account],
        client=client,
        observers=traced(provider, capture_content=capture),
        approve=lambda call: False,
        limits=RunLimits(max_tool_failures=10),
    )
    with agent:
        agent.run(f"Refund {IBAN}")


def _private_replies() -> list[Reply]:
    return [
        Reply.tool_calls(
            ("refund", {"account": IBAN}, "r1"),  # the tool raises, quoting its input
            (f"mail_{EMAIL}", {"to": EMAIL}, "u1"),  # a name the model invented
            ("refund", {"account": IBAN, "note": EMAIL}, "v1"),  # invalid arguments
            ("close_account", {"account": IBAN}, "c1"),  # refused
        ),
        Reply.text("Done."),
    ]


def _everything_in(span: ReadableSpan) -> str:
    parts = [span.name, span.status.description or "", json.dumps(dict(span.attributes or {}))]
    for event in span.events:
        parts += [event.name, json.dumps(dict(event.attributes or {}))]
    return "\n".join(parts)


def test_with_capture_off_no_argument_result_or_error_text_reaches_a_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(*_private_replies())
    _private_run(provider, client, capture=False)
    spans = exporter.get_finished_spans()
    for span in spans:
        text = _everything_in(span)
        assert EMAIL not in text and IBAN not in text and "mail_" not in text, text
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert sorted(s.name for s in tools) == [
        "execute_tool close_account",
        "execute_tool refund",
        "execute_tool refund",
        "execute_tool unknown_tool",
    ]
    statuses = {
        (s.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID]: s.status.description for s in tools
    }
    assert statuses == {
        "r1": "tool_error",
        "u1": "unknown_tool",
        "v1": "invalid_arguments",
        "c1": "refused",
    }
    unknown = next(s for s in tools if s.name == "execute_tool unknown_tool")
    assert (unknown.attributes or {})[gen_ai.GEN_AI_TOOL_NAME] == "unknown_tool"


def test_with_capture_on_the_error_text_and_the_invented_name_are_kept(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.queue(*_private_replies())
    _private_run(provider, client, capture=True)
    tools = {
        (s.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID]: s
        for s in exporter.get_finished_spans()
        if s.name.startswith("execute_tool")
    }
    assert EMAIL in (tools["r1"].status.description or "")
    assert tools["u1"].name == "execute_tool unknown_tool"  # never a span name
    assert (tools["u1"].attributes or {})["agentkit.tool.requested_name"] == f"mail_{EMAIL}"


def test_content_capture_from_the_environment(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    server.queue(Reply.text("hi"))
    observers = traced(provider, capture_content=None)
    with Agent("qwen-plus", client=client, observers=observers) as agent:
        agent.run("Hi")
    (chat,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    assert gen_ai.GEN_AI_INPUT_MESSAGES in (chat.attributes or {})


# --- global instrumentation, the global provider, DashScope -------------------------------


def test_instrument_traces_every_agent_once_to_the_global_provider(
    server: ScriptedServer, client: ChatClient
) -> None:
    exporter = InMemorySpanExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())  # the SDK's, once per process
    global_provider = trace.get_tracer_provider()
    assert isinstance(global_provider, TracerProvider)
    global_provider.add_span_processor(SimpleSpanProcessor(exporter))
    server.queue(Reply.text("one"), Reply.text("two"), Reply.text("three"))
    agentkit.tracing.instrument()
    try:
        with Agent("qwen-plus", client=client) as plain:
            plain.run("Hi")
        with Agent("qwen-plus", client=client, instrument=True) as both:
            both.run("Hi")  # instrumented twice over: still one set of spans
    finally:
        agentkit.tracing.uninstrument()
    with Agent("qwen-plus", client=client) as after:
        after.run("Hi")
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("invoke_agent") == 2 and names.count("chat qwen-plus") == 2


def test_dashscope_gets_a_clear_provider_name(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    server.queue(Reply.text("hi"))
    dashscope = agentkit.PROVIDERS["dashscope"].with_base_url(server.base_url)
    with (
        ChatClient(provider=dashscope, api_key=KEY) as client,
        Agent("qwen-plus", client=client, observers=traced(provider)) as agent,
    ):
        agent.run("Hi")
    for span in exporter.get_finished_spans():
        assert (span.attributes or {})[gen_ai.GEN_AI_PROVIDER_NAME] == "alibaba_cloud.dashscope"


# --- the package ---------------------------------------------------------------------------


def test_import_agentkit_loads_no_opentelemetry() -> None:
    code = (
        "import sys, agentkit\n"
        "from agentkit import Agent, tool\n"
        "agentkit.Usage, agentkit.ModelPrice\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'loaded'\n"
        "assert 'agentkit.tracing' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'agentkit\[otel\]'"):
        Agent("qwen-plus", api_key="k", instrument=True)
    with pytest.raises(ConfigurationError, match=r"agentkit\[otel\]"):
        agentkit.tracing.instrument()


# --- OTLP over HTTP to a receiver on loopback ---------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_http_export_reaches_a_receiver(server: ScriptedServer, client: ChatClient) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _Receiver.received = []
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{receiver.server_port}/v1/traces"
        otlp = TracerProvider()
        otlp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        server.queue(*weather_and_time())
        with Agent(
            "qwen-plus", [get_weather, get_time], client=client, observers=traced(otlp)
        ) as agent:
            agent.run("Weather and time?")
        assert otlp.force_flush(10_000)
        otlp.shutdown()
    finally:
        receiver.shutdown()
        receiver.server_close()
    spans = []
    for body in _Receiver.received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                assert scope.scope.name == "agentkit"
                spans.extend(scope.spans)
    names = sorted(span.name for span in spans)
    assert names == [
        "chat qwen-plus",
        "chat qwen-plus",
        "execute_tool get_time",
        "execute_tool get_weather",
        "invoke_agent",
    ]
    chat = next(s for s in spans if s.name == "chat qwen-plus")
    attributes = {kv.key: kv.value for kv in chat.attributes}
    assert attributes[gen_ai.GEN_AI_OPERATION_NAME].string_value == "chat"
    assert attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS].int_value in (50, 1200)
    assert all(KEY not in str(span) for span in spans)


def test_a_session_run_carries_its_conversation_id_and_a_pause(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    from agentkit.sessions import SQLiteStore

    server.queue(Reply.tool_calls(("delete_file", {"path": "a.txt"}, "d1")))
    store = SQLiteStore(str(tmp_path / "sessions.db"))
    with Agent(
        "qwen-plus", [delete_file], client=client, observers=traced(provider), store=store
    ) as agent:
        result = agent.run("Delete a.txt", session="cust-17")
    store.close()
    assert result.status == "paused"
    spans = exporter.get_finished_spans()
    run = by_name(spans)["invoke_agent"]
    chat = by_name(spans)["chat qwen-plus"]
    for span in (run, chat):
        assert (span.attributes or {})[gen_ai.GEN_AI_CONVERSATION_ID] == "cust-17"
    assert (run.attributes or {})["agentkit.paused"] is True
    (paused,) = [e for e in run.events if e.name == "agentkit.approval"]
    assert (paused.attributes or {})["agentkit.approval.paused"] is True
    assert (paused.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID] == "d1"
    assert run.status.status_code is StatusCode.UNSET


def test_a_resumed_decision_says_who_decided_and_when(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    from agentkit.sessions import SQLiteStore

    server.queue(
        Reply.tool_calls(
            ("delete_file", {"path": "a.txt"}, "d1"), ("delete_file", {"path": "b.txt"}, "d2")
        ),
        Reply.text("Deleted a.txt; b.txt was refused."),
    )
    store = SQLiteStore(str(tmp_path / "sessions.db"))
    with Agent(
        "qwen-plus", [delete_file], client=client, observers=traced(provider), store=store
    ) as agent:
        assert agent.run("Delete a.txt and b.txt", session="cust-18").status == "paused"
        exporter.clear()
        before = datetime.now(UTC)
        result = agent.resume(
            "cust-18", {"d1": True, "d2": "not that one"}, decided_by="reviewer:rosa"
        )
    store.close()
    assert result.output == "Deleted a.txt; b.txt was refused."
    run = by_name(exporter.get_finished_spans())["invoke_agent"]
    decided = {
        (e.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID]: dict(e.attributes or {})
        for e in run.events
        if e.name == "agentkit.approval"
    }
    assert {call: a["agentkit.approval.granted"] for call, a in decided.items()} == {
        "d1": True,
        "d2": False,
    }
    for attributes in decided.values():
        assert attributes["agentkit.approval.decided_by"] == "reviewer:rosa"
        when = datetime.fromisoformat(str(attributes["agentkit.approval.decided_at"]))
        assert before <= when <= datetime.now(UTC)
        assert "not that one" not in str(attributes)  # the reason is content: not captured


def test_a_resumed_paused_result_says_who_decided_async(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    server.queue(Reply.tool_calls(("delete_file", {"path": "a.txt"}, "d1")), Reply.text("Deleted."))

    async def main() -> None:
        async with AsyncChatClient(server.base_url, KEY) as client:
            agent = Agent("qwen-plus", [delete_file], client=client, observers=traced(provider))
            paused = await agent.run_async("Delete a.txt")
            assert paused.status == "paused"
            events = agent.resume_stream_async(paused, {"d1": True}, decided_by="ops:lee")
            async for _ in events:
                pass

    asyncio.run(main())
    runs = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent"]
    resumed = max(runs, key=lambda s: s.start_time or 0)
    (decided,) = [e for e in resumed.events if e.name == "agentkit.approval"]
    attributes = decided.attributes or {}
    assert attributes["agentkit.approval.granted"] is True
    assert attributes["agentkit.approval.decided_by"] == "ops:lee"
    assert "agentkit.approval.decided_at" in attributes


def test_decided_by_must_be_an_id(client: ChatClient) -> None:
    agent = Agent("qwen-plus", [delete_file], client=client)
    with agent, pytest.raises(agentkit.ResumeError, match="decided_by"):
        agent.resume("cust-19", {"d1": True}, decided_by="  ")


def test_a_stream_never_iterated_starts_no_span(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    with bot(client, provider) as agent:
        events = agent.stream("Hi")
        events.close()
        del events
    assert exporter.get_finished_spans() == ()
    assert provider.force_flush()
    assert len(server.requests) == 0


class _BrokenTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the exporter's backend is down")


class _BrokenProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> _BrokenTracer:
        return _BrokenTracer()


def test_a_failing_tracer_never_breaks_a_run(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(*weather_and_time())
    broken = [Instrumentation(tracer_provider=_BrokenProvider())]  # type: ignore[arg-type]
    with Agent("qwen-plus", [get_weather, get_time], client=client, observers=broken) as agent:
        assert agent.run("Weather and time?").output == "Sunny, ten o'clock."


def test_a_tracer_failing_mid_run_never_breaks_it(
    server: ScriptedServer,
    client: ChatClient,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_otel, "_usage_attributes", fail)  # every chat span's end fails
    server.queue(*weather_and_time())
    with bot(client, provider) as agent:
        assert agent.run("Weather and time?").output == "Sunny, ten o'clock."
    assert {s.name for s in exporter.get_finished_spans()} >= {"chat qwen-plus"}
