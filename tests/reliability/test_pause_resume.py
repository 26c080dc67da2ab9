"""Paused approvals, observers, the whole-run deadline, the streaming fallback and option
checks: the run-side decisions of issues 10, 11 and 12.

A ``requires_approval`` call with no ``approve=`` pauses the run; ``Agent.resume`` goes on
with a person's decisions, bound to the exact arguments that were reviewed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import assert_resendable

from agentkit import (
    Agent,
    ConfigurationError,
    ResumeError,
    RunContext,
    RunLimits,
    RunObserver,
    RunTimeoutError,
    ToolFailureLimitExceededError,
    tool,
)
from agentkit.testing import Reply, ScriptedServer

from ._support import KEY, MODEL, Driver, consume, consume_async, tool_messages

refunds: list[int] = []


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    refunds.append(order_id)
    return f"refunded {order_id}"


@tool
def lookup(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@pytest.fixture(autouse=True)
def _no_refunds() -> Iterator[None]:
    refunds.clear()
    yield
    refunds.clear()


def agent_on(server: ScriptedServer, **options: Any) -> Agent[str]:
    return Agent(MODEL, [refund, lookup], base_url=server.base_url, api_key=KEY, **options)


def run_on(agent: Agent[Any], driver: Driver, prompt: str = "Refund order 7") -> Any:
    if driver == "run":
        return agent.run(prompt)
    if driver == "stream":
        return consume(agent.stream(prompt))
    if driver == "run_async":
        return asyncio.run(agent.run_async(prompt))
    return asyncio.run(consume_async(agent.stream_async(prompt)))


def pause_round(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("refund", {"order_id": 7}), ("lookup", {"order_id": 7})),
        Reply.text("Refunded."),
    )


# --- pause and resume -----------------------------------------------------------------------


def test_a_call_needing_approval_pauses_and_its_neighbours_still_run(
    server: ScriptedServer, driver: Driver
) -> None:
    pause_round(server)
    with agent_on(server) as agent:
        paused = run_on(agent, driver)
        assert paused.status == "paused" and paused.output is None
        assert refunds == [] and server.request_count == 1
        (pending,) = paused.pending
        assert (pending.name, pending.arguments, pending.kwargs) == (
            "refund",
            '{"order_id": 7}',
            {"order_id": 7},
        )
        assert list(paused.resume_state["settled"].values()) == ["order 7: shipped"]
        result = (
            agent.resume(paused, {pending.call_id: True})
            if driver in ("run", "stream")
            else asyncio.run(agent.resume_async(paused, {pending.call_id: True}))
        )
    assert result.status == "done" and result.output == "Refunded."
    assert refunds == [7], "run exactly once, after the decision"
    assert_resendable(result.messages)
    assert [m["content"] for m in tool_messages(result.messages)] == [
        "refunded 7",
        "order 7: shipped",
    ], "the round is closed in call order"


@pytest.mark.parametrize("decision", [False, "over the refund limit"])
def test_a_refusal_is_told_to_the_model(server: ScriptedServer, decision: bool | str) -> None:
    pause_round(server)
    with agent_on(server) as agent:
        paused = agent.run("Refund order 7")
        result = agent.resume(paused, {paused.pending[0].call_id: decision})
    assert refunds == []
    told = tool_messages(result.messages)[0]["content"]
    assert "did not approve" in told
    if isinstance(decision, str):
        assert decision in told


def test_decisions_that_do_not_match_change_nothing(server: ScriptedServer) -> None:
    pause_round(server)
    with agent_on(server) as agent:
        paused = agent.run("Refund order 7")
        before = dataclasses.replace(paused, messages=[dict(m) for m in paused.messages])
        call = paused.pending[0]
        cases: list[tuple[dict[Any, Any], str]] = [
            ({}, ""),
            ({call.call_id: True, "call_x": True}, "call_x"),
            ({call.call_id: 1}, ""),
            ({dataclasses.replace(call, digest="0" * 64): True}, ""),
        ]
        for decisions, match in cases:
            with pytest.raises(ResumeError, match=match or None):
                agent.resume(paused, decisions)
        tampered = dataclasses.replace(paused, messages=[dict(m) for m in paused.messages])
        turn = dict(tampered.messages[-1])
        turn["tool_calls"] = [
            {
                **turn["tool_calls"][0],
                "function": {"name": "refund", "arguments": '{"order_id": 8}'},
            },
            turn["tool_calls"][1],
        ]
        tampered.messages[-1] = turn
        with pytest.raises(ResumeError):
            agent.resume(tampered, {call.call_id: True})
        done = agent.resume(paused, {call.call_id: False})
        with pytest.raises(ResumeError):
            agent.resume(done, {call.call_id: True})
    assert refunds == []
    assert paused.messages == before.messages, "the paused result itself never changes"
    assert server.request_count == 2


def test_paused_results_are_json_ready(server: ScriptedServer) -> None:
    pause_round(server)
    with agent_on(server) as agent:
        data = agent.run("Refund order 7").to_dict()
    assert data["status"] == "paused"
    assert data["pending"][0]["name"] == "refund" and len(data["pending"][0]["digest"]) == 64


# --- observers --------------------------------------------------------------------------------


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def run_finished(self, result: Any) -> None:
        self.seen.append(f"run_finished:{result.status}")

    def run_failed(self, error: BaseException) -> None:
        self.seen.append(f"run_failed:{type(error).__name__}")

    def model_call_started(self, turn: int, request: Any) -> None:
        self.seen.append(f"model:{turn}")

    def tool_call_started(self, call: Any) -> None:
        self.seen.append(f"tool:{call.name}")

    def approval(self, call: Any, granted: bool) -> None:
        self.seen.append(f"approval:{granted}")

    def approval_pending(self, call: Any) -> None:
        self.seen.append("approval:pending")

    def before_side_effect(self, call: Any) -> None:
        self.seen.append(f"ahead:{call.name}:{refunds}")

    def after_side_effect(self, call: Any, result: Any) -> None:
        self.seen.append(f"after:{call.name}:{result.output}")

    def limit_reached(self, limit: str, error: BaseException) -> None:
        self.seen.append(f"limit:{limit}")


def test_observers_see_the_run_and_wrap_side_effects(server: ScriptedServer) -> None:
    pause_round(server)
    recorder = Recorder()
    with agent_on(server, observers=[lambda info: recorder]) as agent:
        paused = agent.run("Refund order 7")
        agent.resume(paused, {paused.pending[0].call_id: True})
    assert recorder.seen == [
        "model:1",
        "approval:pending",
        "tool:lookup",
        "run_finished:paused",
        "approval:True",  # the person's decision, told on the resume
        "tool:refund",
        "ahead:refund:[]",
        "after:refund:refunded 7",
        "model:1",
        "run_finished:done",
    ]


def test_observers_are_told_of_a_limit(server: ScriptedServer) -> None:
    @tool
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("down")

    server.respond_with(lambda request: Reply.tool_calls(("broken", {})))
    recorder = Recorder()
    with (
        Agent(
            MODEL, [broken], base_url=server.base_url, api_key=KEY, observers=[lambda i: recorder]
        ) as a,
        pytest.raises(ToolFailureLimitExceededError),
    ):
        a.run("go")
    assert recorder.seen[-2:] == [
        "limit:max_tool_failures",
        "run_failed:ToolFailureLimitExceededError",
    ]


def test_write_ahead_may_be_awaited_and_comes_before_the_call(server: ScriptedServer) -> None:
    seen: list[str] = []

    class Journal(RunObserver):
        async def before_side_effect(self, call: Any) -> None:
            await asyncio.sleep(0)
            seen.append(f"ahead:{refunds}")

        async def after_side_effect(self, call: Any, result: Any) -> None:
            await asyncio.sleep(0)
            seen.append(f"done:{refunds}")

    pause_round(server)

    async def main() -> None:
        agent = agent_on(server, observers=[lambda info: Journal()])
        async with agent:
            paused = await agent.run_async("Refund order 7")
            await agent.resume_async(paused, {paused.pending[0].call_id: True})

    asyncio.run(main())
    assert seen == ["ahead:[]", "done:[7]"]


# --- the whole-run deadline -------------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_run_timeout_ends_a_run_whose_tools_outlive_it(
    server: ScriptedServer, driver: Driver, release: threading.Event
) -> None:
    @tool
    def slow() -> str:
        """Blocks."""
        release.wait(30)
        return "late"

    server.queue(Reply.tool_calls(("slow", {})))
    with (
        Agent(
            MODEL, [slow], base_url=server.base_url, api_key=KEY, limits=RunLimits(run_timeout=0.3)
        ) as agent,
        pytest.raises(RunTimeoutError) as caught,
    ):
        run_on(agent, driver, "go")
    assert caught.value.timeout == 0.3
    assert_resendable(caught.value.messages)


def test_run_timeout_ends_a_hung_model_call_in_async_runs(server: ScriptedServer) -> None:
    server.queue(Reply.hang())
    agent = Agent(
        MODEL, [], base_url=server.base_url, api_key=KEY, limits=RunLimits(run_timeout=0.3)
    )
    with pytest.raises(RunTimeoutError):
        asyncio.run(agent.run_async("hi"))
    agent.close()


# --- the streaming fallback -------------------------------------------------------------------


def test_a_400_about_tools_is_not_a_streaming_refusal(server: ScriptedServer) -> None:
    server.queue(
        Reply.error(400, "tool_call_id 'x' has no tool message", param="messages"),
        Reply.tool_calls(("lookup", {"order_id": 1})),
        Reply.text("ok"),
    )
    from agentkit import BadRequestError

    with agent_on(server) as agent:
        with pytest.raises(BadRequestError):
            consume(agent.stream("go"))
        assert server.request_count == 1, "sent once"
        consume(agent.stream("go"))
    assert server.requests[1].json()["stream"] is True, "the agent still streams tool rounds"


def test_a_refusal_is_remembered_only_when_the_plain_request_succeeds(
    server: ScriptedServer,
) -> None:
    refused = Reply.error(400, "tools cannot be used with stream=True", param="stream")
    server.queue(
        refused,
        Reply.error(400, "bad request"),  # fails unstreamed as well: proves nothing
        Reply.tool_calls(("lookup", {"order_id": 1})),
        Reply.text("ok"),
    )
    from agentkit import BadRequestError

    with agent_on(server) as agent:
        with pytest.raises(BadRequestError):
            consume(agent.stream("go"))
        consume(agent.stream("go"))
        assert server.requests[2].json().get("stream") is True, "not remembered"
        server.queue(refused, Reply.tool_calls(("lookup", {"order_id": 1})), Reply.text("ok"))
        consume(agent.stream("go"))
        server.queue(Reply.tool_calls(("lookup", {"order_id": 1})), Reply.text("ok"))
        consume(agent.stream("go"))
    assert not server.requests[-2].json().get("stream"), "remembered once certain"


# --- options that are refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_turns": True},
        {"max_turns": 2.5},
        {"max_tool_calls": False},
        {"tool_timeout": math.nan},
        {"tool_timeout": math.inf},
        {"tool_timeout": True},
        {"run_timeout": -1},
        {"parallel_tool_calls_limit": True},
        {"max_repeated_calls": -1},
    ],
)
def test_odd_limits_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Agent(MODEL, [lookup], api_key=KEY, **options)


def test_odd_run_level_limits_are_refused(server: ScriptedServer) -> None:
    with agent_on(server) as agent, pytest.raises(ConfigurationError):
        agent.run("hi", limits=RunLimits(max_turns=True))
    assert server.request_count == 0


# --- a tool that needs the run's context -----------------------------------------------------


class Database:
    def find(self, order_id: int) -> str:
        return f"order {order_id} in the database"


@tool
def find_order(ctx: RunContext[Database], order_id: int) -> str:
    """Find an order."""
    return ctx.deps.find(order_id)


@tool
def maybe_find(ctx: RunContext[Database | None], order_id: int) -> str:
    """Find an order if there is a database."""
    return "no database" if ctx.deps is None else ctx.deps.find(order_id)


def test_a_tool_that_needs_a_context_refuses_a_run_without_one(server: ScriptedServer) -> None:
    with Agent(MODEL, [find_order], base_url=server.base_url, api_key=KEY) as agent:
        with pytest.raises(ConfigurationError, match="find_order"):
            agent.run("Where is order 7?")
        with pytest.raises(ConfigurationError, match="find_order"):
            asyncio.run(agent.run_async("Where is order 7?"))
        assert server.request_count == 0, "refused before the first request"
        server.queue(Reply.tool_calls(("find_order", {"order_id": 7})), Reply.text("Found."))
        result = agent.run("Where is order 7?", deps=Database())
        assert tool_messages(result.messages)[0]["content"] == "order 7 in the database"
        server.queue(Reply.tool_calls(("find_order", {"order_id": 8})), Reply.text("Found."))
        with pytest.warns(DeprecationWarning, match=r"context= is deprecated: pass deps="):
            older = agent.run("Where is order 8?", context=Database())  # the older name
        assert tool_messages(older.messages)[0]["content"] == "order 8 in the database"
        with pytest.raises(ConfigurationError, match="not both"):
            agent.run("hi", deps=Database(), context=Database())


def test_an_optional_context_may_be_left_out(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("maybe_find", {"order_id": 7})), Reply.text("None."))
    with Agent(MODEL, [maybe_find], base_url=server.base_url, api_key=KEY) as agent:
        result = agent.run("Where is order 7?")
    assert tool_messages(result.messages)[0]["content"] == "no database"
