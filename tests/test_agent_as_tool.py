"""Agents as tools (Agent.as_tool): a sub-run inside the caller's run, over the real
scripted server. Each agent has its own model name, and the server answers each model from
its own script, so parallel sub-runs get their own replies whatever the order."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from _helpers import Scripts
from pydantic import BaseModel

from agentkit import (
    Agent,
    ChatClient,
    ConfigurationError,
    MaxTurnsExceededError,
    Principal,
    RunContext,
    RunFinished,
    RunLimits,
    RunObserver,
    RunResult,
    RunTimeoutError,
    SubAgentEvent,
    TextDelta,
    Tool,
    ToolCallStarted,
    ToolResult,
    tool,
)
from agentkit._calls import RunTools, ToolOutcome
from agentkit._sources import ToolSource
from agentkit._threads import _Job, _work
from agentkit._wire import ChatCompletion
from agentkit.cli._console import Console, play
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-as-tool-test-0123456789"
DRIVERS = ["run", "run_async", "stream", "stream_async"]
# The caller's tool_timeout where a sub-agent must reach its held tool first (one model
# round trip): 1.5 s, since a loaded machine can take more than 0.2-0.3 s for that, and the
# sub-run counted no request.
WORKER_TIMEOUT = 1.5


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


@tool
def search_flights(ctx: RunContext[dict[str, str]], to: str) -> str:
    """Search flights to a city."""
    return f"{ctx.deps['airline']} flies to {to} at 9:00"


def make(
    server: ScriptedServer, model: str, tools: Sequence[Any] = (), **options: Any
) -> Agent[Any]:
    return Agent(
        model, list(tools), f"You are {model}.", base_url=server.base_url, api_key=KEY, **options
    )


def drive(
    agent: Agent[Any], driver: str, prompt: str, **kwargs: Any
) -> tuple[RunResult[Any], list[Any]]:
    """The result and the events of one run with the named driver."""
    if driver == "run":
        return agent.run(prompt, **kwargs), []
    if driver == "run_async":
        return asyncio.run(agent.run_async(prompt, **kwargs)), []
    if driver == "stream":
        events = list(agent.stream(prompt, **kwargs))
    else:

        async def collect() -> list[Any]:
            return [event async for event in agent.stream_async(prompt, **kwargs)]

        events = asyncio.run(collect())
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    return finished[0].result, events


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sub_agent_answers_one_request_with_the_callers_deps_and_usage(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    flights = make(server, "flights", [search_flights], name="flights")
    planner = make(server, "planner", [flights.as_tool(description="Find flights.")])
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "a flight to Oslo"}), usage=usage(100, 10)),
        Reply.text("Book the 9:00 to Oslo.", usage=usage(200, 20)),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("search_flights", {"to": "Oslo"}), usage=usage(30, 3)),
        Reply.text("SAS at 9:00.", usage=usage(40, 4)),
    )
    result, events = drive(planner, driver, "Plan Oslo", deps={"airline": "SAS"})
    assert result.output == "Book the 9:00 to Oslo."
    # the sub-agent saw the request as its user message, and the caller's deps
    sub_messages = scripts.seen["flights"][1]["messages"]
    assert sub_messages[1] == {"role": "user", "content": "a flight to Oslo"}
    assert sub_messages[-1]["content"] == "SAS flies to Oslo at 9:00"
    # the caller's model got the sub-agent's answer as the tool's output
    tool_message = scripts.seen["planner"][1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "SAS at 9:00."
    # usage: both levels summed
    assert result.usage.prompt_tokens == 100 + 200 + 30 + 40
    assert result.usage.completion_tokens == 10 + 20 + 3 + 4
    tool_spec = scripts.seen["planner"][0]["tools"][0]["function"]
    assert tool_spec["name"] == "flights" and tool_spec["description"] == "Find flights."
    assert tool_spec["parameters"]["required"] == ["request"]
    if driver.startswith("stream"):
        nested = [e for e in events if isinstance(e, SubAgentEvent)]
        assert nested and all(e.path == ("flights",) and e.agent == "flights" for e in nested)
        text = "".join(e.event.text for e in nested if isinstance(e.event, TextDelta))
        assert text == "SAS at 9:00."
        inner = [e.event for e in nested]
        assert isinstance(inner[-1], RunFinished) and inner[-1].result.output == "SAS at 9:00."
        # every event of the sub-run comes before the caller's ToolResult for that call
        result_at = next(i for i, e in enumerate(events) if isinstance(e, ToolResult))
        last_nested = max(i for i, e in enumerate(events) if isinstance(e, SubAgentEvent))
        assert last_nested < result_at
    else:
        assert not events


@pytest.mark.parametrize("driver", DRIVERS)
def test_parallel_sub_agents_each_get_their_own_answer(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    flights = make(server, "flights", name="flights")
    hotels = make(server, "hotels", name="hotels")
    planner = make(server, "planner", [flights.as_tool(), hotels.as_tool()])
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "to Oslo"}),
            ("hotels", {"request": "in Oslo"}),
            ("flights", {"request": "back home"}),
            usage=usage(1, 1),
        ),
        Reply.text("Done.", usage=usage(1, 1)),
    )
    scripts.add("flights", Reply.text("F1", usage=usage(5, 5)), Reply.text("F2", usage=usage(5, 5)))
    scripts.add("hotels", Reply.text("H1", usage=usage(7, 7)))
    result, events = drive(planner, driver, "Plan")
    tool_messages = [m for m in scripts.seen["planner"][1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 3
    assert tool_messages[1]["content"] == "H1"
    assert sorted([tool_messages[0]["content"], tool_messages[2]["content"]]) == ["F1", "F2"]
    assert result.usage.total_tokens == 4 + 20 + 14
    if driver.startswith("stream"):
        finished = [
            e for e in events if isinstance(e, SubAgentEvent) and isinstance(e.event, RunFinished)
        ]
        assert sorted(e.agent for e in finished) == ["flights", "flights", "hotels"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_nested_sub_agents_tag_events_with_the_whole_path(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    hotels = make(server, "hotels", name="hotels")
    flights = make(server, "flights", [hotels.as_tool()], name="flights")
    planner = make(server, "planner", [flights.as_tool()], name="planner")
    scripts.add(
        "planner",
        Reply.tool_calls(("flights", {"request": "trip"}), usage=usage(1, 0)),
        Reply.text("Trip planned.", usage=usage(1, 0)),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("hotels", {"request": "a bed"}), usage=usage(10, 0)),
        Reply.text("Flight and bed.", usage=usage(10, 0)),
    )
    scripts.add("hotels", Reply.text("A bed.", usage=usage(100, 0)))
    result, events = drive(planner, driver, "Go")
    assert result.output == "Trip planned."
    assert result.usage.prompt_tokens == 122
    assert scripts.seen["flights"][1]["messages"][-1]["content"] == "A bed."
    if driver.startswith("stream"):
        deep = [
            e for e in events if isinstance(e, SubAgentEvent) and e.path == ("flights", "hotels")
        ]
        assert deep and isinstance(deep[-1].event, RunFinished)
        assert not any(
            isinstance(e.event, SubAgentEvent) for e in events if isinstance(e, SubAgentEvent)
        )


class Trip(BaseModel):
    city: str
    nights: int


def test_input_type_gives_the_tool_the_models_fields(
    server: ScriptedServer, scripts: Scripts
) -> None:
    hotels = make(server, "hotels", name="hotels")
    tool_ = hotels.as_tool(name="book_hotel", input_type=Trip)
    assert tool_.name == "book_hotel"
    assert set(tool_.parameters["properties"]) == {"city", "nights"}
    assert tool_.parameters["required"] == ["city", "nights"]
    planner = make(server, "planner", [tool_])
    scripts.add(
        "planner",
        Reply.tool_calls(("book_hotel", {"city": "Oslo", "nights": "x"})),
        Reply.tool_calls(("book_hotel", {"city": "Oslo", "nights": 2})),
        Reply.text("Booked."),
    )
    scripts.add("hotels", Reply.text("Room 12."))
    assert planner.run("Stay").output == "Booked."
    # invalid input never reached the sub-agent; the valid one arrived as the model's JSON
    assert len(scripts.seen["hotels"]) == 1
    assert json.loads(scripts.seen["hotels"][0]["messages"][1]["content"]) == {
        "city": "Oslo",
        "nights": 2,
    }


def test_a_name_is_needed_and_input_type_must_be_a_model(server: ScriptedServer) -> None:
    anonymous = make(server, "x")
    with pytest.raises(ConfigurationError, match="name"):
        anonymous.as_tool()
    assert anonymous.as_tool(name="helper").name == "helper"
    with pytest.raises(ConfigurationError, match="pydantic"):
        anonymous.as_tool(name="helper", input_type=dict)  # type: ignore[arg-type]


class _Source(ToolSource):
    """A tool source whose tools are set after the agents exist (a cycle can form)."""

    def __init__(self) -> None:
        self.found: list[Tool[..., Any]] = []

    def tools(self) -> Sequence[Tool[..., Any]]:
        return self.found

    async def tools_async(self) -> Sequence[Tool[..., Any]]:
        return self.found


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_cycle_is_refused_before_any_request(server: ScriptedServer, driver: str) -> None:
    source = _Source()
    triage = make(server, "triage", [source], name="triage")
    billing = make(server, "billing", [triage.as_tool()], name="billing")
    source.found = [billing.as_tool()]
    with pytest.raises(ConfigurationError, match="cycle: triage -> billing -> triage"):
        drive(triage, driver, "hi")
    assert server.request_count == 0


def test_a_sub_agent_given_a_sync_client_is_refused_before_any_request(
    server: ScriptedServer,
) -> None:
    with ChatClient(server.base_url, KEY) as client:
        flights = Agent("flights", [], client=client, name="flights")
        planner = make(server, "planner", [flights.as_tool()])
        with pytest.raises(ConfigurationError, match="AsyncChatClient"):
            planner.run("go")
    assert server.request_count == 0


def test_cancelling_the_caller_cancels_the_sub_run(
    server: ScriptedServer, scripts: Scripts
) -> None:
    started: list[asyncio.Event] = []
    cancelled: list[bool] = []

    @tool
    async def wait_forever() -> str:
        """Wait."""
        started[0].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    worker = make(server, "worker", [wait_forever], name="worker")
    boss = make(server, "boss", [worker.as_tool()])
    scripts.add("boss", Reply.tool_calls(("worker", {"request": "work"})))
    scripts.add("worker", Reply.tool_calls(("wait_forever", {})))

    async def main() -> None:
        started.append(asyncio.Event())
        task = asyncio.create_task(boss.run_async("go"))
        await started[0].wait()  # the sub-agent's own tool is running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == [True]


def test_a_failing_sub_run_still_counts_its_usage(server: ScriptedServer, scripts: Scripts) -> None:
    flaky = make(server, "flaky", name="flaky", limits=RunLimits(max_turns=1))
    boss = make(server, "boss", [flaky.as_tool()])
    scripts.add(
        "boss",
        Reply.tool_calls(("flaky", {"request": "x"}), usage=usage(1, 0)),
        Reply.text("gave up", usage=usage(1, 0)),
    )
    # the sub-agent calls an unknown tool and runs out of turns
    scripts.add("flaky", Reply.tool_calls(("nothing", {}), usage=usage(50, 0)))
    result = boss.run("go")
    assert result.output == "gave up"
    assert result.usage.prompt_tokens == 52
    told = scripts.seen["boss"][1]["messages"][-1]["content"]
    assert "flaky" in told


def test_the_cli_shows_a_sub_agents_work_indented(server: ScriptedServer, scripts: Scripts) -> None:
    @tool
    def find(to: str) -> str:
        """Find flights to a city."""
        return f"SAS flies to {to}"

    flights = make(server, "flights", [find], name="flights")
    planner = make(server, "planner", [flights.as_tool()])
    scripts.add(
        "planner", Reply.tool_calls(("flights", {"request": "Oslo"})), Reply.text("Fly at 9.")
    )
    scripts.add("flights", Reply.tool_calls(("find", {"to": "Oslo"})), Reply.text("SAS 9:00"))
    out, err = io.StringIO(), io.StringIO()
    play(planner, "Plan", Console(out, err))
    assert out.getvalue() == "Fly at 9.\n"  # only the top answer is the answer
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("  -> flights(")
    assert lines[1].startswith("      -> [flights] find(")
    assert lines[2].startswith("      <- [flights] find ") and "SAS flies" in lines[2]
    assert lines[3] == "      [flights] SAS 9:00"
    assert lines[4].startswith("  <- flights ") and lines[4].endswith("SAS 9:00")


@pytest.mark.parametrize("driver", ["run", "stream"])
def test_a_sync_run_keeps_one_connection_per_agent_across_sub_agent_calls(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # The sync driver runs the sub-agent on its own sync driver and client in the tool
    # thread: no event loop and async client (with a new connection) made per call.
    seen_loops: list[bool] = []

    @tool
    def where(city: str) -> str:
        """Where a city is."""
        return f"{city} is in Norway"

    flights = make(server, "flights", [where], name="flights", observers=[_loop_probe(seen_loops)])
    planner = make(server, "planner", [flights.as_tool()])
    for _ in range(3):
        scripts.add("planner", Reply.tool_calls(("flights", {"request": "Oslo"})), Reply.text("ok"))
        scripts.add("flights", Reply.tool_calls(("where", {"city": "Oslo"})), Reply.text("SAS"))
        result, _ = drive(planner, driver, "go")
        assert result.output == "ok"
        assert scripts.seen["planner"][-1]["messages"][-1]["content"] == "SAS"
    # the planner's connection and the sub-agent's, each kept between calls and runs
    assert server.connections_opened == 2
    assert seen_loops == [False] * 3  # the sub-runs ran with no event loop under them


def _loop_probe(seen: list[bool]) -> Any:
    """An observer factory noting whether each run starts on a running event loop."""

    def factory(info: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen.append(False)
        else:
            seen.append(True)

    return factory


def test_a_streamed_sync_sub_run_stops_once_its_call_timed_out(
    server: ScriptedServer, scripts: Scripts
) -> None:
    release = threading.Event()
    ended = threading.Event()
    failures: list[BaseException] = []

    @tool
    def hold() -> str:
        """Hold until released."""
        release.wait(30)
        return "held"

    class Watch(RunObserver):
        def run_failed(self, error: BaseException) -> None:
            failures.append(error)
            ended.set()

        def run_finished(self, result: RunResult[Any]) -> None:
            ended.set()

    worker = make(server, "worker", [hold], name="worker", observers=[lambda info: Watch()])
    boss = make(server, "boss", [worker.as_tool()], limits=RunLimits(tool_timeout=WORKER_TIMEOUT))
    scripts.add("boss", Reply.tool_calls(("worker", {"request": "work"})), Reply.text("gave up"))
    scripts.add("worker", Reply.tool_calls(("hold", {})), Reply.text("too late"))
    events = list(boss.stream("go"))
    timed_out = [e for e in events if isinstance(e, ToolResult) and e.name == "worker"]
    assert len(timed_out) == 1 and "timed out" in (timed_out[0].error or "")
    assert isinstance(events[-1], RunFinished) and events[-1].result.output == "gave up"
    release.set()  # the sub-agent's tool returns after its caller gave up on it
    assert ended.wait(30)
    assert len(failures) == 1 and isinstance(failures[0], GeneratorExit)  # closed there
    assert len(scripts.seen["worker"]) == 1  # its model was not asked again


# --- the sub-run on the caller's terms: who, until when, and until the caller leaves ---------


class Ends(RunObserver):
    """Notes how a run ended (its error, or ``None`` when it finished), across threads."""

    def __init__(self) -> None:
        self.errors: list[BaseException | None] = []
        self.ended = threading.Event()

    def run_failed(self, error: BaseException) -> None:
        self.errors.append(error)
        self.ended.set()

    def run_finished(self, result: RunResult[Any]) -> None:
        self.errors.append(None)
        self.ended.set()


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_sub_run_acts_for_the_callers_principal(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    @tool
    def whoami(ctx: RunContext[None]) -> str:
        """Who the run acts for."""
        assert ctx.principal is not None
        return f"{ctx.principal.id} {sorted(ctx.principal.roles)}"

    clerk = make(server, "clerk", [whoami], name="clerk")
    boss = make(server, "boss", [clerk.as_tool()])
    scripts.add("boss", Reply.tool_calls(("clerk", {"request": "who?"})), Reply.text("ok"))
    scripts.add("clerk", Reply.tool_calls(("whoami", {})), Reply.text("told"))
    drive(boss, driver, "go", principal=Principal("ana", frozenset({"agent"})))
    assert scripts.seen["clerk"][1]["messages"][-1]["content"] == "ana ['agent']"


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_callers_deadline_ends_the_sub_run_itself(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # The sub-agent's own tool outlives the caller's run_timeout: the sub-run ends at the
    # caller's deadline (not at its tool's 120 s timeout), and asks its model nothing more.
    release = threading.Event()

    @tool
    def think() -> str:
        """Think for a long time."""
        release.wait(60)
        return "thought"

    ends = Ends()
    slow = make(server, "slow", [think], name="slow", observers=[lambda info: ends])
    # 2 s: two model round trips (the caller's, the sub-agent's) come first, even loaded
    planner = make(server, "planner", [slow.as_tool()], limits=RunLimits(run_timeout=2.0))
    scripts.add("planner", Reply.tool_calls(("slow", {"request": "think"})), Reply.text("late"))
    scripts.add("slow", Reply.tool_calls(("think", {})), Reply.text("too late"))
    try:
        with pytest.raises(RunTimeoutError):
            drive(planner, driver, "go")
        assert ends.ended.wait(30)  # not released: only the deadline can end it
    finally:
        release.set()
    (error,) = ends.errors
    if driver in ("run", "stream"):  # in a tool thread: its own deadline, the caller's
        assert isinstance(error, RunTimeoutError)
    else:  # a task of the caller's round: its deadline or the caller's cancel, whichever first
        assert isinstance(error, RunTimeoutError | asyncio.CancelledError)
    assert len(scripts.seen["slow"]) == 1


@pytest.mark.parametrize("driver", ["stream", "stream_async"])
def test_closing_the_callers_stream_stops_the_sub_run(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    started = threading.Event()
    release = threading.Event()

    @tool
    def hold() -> str:
        """Hold until released."""
        started.set()
        release.wait(60)
        return "held"

    ends = Ends()
    worker = make(server, "worker", [hold], name="worker", observers=[lambda info: ends])
    boss = make(server, "boss", [worker.as_tool()])
    scripts.add("boss", Reply.tool_calls(("worker", {"request": "work"})), Reply.text("done"))
    scripts.add("worker", Reply.tool_calls(("hold", {})), Reply.text("worked"))

    def is_hold(event: Any) -> bool:
        return isinstance(event, SubAgentEvent) and isinstance(event.event, ToolCallStarted)

    try:
        if driver == "stream":
            events = boss.stream("go")
            for event in events:
                if is_hold(event):
                    break
            assert started.wait(30)
            events.close()
        else:

            async def leave() -> None:
                events = boss.stream_async("go")
                async for event in events:
                    if is_hold(event):
                        break
                await asyncio.to_thread(started.wait, 30)
                await events.aclose()

            asyncio.run(leave())
    finally:
        release.set()  # the sub-agent's tool returns after its caller left
    assert ends.ended.wait(30)
    (error,) = ends.errors
    assert error is not None  # it did not go on to an answer
    assert len(scripts.seen["worker"]) == 1  # its model was not asked again
    assert len(scripts.seen["boss"]) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_callers_tool_timeout_stops_the_sub_run(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    release = threading.Event()

    @tool
    def hold() -> str:
        """Hold until released."""
        release.wait(60)
        return "held"

    ends = Ends()
    worker = make(server, "worker", [hold], name="worker", observers=[lambda info: ends])
    boss = make(server, "boss", [worker.as_tool()], limits=RunLimits(tool_timeout=WORKER_TIMEOUT))
    scripts.add("boss", Reply.tool_calls(("worker", {"request": "work"})), Reply.text("gave up"))
    scripts.add("worker", Reply.tool_calls(("hold", {})), Reply.text("too late"))
    try:
        result, _ = drive(boss, driver, "go")
        assert result.output == "gave up"
        told = scripts.seen["boss"][1]["messages"][-1]
        assert told["role"] == "tool" and "timed out" in told["content"]
        # not released: the sub-run ends by the call's timeout (cancelled in run_async; in
        # a tool thread by the call's deadline, or at its next event when it streams)
        assert ends.ended.wait(30)
    finally:
        release.set()
    (error,) = ends.errors
    assert isinstance(error, RunTimeoutError | GeneratorExit | asyncio.CancelledError)
    assert len(scripts.seen["worker"]) == 1  # the sub-run did not go on after the timeout


def test_a_sub_run_ended_by_its_calls_deadline_is_the_call_timing_out(
    server: ScriptedServer, scripts: Scripts
) -> None:
    # In a tool thread the sub-run ends by its call's deadline (and a grace) on its own.
    # When it got there before the caller's driver noticed the timeout (a loaded machine
    # wakes the caller late), the model was told "tool worker failed: RunTimeoutError: the
    # run went past its run_timeout of 1.99958 s" instead of "timed out". The call is
    # handed to its tool thread's function here with its deadline already past, as the
    # late caller would find it.
    release = threading.Event()

    @tool
    def hold() -> str:
        """Hold until released."""
        release.wait(60)
        return "held"

    worker = make(server, "worker", [hold], name="worker")
    boss = make(server, "boss", [worker.as_tool()], limits=RunLimits(tool_timeout=WORKER_TIMEOUT))
    scripts.add("worker", Reply.tool_calls(("hold", {})), Reply.text("too late"))
    loop = boss._new_loop("go", None, None, None)
    loop.next_request()
    function = {"name": "worker", "arguments": '{"request": "work"}'}
    asked = {"id": "c1", "type": "function", "function": function}
    message = {"role": "assistant", "content": None, "tool_calls": [asked]}
    step = loop.on_response(ChatCompletion.model_validate({"choices": [{"message": message}]}))
    assert isinstance(step, RunTools)
    (call,) = step.calls
    job = _Job(call, lambda item: None, time.perf_counter() - 2 * WORKER_TIMEOUT)
    try:
        outcome = _work(call, job)
    finally:
        release.set()
        boss.close()
        worker.close()
    assert isinstance(outcome, ToolOutcome)
    assert outcome.status == "timeout"
    assert loop.settle(outcome).output == f"tool worker timed out after {WORKER_TIMEOUT:g} s"


@pytest.mark.parametrize("driver", ["run", "stream"])
def test_a_sub_run_in_a_tool_thread_takes_no_step_once_its_caller_gave_up(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # The sub-agent's tool returns after the caller's tool_timeout but within the grace
    # its thread keeps: the sub-run must not ask its model again for an answer nobody
    # waits for (a non-streamed sub-run used to, and pay for it).
    release = threading.Event()
    ends = Ends()

    @tool
    def hold() -> str:
        """Hold until released."""
        release.wait(60)
        return "held"

    worker = make(server, "worker", [hold], name="worker", observers=[lambda info: ends])
    boss = make(server, "boss", [worker.as_tool()], limits=RunLimits(tool_timeout=WORKER_TIMEOUT))
    scripts.add("boss", Reply.tool_calls(("worker", {"request": "work"})), Reply.text("gave up"))
    scripts.add("worker", Reply.tool_calls(("hold", {})), Reply.text("too late"))
    try:
        result, _ = drive(boss, driver, "go")
        assert result.output == "gave up"
    finally:
        release.set()  # at once: well within the half second the sub-run's thread may take
    assert ends.ended.wait(30)
    (error,) = ends.errors
    assert error is not None  # stopped: no answer
    assert len(scripts.seen["worker"]) == 1


# --- one budget of model calls and tool calls for the whole run tree -----------------------


class Pings:
    """A tool that counts its runs (from any thread)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

        @tool
        def ping(n: int) -> str:
            """Ping once."""
            with self._lock:
                self.count += 1
            return f"pong {n}"

        self.tool = ping


