"""A pause deep inside an agent used as a tool pauses the whole run, and ``resume`` carries
on through every level to the final answer (no store: the paused ``RunResult`` itself, sent
through JSON). Over the real scripted server, one script per model name, so parallel
sub-runs get their own replies whatever the order."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from _helpers import Scripts

from agentkit import (
    Agent,
    MaxTurnsExceededError,
    PendingCall,
    RunContext,
    RunFinished,
    RunLimits,
    RunResult,
    SubAgentEvent,
    ToolResult,
    tool,
)
from agentkit._session import ResumeError
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-nested-pause-test-0123456789"
DRIVERS = ["run", "run_async", "stream", "stream_async"]


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


class Ledger:
    """What the tools did, in order (across threads)."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self._lock = threading.Lock()

    def add(self, entry: str) -> str:
        with self._lock:
            self.done.append(entry)
        return entry


@tool(requires_approval=True)
def book_flight(ctx: RunContext[Ledger], flight: str) -> str:
    """Book a flight."""
    return ctx.deps.add(f"booked {flight}")


@tool
def search_flights(ctx: RunContext[Ledger], to: str) -> str:
    """Search flights to a city."""
    return ctx.deps.add(f"SK{len(to)} to {to}")


@tool(requires_approval=True)
def book_hotel(ctx: RunContext[Ledger], hotel: str) -> str:
    """Book a hotel."""
    return ctx.deps.add(f"hotel {hotel}")


def make(server: ScriptedServer, model: str, tools: Sequence[Any] = (), **options: Any) -> Any:
    return Agent(
        model, list(tools), f"You are {model}.", base_url=server.base_url, api_key=KEY, **options
    )


def travel(server: ScriptedServer) -> tuple[Agent[Any], Agent[Any]]:
    """``planner`` asks ``flights`` (which may book, with approval)."""
    flights = make(server, "flights", [search_flights, book_flight], name="flights")
    planner = make(server, "planner", [flights.as_tool(description="Flights.")], name="planner")
    return planner, flights


def through_json(result: RunResult[Any]) -> RunResult[Any]:
    """The paused result as another process would rebuild it from JSON."""
    data = json.loads(json.dumps({"messages": result.messages, "state": result.resume_state}))
    return RunResult(
        None, data["messages"], result.usage, 0, status="paused", resume_state=data["state"]
    )


def start(
    agent: Agent[Any], driver: str, prompt: str, deps: Any
) -> tuple[RunResult[Any], list[Any]]:
    """One run with the named driver: its result and events."""
    if driver == "run":
        return agent.run(prompt, deps=deps), []
    if driver == "run_async":
        return asyncio.run(agent.run_async(prompt, deps=deps)), []
    if driver == "stream":
        events = list(agent.stream(prompt, deps=deps))
    else:

        async def collect() -> list[Any]:
            return [event async for event in agent.stream_async(prompt, deps=deps)]

        events = asyncio.run(collect())
    return _finished(events), events


def resume(
    agent: Agent[Any], driver: str, paused: RunResult[Any], decisions: Mapping[Any, Any], deps: Any
) -> tuple[RunResult[Any], list[Any]]:
    """One resume with the named driver (resume, resume_async, resume_stream, ...)."""
    if driver == "run":
        return agent.resume(paused, decisions, deps=deps), []
    if driver == "run_async":
        return asyncio.run(agent.resume_async(paused, decisions, deps=deps)), []
    if driver == "stream":
        events = list(agent.resume_stream(paused, decisions, deps=deps))
    else:

        async def collect() -> list[Any]:
            stream = agent.resume_stream_async(paused, decisions, deps=deps)
            return [event async for event in stream]

        events = asyncio.run(collect())
    return _finished(events), events


def _finished(events: list[Any]) -> RunResult[Any]:
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    result: RunResult[Any] = finished[0].result
    return result


