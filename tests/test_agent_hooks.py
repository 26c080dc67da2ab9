"""Hooks around model and tool calls, and approval of tools marked ``requires_approval``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from agentkit import (
    Agent,
    ChatClient,
    ConfigurationError,
    RunLimits,
    RunObserver,
    ToolFailureLimitExceededError,
    tool,
)
from agentkit._agent import Hooks
from agentkit._calls import PlannedCall
from agentkit._events import ToolResult
from agentkit._wire import ChatCompletion
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-hooks-test"
refunds: list[int] = []


@tool(requires_approval=True)
def refund(order_id: int, amount: float) -> str:
    """Refund an order.

    Args:
        order_id: The order number.
        amount: How much to refund.
    """
    refunds.append(order_id)
    return f"refunded {amount} on order {order_id}"


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@pytest.fixture(autouse=True)
def _reset() -> None:
    refunds.clear()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY) as made:
        yield made


def last_tool_contents(request: RecordedRequest) -> list[str]:
    out = []
    for message in reversed(request.messages):
        if message["role"] != "tool":
            break
        out.append(message["content"])
    return out[::-1]


class Recorder:
    """Hooks that write down what they saw, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def hooks(self) -> Hooks:
        return Hooks(
            before_model_call=self.before_model,
            after_model_call=self.after_model,
            before_tool_call=self.before_tool,
            after_tool_call=self.after_tool,
        )

    def before_model(self, turn: int, request: dict[str, Any]) -> None:
        self.log.append(("before_model", turn, len(request["messages"])))

    def after_model(self, turn: int, completion: ChatCompletion) -> None:
        self.log.append(("after_model", turn, completion.choices[0].finish_reason))

    def before_tool(self, call: PlannedCall) -> None:
        self.log.append(("before_tool", call.name, call.kwargs))

    def after_tool(self, call: PlannedCall, result: ToolResult) -> None:
        self.log.append(("after_tool", call.name, result.output))


EXPECTED_LOG = [
    ("before_model", 1, 1),
    ("after_model", 1, "tool_calls"),
    ("before_tool", "get_order", {"order_id": 7}),
    ("after_tool", "get_order", "order 7: shipped"),
    ("before_model", 2, 3),
    ("after_model", 2, "stop"),
]


def test_hooks_see_every_model_and_tool_call_in_order(
    server: ScriptedServer, client: ChatClient
) -> None:
    recorder = Recorder()
    server.queue(Reply.tool_calls(("get_order", {"order_id": 7})), Reply.text("Shipped."))
    with Agent("m", [get_order], client=client, hooks=recorder.hooks()) as agent:
        agent.run("Where is order 7?")
    assert recorder.log == EXPECTED_LOG