def model_calls(scripts: Scripts) -> int:
    return sum(len(seen) for seen in scripts.seen.values())


@pytest.mark.parametrize("driver", DRIVERS)
def test_parallel_sub_agents_take_from_the_callers_limits(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # The caller allows 2 model calls and 2 tool calls; its two sub-agents, each with the
    # default limits, would go on for 10 rounds each. The tree stops at the caller's.
    pings = Pings()
    flights = make(server, "flights", [pings.tool], name="flights")
    hotels = make(server, "hotels", [pings.tool], name="hotels")
    boss = make(
        server,
        "boss",
        [flights.as_tool(), hotels.as_tool()],
        limits=RunLimits(max_turns=2, max_tool_calls=2),
    )
    scripts.add(
        "boss",
        Reply.tool_calls(("flights", {"request": "f"}), ("hotels", {"request": "h"})),
        Reply.text("never asked"),
    )
    for model in ("flights", "hotels"):
        scripts.add(model, *(Reply.tool_calls(("ping", {"n": i})) for i in range(10)))
    with pytest.raises(MaxTurnsExceededError) as caught:
        drive(boss, driver, "go")
    assert model_calls(scripts) == 2  # the caller's one and one sub-agent's
    assert pings.count == 0  # the caller's two agent-tool calls spent the tool calls
    assert "across its agents" in str(caught.value)
    # the transcript: the caller's model would be told both agent tools failed
    messages = caught.value.messages
    assert messages is not None
    told = [m["content"] for m in messages if m["role"] == "tool"]
    assert len(told) == 2
    assert all("MaxTurnsExceededError" in text and "across its agents" in text for text in told)


@pytest.mark.parametrize("driver", DRIVERS)
def test_sequential_sub_agents_share_the_callers_tool_calls(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    pings = Pings()
    flights = make(server, "flights", [pings.tool], name="flights")
    hotels = make(server, "hotels", [pings.tool], name="hotels")
    boss = make(
        server, "boss", [flights.as_tool(), hotels.as_tool()], limits=RunLimits(max_tool_calls=3)
    )
    scripts.add(
        "boss",
        Reply.tool_calls(("flights", {"request": "f"})),  # tool call 1
        Reply.tool_calls(("hotels", {"request": "h"})),  # past the budget: not run
        Reply.text("Done with what I have."),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("ping", {"n": 1}), ("ping", {"n": 2})),  # tool calls 2 and 3
        Reply.tool_calls(("ping", {"n": 3})),  # past the budget: not run, told
        Reply.text("F"),
    )
    result, _ = drive(boss, driver, "go")
    assert result.output == "Done with what I have."
    assert pings.count == 2
    assert "hotels" not in scripts.seen  # the second sub-agent never ran
    told = scripts.seen["flights"][2]["messages"][-1]["content"]
    assert told.startswith("Not run") and "limit of 3 tool calls, shared across its agents" in told
    assert scripts.seen["boss"][1]["messages"][-1]["content"] == "F"
    told = scripts.seen["boss"][2]["messages"][-1]["content"]
    assert told.startswith("Not run") and "shared across its agents" in told


@pytest.mark.parametrize("driver", DRIVERS)
def test_nested_sub_agents_take_from_the_top_runs_turns(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    pings = Pings()
    hotels = make(server, "hotels", [pings.tool], name="hotels")
    flights = make(server, "flights", [hotels.as_tool()], name="flights")
    planner = make(server, "planner", [flights.as_tool()], limits=RunLimits(max_turns=3))
    scripts.add("planner", Reply.tool_calls(("flights", {"request": "trip"})), Reply.text("no"))
    scripts.add("flights", Reply.tool_calls(("hotels", {"request": "room"})), Reply.text("no"))
    scripts.add("hotels", *(Reply.tool_calls(("ping", {"n": i})) for i in range(10)))
    with pytest.raises(MaxTurnsExceededError) as caught:
        drive(planner, driver, "go")
    # planner, flights, hotels: one model call each, then the budget is spent at every level
    assert {model: len(seen) for model, seen in scripts.seen.items()} == {
        "planner": 1,
        "flights": 1,
        "hotels": 1,
    }
    assert pings.count == 1
    assert "max_turns=3 is the run's, across its agents" in str(caught.value)
    assert caught.value.messages is not None


@pytest.mark.parametrize("driver", ["run", "stream_async"])
def test_a_sub_agents_own_smaller_limit_holds_inside_the_budget(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    pings = Pings()
    worker = make(server, "worker", [pings.tool], name="worker", limits=RunLimits(max_tool_calls=1))
    boss = make(server, "boss", [worker.as_tool()], limits=RunLimits(max_tool_calls=4))
    scripts.add(
        "boss",
        Reply.tool_calls(("worker", {"request": "a"})),  # tree: 1
        Reply.tool_calls(("worker", {"request": "b"})),  # tree: 3
        Reply.tool_calls(("worker", {"request": "c"})),  # tree: 5, past 4: not run
        Reply.text("Done."),
    )
    for _ in range(2):  # its own limit: one ping a run, the second told
        scripts.add(
            "worker", Reply.tool_calls(("ping", {"n": 1}), ("ping", {"n": 2})), Reply.text("W")
        )
    result, _ = drive(boss, driver, "go")
    assert result.output == "Done."
    assert pings.count == 2
    assert len(scripts.seen["worker"]) == 4
    own = scripts.seen["worker"][1]["messages"][-1]["content"]
    assert "this run reached its limit of 1 tool calls" in own
    tree = scripts.seen["boss"][3]["messages"][-1]["content"]
    assert "limit of 4 tool calls, shared across its agents" in tree


@pytest.mark.parametrize("driver", DRIVERS)
def test_many_parallel_sub_agents_never_take_more_than_the_budget(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # Six sub-agents at once, each asking for three tools a round: the budget is taken
    # from six threads (or tasks) at a time and must never be overdrawn.
    pings = Pings()
    names = [f"helper{i}" for i in range(6)]
    helpers = [make(server, name, [pings.tool], name=name) for name in names]
    boss = make(
        server,
        "boss",
        [helper.as_tool() for helper in helpers],
        limits=RunLimits(max_turns=9, max_tool_calls=10),
    )
    scripts.add("boss", Reply.tool_calls(*((name, {"request": "go"}) for name in names)))
    scripts.add("boss", *(Reply.text("fine") for _ in range(5)))
    for name in names:
        rounds = (
            Reply.tool_calls(*(("ping", {"n": 3 * i + j}) for j in range(3))) for i in range(8)
        )
        scripts.add(name, *rounds, Reply.text("done"))
    with pytest.raises(MaxTurnsExceededError) as caught:
        drive(boss, driver, "go")
    assert "across its agents" in str(caught.value) and caught.value.messages is not None
    # every model call and tool call the budget allows was made, and not one more
    assert model_calls(scripts) == 9
    assert pings.count == 10 - 6  # the caller's six agent-tool calls took the rest