def script_one_booking(scripts: Scripts) -> None:
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "book Oslo"}, "call_0")),
        Reply.text("You fly SK4 to Oslo."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("search_flights", {"to": "Oslo"}, "call_0")),
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "call_0")),
        Reply.text("Booked SK4."),
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_nested_approval_pauses_the_whole_run_and_resume_goes_on_through_every_level(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    planner, _ = travel(server)
    script_one_booking(scripts)
    ledger = Ledger()
    paused, _ = start(planner, driver, "Get me to Oslo", ledger)
    assert paused.status == "paused" and paused.output is None
    assert ledger.done == ["SK4 to Oslo"]  # the ungated search ran; the booking waits
    (call,) = paused.pending
    assert (call.name, call.path, call.via, call.call_id) == (
        "book_flight",
        ("planner", "flights"),
        ("call_0",),
        "call_0",
    )
    assert call.key == "call_0/call_0" and call.kwargs == {"flight": "SK4"}
    # the caller's agent-tool call stays open: its transcript ends with that call
    assert paused.messages[-1]["tool_calls"][0]["function"]["name"] == "flights"
    assert paused.resume_state is not None
    nested = paused.resume_state["nested"]["call_0"]
    assert nested["messages"][-1]["tool_calls"][0]["function"]["name"] == "book_flight"
    assert server.request_count == 3

    done, events = resume(planner, driver, through_json(paused), {call: True}, ledger)
    assert done.status == "done" and done.output == "You fly SK4 to Oslo."
    assert ledger.done == ["SK4 to Oslo", "booked SK4"]  # the search was not run again
    # the sub-agent got its booking's result and its earlier search, and answered
    sub_last = scripts.seen["flights"][-1]["messages"]
    assert [m["content"] for m in sub_last if m["role"] == "tool"] == ["SK4 to Oslo", "booked SK4"]
    # the caller's model got the sub-agent's answer as the tool's result
    top_last = scripts.seen["planner"][-1]["messages"]
    assert top_last[-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "name": "flights",
        "content": "Booked SK4.",
    }
    if driver.startswith("stream"):
        inner = [e.event for e in events if isinstance(e, SubAgentEvent)]
        assert any(isinstance(e, ToolResult) and e.output == "booked SK4" for e in inner)


def test_a_refusal_reaches_the_sub_agents_model(server: ScriptedServer, scripts: Scripts) -> None:
    planner, _ = travel(server)
    script_one_booking(scripts)
    ledger = Ledger()
    paused = planner.run("Get me to Oslo", deps=ledger)
    done = planner.resume(paused, {"call_0/call_0": "too expensive"}, deps=ledger)
    assert done.status == "done" and ledger.done == ["SK4 to Oslo"]
    told = scripts.seen["flights"][-1]["messages"][-1]["content"]
    assert "did not approve" in told and "too expensive" in told


def test_a_decision_made_on_other_arguments_is_refused_and_runs_nothing(
    server: ScriptedServer, scripts: Scripts
) -> None:
    planner, _ = travel(server)
    script_one_booking(scripts)
    ledger = Ledger()
    paused = planner.run("Get me to Oslo", deps=ledger)
    (call,) = paused.pending
    forged = PendingCall(
        call.call_id, call.name, '{"flight": "SK9"}', digest="0" * 64, path=call.path, via=call.via
    )
    with pytest.raises(ResumeError, match="other arguments"):
        planner.resume(paused, {forged: True}, deps=ledger)
    assert ledger.done == ["SK4 to Oslo"] and server.request_count == 3


@pytest.mark.parametrize(
    ("decisions", "match"),
    [
        ({"call_0": True}, r"'call_0' ran an agent whose run paused.*'call_0/call_0'"),
        ({"call_9/call_0": True}, "no paused call 'call_9/call_0'"),
        ({("call_0", "call_0", "call_0"): True}, "no paused call"),
        ({}, "no decision for the paused call 'call_0/call_0'"),
        ({"call_0/call_0": "yes", "call_0/x": True}, "no paused call 'call_0/x'"),
        ({"call_0/call_0": 1}, "must be True, False or a reason"),
        ({7: True}, "a decision's key"),
    ],
)
def test_decisions_that_do_not_fit_the_nested_pause_are_refused(
    server: ScriptedServer, scripts: Scripts, decisions: dict[Any, Any], match: str
) -> None:
    planner, _ = travel(server)
    script_one_booking(scripts)
    ledger = Ledger()
    paused = planner.run("Get me to Oslo", deps=ledger)
    with pytest.raises(ResumeError, match=match):
        planner.resume(paused, decisions, deps=ledger)
    assert ledger.done == ["SK4 to Oslo"] and server.request_count == 3


@tool
def broken(ctx: RunContext[Ledger]) -> str:
    """A tool that always fails."""
    ctx.deps.add("broken ran")
    raise RuntimeError("the line is down")


@pytest.mark.parametrize("driver", DRIVERS)
def test_parallel_sub_agents_each_pause_and_nothing_that_ran_runs_again(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    flights = make(server, "flights", [search_flights, book_flight], name="flights")
    hotels = make(server, "hotels", [book_hotel], name="hotels")
    planner = make(
        server,
        "planner",
        [flights.as_tool(), hotels.as_tool(), broken, book_hotel],
        name="planner",
    )
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "Oslo"}, "call_0"),
            ("hotels", {"request": "Oslo"}, "call_1"),
            ("broken", {}, "call_2"),
            ("book_hotel", {"hotel": "Top"}, "call_3"),
        ),
        Reply.text("All set."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("search_flights", {"to": "Oslo"}, "call_0")),
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "call_0")),
        Reply.text("Flight booked."),
    )
    scripts.add(
        "hotels",
        Reply.tool_calls(("book_hotel", {"hotel": "Grand"}, "call_0")),
        Reply.text("Hotel refused."),
    )
    ledger = Ledger()
    paused, _ = start(planner, driver, "Trip", ledger)
    assert paused.status == "paused"
    by_key = {call.key: call for call in paused.pending}
    assert set(by_key) == {"call_3", "call_0/call_0", "call_1/call_0"}
    assert by_key["call_3"].path == ("planner",) and by_key["call_3"].via == ()
    assert by_key["call_0/call_0"].path == ("planner", "flights")
    assert by_key["call_1/call_0"].path == ("planner", "hotels")
    assert sorted(ledger.done) == ["SK4 to Oslo", "broken ran"]

    # only some of the decisions: refused, nothing runs
    with pytest.raises(ResumeError, match="no decision for the paused call 'call_1/call_0'"):
        resume(planner, driver, paused, {"call_3": True, "call_0/call_0": True}, ledger)
    assert sorted(ledger.done) == ["SK4 to Oslo", "broken ran"]

    decisions = {"call_3": False, by_key["call_0/call_0"]: True, "call_1/call_0": False}
    done, _ = resume(planner, driver, through_json(paused), decisions, ledger)
    assert done.output == "All set."
    # the search and the failing tool did not run again; only the approved booking ran
    assert sorted(ledger.done) == ["SK4 to Oslo", "booked SK4", "broken ran"]
    top = scripts.seen["planner"][-1]["messages"]
    answers = {m["tool_call_id"]: m["content"] for m in top if m["role"] == "tool"}
    assert answers["call_0"] == "Flight booked." and answers["call_1"] == "Hotel refused."
    assert "the line is down" in answers["call_2"] and "did not approve" in answers["call_3"]
    assert [m["tool_call_id"] for m in top if m["role"] == "tool"] == [
        "call_0",
        "call_1",
        "call_2",
        "call_3",
    ]


