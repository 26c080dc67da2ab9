"""Tracing bots made of bots with the real OpenTelemetry SDK: a sub-agent's ``invoke_agent``
span is a child of the caller's ``execute_tool`` span for the call that ran it (parallel and
nested sub-agents, on the four drivers), and every span names its agent."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("opentelemetry.sdk")

from _helpers import Scripts
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from agentkit import Agent, RunFinished, RunObserver, tool
from agentkit.testing import Reply, ScriptedServer
from agentkit.tracing import Instrumentation

KEY = "sk-tracing-agents-0123456789"
DRIVERS = ["run", "run_async", "stream", "stream_async"]


@tool
def search_flights(to: str) -> str:
    """Search flights to a city."""
    return f"SAS flies to {to} at 9:00"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


def make(
    server: ScriptedServer,
    provider: TracerProvider | None,
    model: str,
    tools: Sequence[Any] = (),
) -> Agent[Any]:
    observers = [] if provider is None else [Instrumentation(tracer_provider=provider)]
    return Agent(
        model,
        list(tools),
        f"You are {model}.",
        base_url=server.base_url,
        api_key=KEY,
        name=model,
        observers=observers,
    )


def drive(agent: Agent[Any], driver: str, prompt: str) -> Any:
    """The output of one run with the named driver."""
    if driver == "run":
        return agent.run(prompt).output
    if driver == "run_async":
        return asyncio.run(agent.run_async(prompt)).output
    if driver == "stream":
        events = list(agent.stream(prompt))
    else:

        async def collect() -> list[Any]:
            return [event async for event in agent.stream_async(prompt)]

        events = asyncio.run(collect())
    assert isinstance(events[-1], RunFinished)
    return events[-1].result.output


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    found = [s for s in spans if s.context.span_id == span.parent.span_id]
    assert len(found) == 1, f"the parent of {span.name} is not among the run's spans"
    return found[0]


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def agent_of(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get(gen_ai.GEN_AI_AGENT_NAME)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sub_agents_run_span_is_a_child_of_the_callers_tool_span(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter, driver: str
) -> None:
    scripts = Scripts(server)
    flights = make(server, provider, "flights", [search_flights])
    planner = make(server, provider, "planner", [flights.as_tool()])
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "Oslo"}, "call-f")),
        Reply.text("Fly at 9."),
    )
    scripts.add(
        "flights", Reply.tool_calls(("search_flights", {"to": "Oslo"})), Reply.text("SAS 9:00")
    )
    assert drive(planner, driver, "Plan Oslo") == "Fly at 9."
    spans = exporter.get_finished_spans()
    (top,) = named(spans, "invoke_agent planner")
    (call,) = named(spans, "execute_tool flights")
    (sub,) = named(spans, "invoke_agent flights")
    assert top.parent is None
    assert parent_of(call, spans) is top
    assert parent_of(sub, spans) is call  # the sub-run hangs under the call that ran it
    assert {s.context.trace_id for s in spans} == {top.context.trace_id}
    inner = named(spans, "chat flights") + named(spans, "execute_tool search_flights")
    assert len(inner) == 3 and all(parent_of(s, spans) is sub for s in inner)
    # every span says whose it is
    for span in spans:
        expected = "flights" if span in [sub, *inner] else "planner"
        assert agent_of(span) == expected, span.name
    # the sub-run ended inside the call's span
    assert call.start_time is not None and sub.start_time is not None
    assert call.start_time <= sub.start_time
    assert sub.end_time is not None and call.end_time is not None
    assert sub.end_time <= call.end_time


@pytest.mark.parametrize("driver", DRIVERS)
def test_parallel_and_nested_sub_agents_each_hang_under_their_own_call(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter, driver: str
) -> None:
    scripts = Scripts(server)
    hotels = make(server, provider, "hotels")
    flights = make(server, provider, "flights", [hotels.as_tool()])
    planner = make(server, provider, "planner", [flights.as_tool(), hotels.as_tool()])
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "to Oslo"}, "call-f1"),
            ("flights", {"request": "back home"}, "call-f2"),
            ("hotels", {"request": "in Oslo"}, "call-h"),
        ),
        Reply.text("Planned."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("hotels", {"request": "near the airport"}, "call-deep")),
        Reply.text("F1"),
        Reply.text("F2"),
    )
    scripts.add("hotels", Reply.text("H1"), Reply.text("H2"))
    assert drive(planner, driver, "Plan") == "Planned."
    spans = exporter.get_finished_spans()
    calls = {
        (s.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID]: s
        for s in spans
        if s.name.startswith("execute_tool")
    }
    assert set(calls) == {"call-f1", "call-f2", "call-h", "call-deep"}
    runs = named(spans, "invoke_agent flights") + named(spans, "invoke_agent hotels")
    assert len(runs) == 4
    under = {}
    for run in runs:
        parent = parent_of(run, spans)
        assert parent is not None and parent.name.startswith("execute_tool")
        under[(parent.attributes or {})[gen_ai.GEN_AI_TOOL_CALL_ID]] = run
    assert set(under) == set(calls)  # one sub-run under each call, none under another's
    assert under["call-h"].name == under["call-deep"].name == "invoke_agent hotels"
    # the deep call belongs to a flights run, which belongs to one of the planner's calls
    deep_owner = parent_of(calls["call-deep"], spans)
    assert deep_owner in (under["call-f1"], under["call-f2"])
    assert agent_of(calls["call-deep"]) == "flights"
    assert len({s.context.trace_id for s in spans}) == 1


def test_an_untraced_caller_leaves_the_sub_run_under_the_current_span(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    scripts = Scripts(server)
    flights = make(server, provider, "flights")
    planner = make(server, None, "planner", [flights.as_tool()])
    scripts.add("planner", Reply.tool_calls(("flights", {"request": "Oslo"})), Reply.text("ok"))
    scripts.add("flights", Reply.text("SAS"))
    with provider.get_tracer("app").start_as_current_span("handle request") as outer:
        assert planner.run("go").output == "ok"
    (sub,) = named(exporter.get_finished_spans(), "invoke_agent flights")
    assert sub.parent is not None and sub.parent.span_id == outer.get_span_context().span_id


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_handoff_is_an_event_and_the_spans_after_it_name_the_target(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter, driver: str
) -> None:
    scripts = Scripts(server)
    told: list[tuple[str, str]] = []

    class Told(RunObserver):
        def handoff(self, source: str, target: str) -> None:
            told.append((source, target))

    billing = make(server, provider, "billing", [search_flights])
    triage = Agent(
        "triage",
        [],
        "You are triage.",
        base_url=server.base_url,
        api_key=KEY,
        name="triage",
        handoffs=[billing],
        # two observers of one run: the handoff reaches each of them
        observers=[Instrumentation(tracer_provider=provider), lambda info: Told()],
    )
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("search_flights", {"to": "Oslo"})),
        Reply.text("Billing says hi."),
    )
    assert drive(triage, driver, "Charged twice") == "Billing says hi."
    assert told == [("triage", "billing")]
    spans = exporter.get_finished_spans()
    (run,) = named(spans, "invoke_agent triage")
    assert not named(spans, "invoke_agent billing")  # one run: the conversation moved on
    (event,) = [e for e in run.events if e.name == "agentkit.handoff"]
    assert dict(event.attributes or {}) == {
        "agentkit.handoff.source": "triage",
        "agentkit.handoff.target": "billing",
        gen_ai.GEN_AI_AGENT_NAME: "billing",
    }
    chats = sorted(
        named(spans, "chat triage") + named(spans, "chat billing"), key=lambda s: s.start_time or 0
    )
    assert [(s.name, agent_of(s)) for s in chats] == [
        ("chat triage", "triage"),
        ("chat billing", "billing"),
        ("chat billing", "billing"),
    ]
    assert all(parent_of(s, spans) is run for s in chats)
    (searched,) = named(spans, "execute_tool search_flights")
    assert agent_of(searched) == "billing" and parent_of(searched, spans) is run


@tool(requires_approval=True)
def book_flight(flight: str) -> str:
    """Book a flight."""
    return f"booked {flight}"


def test_a_pause_inside_a_sub_agent_ends_the_agent_tool_calls_span_marked_paused(
    server: ScriptedServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    flights = make(server, provider, "flights", [book_flight])
    planner = make(server, provider, "planner", [flights.as_tool()])
    scripts = Scripts(server)
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "book"}, "call_0")),
        Reply.text("Done."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "call_0")),
        Reply.text("Booked."),
    )
    paused = planner.run("Book")
    assert paused.status == "paused"
    spans = exporter.get_finished_spans()
    (tool_span,) = [s for s in spans if s.name == "execute_tool flights"]
    assert tool_span.attributes is not None and tool_span.attributes["agentkit.paused"] is True
    (sub,) = [s for s in spans if s.name == "invoke_agent flights"]
    assert sub.parent is not None and sub.parent.span_id == tool_span.context.span_id
    exporter.clear()
    assert planner.resume(paused, {paused.pending[0]: True}).output == "Done."
    spans = exporter.get_finished_spans()
    (tool_span,) = [s for s in spans if s.name == "execute_tool flights"]
    (sub,) = [s for s in spans if s.name == "invoke_agent flights"]
    assert sub.parent is not None and sub.parent.span_id == tool_span.context.span_id
    assert any(s.name == "execute_tool book_flight" for s in spans)