def test_async_hooks_are_awaited_in_run_async(server: ScriptedServer) -> None:
    recorder = Recorder()

    async def before_model(turn: int, request: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        recorder.before_model(turn, request)

    async def after_tool(call: PlannedCall, result: ToolResult) -> None:
        await asyncio.sleep(0)
        recorder.after_tool(call, result)

    hooks = Hooks(
        before_model_call=before_model,
        after_model_call=recorder.after_model,  # sync hooks work in async runs too
        before_tool_call=recorder.before_tool,
        after_tool_call=after_tool,
    )
    server.queue(Reply.tool_calls(("get_order", {"order_id": 7})), Reply.text("Shipped."))

    async def main() -> None:
        async with Agent(
            "m", [get_order], base_url=server.base_url, api_key=KEY, hooks=hooks
        ) as agent:
            await agent.run_async("Where is order 7?")

    asyncio.run(main())
    assert recorder.log == EXPECTED_LOG


def test_hooks_run_in_stream_too(server: ScriptedServer, client: ChatClient) -> None:
    recorder = Recorder()
    server.queue(Reply.tool_calls(("get_order", {"order_id": 7})), Reply.text("Shipped."))
    with Agent("m", [get_order], client=client, hooks=recorder.hooks()) as agent:
        list(agent.stream("Where is order 7?"))
    assert recorder.log == EXPECTED_LOG


def test_a_hook_that_raises_ends_the_run_with_the_transcript(
    server: ScriptedServer, client: ChatClient
) -> None:
    class Budget(Exception):
        pass

    def after_tool(call: PlannedCall, result: ToolResult) -> None:
        raise Budget("over budget")

    server.queue(Reply.tool_calls(("get_order", {"order_id": 7})), Reply.text("Shipped."))
    with (
        Agent("m", [get_order], client=client, hooks=Hooks(after_tool_call=after_tool)) as agent,
        pytest.raises(Budget) as caught,
    ):
        agent.run("Where is order 7?")
    messages = caught.value.messages  # type: ignore[attr-defined]
    assert messages[-1] == {
        "role": "tool",
        "tool_call_id": messages[-2]["tool_calls"][0]["id"],
        "name": "get_order",
        "content": "order 7: shipped",
    }
    assert len(server.requests) == 1


# --- approval -----------------------------------------------------------------------------


def test_an_approved_call_runs(server: ScriptedServer, client: ChatClient) -> None:
    asked: list[PlannedCall] = []

    def approve(call: PlannedCall) -> bool:
        asked.append(call)
        return True

    server.queue(
        Reply.tool_calls(("refund", {"order_id": 7, "amount": 12.5})), Reply.text("Refunded.")
    )
    with Agent("m", [refund], client=client, approve=approve) as agent:
        agent.run("Refund order 7")
    (call,) = asked
    assert call.name == "refund" and call.kwargs == {"order_id": 7, "amount": 12.5}
    assert refunds == [7]
    assert last_tool_contents(server.requests[1]) == ["refunded 12.5 on order 7"]


def test_a_refused_call_never_runs_and_the_model_is_told(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("refund", {"order_id": 7, "amount": 5}), ("get_order", {"order_id": 7})),
        Reply.text("I could not refund it."),
    )
    with Agent("m", [refund, get_order], client=client, approve=lambda call: False) as agent:
        result = agent.run("Refund order 7")
    assert refunds == []
    refused, looked_up = last_tool_contents(server.requests[1])
    assert "refused" in refused and "did not approve" in refused
    assert looked_up == "order 7: shipped"  # other calls of the round still run
    assert result.output == "I could not refund it."


def test_without_an_approver_the_run_pauses_and_resumes(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.tool_calls(("refund", {"order_id": 7, "amount": 5})), Reply.text("ok"))
    with Agent("m", [refund], client=client) as agent:
        result = agent.run("Refund order 7")
        assert result.status == "paused" and result.output is None
        assert refunds == [] and len(server.requests) == 1  # nothing ran, nothing sent
        (call,) = result.pending
        assert call.name == "refund" and call.kwargs == {"order_id": 7, "amount": 5}
        assert json.loads(call.arguments) == {"order_id": 7, "amount": 5}
        done = agent.resume(result, {call.call_id: True})
    assert done.status == "done" and done.output == "ok"
    assert refunds == [7]
    (told,) = last_tool_contents(server.requests[1])
    assert told == "refunded 5.0 on order 7"


def test_only_true_approves(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.tool_calls(("refund", {"order_id": 7, "amount": 5})), Reply.text("ok"))
    with Agent("m", [refund], client=client, approve=lambda call: "yes") as agent:  # type: ignore[arg-type, return-value]
        agent.run("Refund order 7")
    assert refunds == []


def test_a_model_that_insists_is_refused_every_time_then_stopped(
    server: ScriptedServer, client: ChatClient
) -> None:
    asked: list[int] = []

    def approve(call: PlannedCall) -> bool:
        asked.append(call.kwargs["order_id"] if call.kwargs else -1)
        return False

    server.respond_with(
        lambda r: Reply.tool_calls(("refund", {"order_id": r.number, "amount": 100}))
    )
    with (
        Agent(
            "m", [refund], client=client, approve=approve, limits=RunLimits(max_tool_failures=3)
        ) as agent,
        pytest.raises(ToolFailureLimitExceededError) as caught,
    ):
        agent.run("Refund everything!")
    assert refunds == []  # never, in any round
    assert asked == [1, 2, 3]  # asked every time, never bypassed
    assert caught.value.tool_name == "refund"
    assert len(server.requests) == 3