def test_a_sub_agent_that_pauses_twice_in_a_row_pauses_the_run_twice(
    server: ScriptedServer, scripts: Scripts
) -> None:
    planner, _ = travel(server)
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "two legs"}, "call_0")),
        Reply.text("Both legs booked."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("book_flight", {"flight": "SK1"}, "call_0")),
        Reply.tool_calls(("book_flight", {"flight": "SK2"}, "call_0")),
        Reply.text("SK1 and SK2."),
    )
    ledger = Ledger()
    first = planner.run("Book", deps=ledger)
    assert [c.kwargs for c in first.pending] == [{"flight": "SK1"}]
    second = planner.resume(through_json(first), {c: True for c in first.pending}, deps=ledger)
    assert second.status == "paused" and ledger.done == ["booked SK1"]
    (call,) = second.pending
    assert call.kwargs == {"flight": "SK2"} and call.key == "call_0/call_0"
    # the first decision, replayed on the second pause, is for other arguments
    with pytest.raises(ResumeError, match="other arguments"):
        planner.resume(second, {first.pending[0]: True}, deps=ledger)
    done = planner.resume(through_json(second), {call: True}, deps=ledger)
    assert done.output == "Both legs booked." and ledger.done == ["booked SK1", "booked SK2"]
    # the sub-agent's whole conversation survived both pauses
    sub = scripts.seen["flights"][-1]["messages"]
    assert [m["content"] for m in sub if m["role"] == "tool"] == ["booked SK1", "booked SK2"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_three_levels_pause_and_resume_with_the_same_call_id_at_each(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    flights = make(server, "flights", [book_flight], name="flights")
    trip = make(server, "trip", [flights.as_tool()], name="trip")
    planner = make(server, "planner", [trip.as_tool()], name="planner")
    scripts.add(
        "planner",
        Reply.tool_calls(("trip", {"request": "Oslo"}, "call_0")),
        Reply.text("Trip done."),
    )
    scripts.add(
        "trip",
        Reply.tool_calls(("flights", {"request": "Oslo"}, "call_0")),
        Reply.text("Trip has SK4."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "call_0")),
        Reply.text("SK4 booked."),
    )
    ledger = Ledger()
    paused, _ = start(planner, driver, "Go", ledger)
    (call,) = paused.pending
    assert call.path == ("planner", "trip", "flights")
    assert call.via == ("call_0", "call_0") and call.key == "call_0/call_0/call_0"
    done, events = resume(planner, driver, through_json(paused), {call.key: True}, ledger)
    assert done.output == "Trip done." and ledger.done == ["booked SK4"]
    assert scripts.seen["trip"][-1]["messages"][-1]["content"] == "SK4 booked."
    if driver.startswith("stream"):
        deep = [e for e in events if isinstance(e, SubAgentEvent) and len(e.path) == 2]
        assert deep and all(e.path == ("trip", "flights") for e in deep)


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_a_sub_agents_side_effect_call_past_its_timeout_is_in_doubt_at_the_top(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    release = threading.Event()

    @tool(side_effects=True, timeout=0.2)
    def send_money(to: str) -> str:
        """Send money."""
        release.wait(30)
        return "sent"

    bank = make(server, "bank", [send_money], name="bank")
    planner = make(server, "planner", [bank.as_tool()], name="planner")
    scripts.add(
        "planner",
        Reply.tool_calls(("bank", {"request": "pay Ann"}, "call_0")),
        Reply.text("Check with the bank."),
    )
    scripts.add(
        "bank",
        Reply.tool_calls(("send_money", {"to": "Ann"}, "call_0")),
        Reply.text("Unsure it was sent."),
    )
    try:
        result, _ = start(planner, driver, "Pay Ann", Ledger())
    finally:
        release.set()
    (doubt,) = result.in_doubt
    assert (doubt.name, doubt.path, doubt.via) == ("send_money", ("planner", "bank"), ("call_0",))


def test_one_sub_agent_called_twice_in_a_round_pauses_twice_with_its_own_keys(
    server: ScriptedServer,
) -> None:
    """Both calls of the same sub-agent pause on a call with the same id and path: only
    ``via`` tells them apart, and each decision reaches its own sub-run."""

    def answer(request: RecordedRequest) -> Reply:
        body = request.json()
        messages = body["messages"]
        if body["model"] == "planner":
            if messages[-1]["role"] == "user":
                return Reply.tool_calls(
                    ("flights", {"request": "Oslo"}, "call_0"),
                    ("flights", {"request": "Rome"}, "call_1"),
                )
            return Reply.text("Trips sorted.")
        city = messages[1]["content"]
        if messages[-1]["role"] == "user":
            return Reply.tool_calls(("book_flight", {"flight": f"to {city}"}, "call_0"))
        return Reply.text(f"{city}: {messages[-1]['content']}")

    server.respond_with(answer)
    planner, _ = travel(server)
    ledger = Ledger()
    paused = planner.run("Two trips", deps=ledger)
    by_key = {call.key: call for call in paused.pending}
    assert set(by_key) == {"call_0/call_0", "call_1/call_0"}
    assert {call.path for call in paused.pending} == {("planner", "flights")}
    assert by_key["call_1/call_0"].kwargs == {"flight": "to Rome"}
    decisions: dict[Any, bool | str] = {
        by_key["call_0/call_0"]: True,
        "call_1/call_0": "Rome is full",
    }
    done = planner.resume(through_json(paused), decisions, deps=ledger)
    assert done.output == "Trips sorted." and ledger.done == ["booked to Oslo"]
    answers = {m["tool_call_id"]: m["content"] for m in done.messages if m["role"] == "tool"}
    assert answers["call_0"] == "Oslo: booked to Oslo"
    assert answers["call_1"].startswith("Rome: Not run") and "Rome is full" in answers["call_1"]


def test_call_ids_that_hold_a_slash_give_each_paused_call_its_own_key(
    server: ScriptedServer, scripts: Scripts
) -> None:
    # The model picks call ids: the planner's own call "a/b" and the call "b" inside its
    # agent-tool call "a" would both be "a/b". The top call's "/" is escaped in its key
    # ("a%2Fb"), so each key names one call; the bare text "a/b" (one's key, the other's
    # id) is refused as ambiguous and runs nothing.
    flights = make(server, "flights", [book_flight], name="flights")
    planner = make(server, "planner", [flights.as_tool(), book_hotel], name="planner")
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "Oslo"}, "a"), ("book_hotel", {"hotel": "Inn"}, "a/b")
        ),
        Reply.text("Done."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "b")),
        Reply.text("Flight refused."),
    )
    ledger = Ledger()
    paused = planner.run("Trip", deps=ledger)
    keys = {call.key: (call.via, call.call_id) for call in paused.pending}
    assert keys == {"a%2Fb": ((), "a/b"), "a/b": (("a",), "b")}
    with pytest.raises(ResumeError, match="names more than one paused call"):
        planner.resume(paused, {"a/b": True, "a%2Fb": True}, deps=ledger)
    assert ledger.done == []
    below = next(call for call in paused.pending if call.via == ("a",))
    decisions: dict[Any, bool | str] = {"a%2Fb": True, below: "no flights"}
    done = planner.resume(through_json(paused), decisions, deps=ledger)
    assert done.output == "Done." and ledger.done == ["hotel Inn"]
    told = tool_messages_of(scripts.seen["flights"][-1]["messages"])
    assert "no flights" in told[-1]