def test_an_async_approver_in_run_async(server: ScriptedServer) -> None:
    async def approve(call: PlannedCall) -> bool:
        await asyncio.sleep(0)
        return call.kwargs is not None and call.kwargs["amount"] < 50

    server.queue(
        Reply.tool_calls(
            ("refund", {"order_id": 1, "amount": 10}), ("refund", {"order_id": 2, "amount": 500})
        ),
        Reply.text("One refunded."),
    )

    async def main() -> None:
        async with Agent(
            "m", [refund], base_url=server.base_url, api_key=KEY, approve=approve
        ) as agent:
            await agent.run_async("Refund orders 1 and 2")

    asyncio.run(main())
    assert refunds == [1]
    small, large = last_tool_contents(server.requests[1])
    assert small == "refunded 10.0 on order 1"
    assert "refused" in large


def test_an_async_approver_in_the_sync_driver(server: ScriptedServer, client: ChatClient) -> None:
    async def approve(call: PlannedCall) -> bool:
        return True

    server.queue(Reply.tool_calls(("refund", {"order_id": 3, "amount": 1})), Reply.text("ok"))
    with Agent("m", [refund], client=client, approve=approve) as agent:
        agent.run("Refund order 3")
    assert refunds == [3]


# --- Hooks are sugar over RunObserver ------------------------------------------------------


class Watcher(RunObserver):
    """An observer writing into the same log as the hooks, so their order shows."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> None:
        self.log.append(("observer model_call_started", turn))

    def tool_call_started(self, call: PlannedCall) -> None:
        self.log.append(("observer tool_call_started", call.name))

    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> None:
        self.log.append(("observer tool_call_finished", call.name))


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_hooks_are_the_first_observer_and_an_async_hook_finishes_before_the_next(
    server: ScriptedServer, driver: str
) -> None:
    log: list[tuple[Any, ...]] = []

    async def before_model(turn: int, request: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # the observer after it must wait for this
        log.append(("hook before_model", turn))

    def before_tool(call: PlannedCall) -> None:
        log.append(("hook before_tool", call.name))

    def after_tool(call: PlannedCall, result: ToolResult) -> None:
        log.append(("hook after_tool", call.name))

    hooks = Hooks(
        before_model_call=before_model, before_tool_call=before_tool, after_tool_call=after_tool
    )
    server.queue(
        # one call that runs, one the model invented (it never runs: no tool hook for it)
        Reply.tool_calls(("get_order", {"order_id": 7}), ("invented", {})),
        Reply.text("Shipped."),
    )
    agent = Agent(
        "m",
        [get_order],
        base_url=server.base_url,
        api_key=KEY,
        hooks=hooks,
        observers=[lambda info: Watcher(log)],
    )
    if driver == "run":
        with agent:
            agent.run("Where is order 7?")
    else:

        async def main() -> None:
            async with agent:
                await agent.run_async("Where is order 7?")

        asyncio.run(main())
    assert log == [
        ("hook before_model", 1),
        ("observer model_call_started", 1),
        ("observer tool_call_finished", "invented"),  # a call that never ran: observers only
        ("hook before_tool", "get_order"),
        ("observer tool_call_started", "get_order"),
        ("hook after_tool", "get_order"),
        ("observer tool_call_finished", "get_order"),
        ("hook before_model", 2),
        ("observer model_call_started", 2),
    ]


def test_empty_hooks_observe_nothing_and_anything_else_is_refused(server: ScriptedServer) -> None:
    agent = Agent("m", [get_order], base_url=server.base_url, api_key=KEY, hooks=Hooks())
    assert agent._observers == ()  # no observer, no wrapper: the run pays nothing for them
    with pytest.raises(ConfigurationError, match="Hooks"):
        not_hooks: Any = {"before_model_call": print}
        Agent("m", base_url=server.base_url, api_key=KEY, hooks=not_hooks)