def tool_messages_of(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


@pytest.mark.parametrize("driver", ["run", "stream_async"])
def test_a_resumed_nested_run_takes_from_a_fresh_budget_of_the_callers_limits(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # A paused run's counts are not stored (for one agent either), so a resume starts the
    # run tree's budget afresh from the caller's limits, and the resumed sub-run takes
    # from it: here four model calls, then the run ends typed.
    flights = make(server, "flights", [search_flights, book_flight], name="flights")
    planner = make(server, "planner", [flights.as_tool()], limits=RunLimits(max_turns=4))
    scripts.add("planner", Reply.tool_calls(("flights", {"request": "book Oslo"}, "call_0")))
    scripts.add(
        "flights",
        Reply.tool_calls(("search_flights", {"to": "Oslo"}, "call_0")),
        Reply.tool_calls(("book_flight", {"flight": "SK4"}, "call_0")),
        *(Reply.tool_calls(("search_flights", {"to": f"City{i}"}, "call_0")) for i in range(9)),
    )
    ledger = Ledger()
    paused, _ = start(planner, driver, "Get me to Oslo", ledger)
    assert paused.status == "paused"
    assert {model: len(seen) for model, seen in scripts.seen.items()} == {
        "planner": 1,
        "flights": 2,
    }
    (call,) = paused.pending
    with pytest.raises(MaxTurnsExceededError) as caught:
        resume(planner, driver, through_json(paused), {call: True}, ledger)
    assert "across its agents" in str(caught.value)
    # the resume's four model calls were all the sub-agent's; the caller's next one was
    # refused
    assert len(scripts.seen["flights"]) == 2 + 4 and len(scripts.seen["planner"]) == 1
    assert ledger.done[:2] == ["SK4 to Oslo", "booked SK4"]
    assert ledger.done.count("booked SK4") == 1
