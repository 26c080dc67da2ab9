"""A side-effect call the run stopped waiting for (a cancelled task, a closed stream, a
run_timeout) may still be running in its thread: it is in doubt until it returns, and its
late result is recorded. Against each store."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import assert_resendable, wait_until, wait_until_async

from agentkit import Agent, RunContext, RunTimeoutError, ToolCallStarted, tool
from agentkit._session import IN_DOUBT
from agentkit.testing import RecordedRequest, Reply, ScriptedServer


class Payments:
    """A payment service whose calls block until the test lets them through."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.paid: list[str] = []

    def pay(self, key: str) -> str:
        self.started.set()
        assert self.release.wait(30), "the test never released the payment"
        self.paid.append(key)
        return f"paid, receipt {len(self.paid)}"


@pytest.fixture
def payments() -> Iterator[Payments]:
    service = Payments()
    yield service
    service.release.set()  # no thread left blocked after the test


@tool(side_effects=True)
def pay(ctx: RunContext[Payments], order_id: int) -> str:
    """Pay the supplier of an order."""
    return ctx.deps.pay(ctx.idempotency_key)


@pytest.fixture
def desk(store: Any, server: ScriptedServer) -> Iterator[Agent[str]]:
    with Agent(
        "desk-model",
        [pay],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        yield agent


def sent(request: RecordedRequest) -> list[dict[str, Any]]:
    return list(request.json()["messages"])


def _record_state(store: Any, session: str) -> str | None:
    calls = store.load(session).calls
    return calls[0].state if calls else None


def _cancel_run_async(desk: Agent[str], payments: Payments) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(desk.run_async("Pay 7", session="s", deps=payments))
        await wait_until_async(payments.started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def _close_stream_async(desk: Agent[str], payments: Payments) -> None:
    async def consume() -> None:
        events = desk.stream_async("Pay 7", session="s", deps=payments)
        async with contextlib.aclosing(events):
            async for _ in events:
                pass

    async def main() -> None:
        # serve's request task, cancelled when its client leaves mid-stream
        task = asyncio.ensure_future(consume())
        await wait_until_async(payments.started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def _run_timeout(desk: Agent[str], payments: Payments) -> None:
    with pytest.raises(RunTimeoutError):
        desk.run("Pay 7", session="s", deps=payments, limits=_limits())


def _run_timeout_stream(desk: Agent[str], payments: Payments) -> None:
    with pytest.raises(RunTimeoutError):
        for _ in desk.stream("Pay 7", session="s", deps=payments, limits=_limits()):
            pass


def _run_timeout_async(desk: Agent[str], payments: Payments) -> None:
    with pytest.raises(RunTimeoutError):
        asyncio.run(desk.run_async("Pay 7", session="s", deps=payments, limits=_limits()))


# Long enough for the claim, the model call and the write-ahead on a loaded machine: the
# run must time out while the tool runs, not before it started.
RUN_TIMEOUT = 2.0


def _limits() -> Any:
    from agentkit import RunLimits

    return RunLimits(run_timeout=RUN_TIMEOUT)


STOPS = {
    "cancelled_task": _cancel_run_async,
    "closed_stream": _close_stream_async,
    "run_timeout": _run_timeout,
    "run_timeout_stream": _run_timeout_stream,
    "run_timeout_async": _run_timeout_async,
}


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS.keys())
def test_a_call_still_running_when_the_run_stops_is_in_doubt_until_it_returns(
    desk: Agent[str], server: ScriptedServer, store: Any, payments: Payments, stop: Any
) -> None:
    server.queue(Reply.tool_calls(("pay", {"order_id": 7})))
    stop(desk, payments)
    assert payments.paid == []  # the payment has not gone through yet...
    assert _record_state(store, "s") == "started"  # ...and the record says it may
    server.queue(Reply.text("I cannot tell yet whether it was paid."))
    result = desk.run("Was it paid?", session="s", deps=payments)
    assert [c.name for c in result.in_doubt] == ["pay"]
    assert sent(server.requests[-1])[-2]["content"] == IN_DOUBT
    assert_resendable(sent(server.requests[-1]))
    payments.release.set()  # the thread goes on and pays, once
    wait_until(lambda: len(payments.paid) == 1)


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS.keys())
def test_the_late_result_of_a_call_the_run_stopped_waiting_for_is_recorded(
    desk: Agent[str], server: ScriptedServer, store: Any, payments: Payments, stop: Any
) -> None:
    server.queue(Reply.tool_calls(("pay", {"order_id": 7})))
    stop(desk, payments)
    assert payments.started.is_set() and payments.paid == []
    payments.release.set()
    wait_until(lambda: _record_state(store, "s") == "done")
    server.queue(Reply.text("It was paid."))
    result = desk.run("Was it paid?", session="s", deps=payments)
    assert result.in_doubt == () and payments.paid == [payments.paid[0]]
    assert sent(server.requests[-1])[-2]["content"] == "paid, receipt 1"
    assert_resendable(sent(server.requests[-1]))
    assert store.load("s").calls == ()


def test_a_stream_closed_before_its_call_started_leaves_nothing_in_doubt(
    desk: Agent[str], server: ScriptedServer, store: Any, payments: Payments
) -> None:
    server.queue(Reply.tool_calls(("pay", {"order_id": 7})))
    events = desk.stream("Pay 7", session="s", deps=payments)
    for event in events:
        if isinstance(event, ToolCallStarted):
            break  # written ahead, announced, not started
    events.close()
    assert not payments.started.is_set() and store.load("s").calls == ()
    server.queue(Reply.text("It was not paid."))
    assert desk.run("Was it paid?", session="s", deps=payments).in_doubt == ()
    assert payments.paid == []


def test_the_late_result_of_a_call_past_its_timeout_is_recorded_while_the_round_is_open(
    store: Any, server: ScriptedServer, payments: Payments
) -> None:
    # pay times out (the model is told), the run then stops at its run_timeout while a
    # second, slow call holds the round open; pay's thread returns late and pays.
    slow = threading.Event()

    @tool
    def lookup(order_id: int) -> str:
        """Look an order up."""
        slow.wait(30)
        return "found"

    @tool(name="pay", side_effects=True, timeout=0.1)
    def quick_pay(ctx: RunContext[Payments], order_id: int) -> str:
        """Pay the supplier of an order."""
        return ctx.deps.pay(ctx.idempotency_key)

    server.queue(Reply.tool_calls(("pay", {"order_id": 7}), ("lookup", {"order_id": 7})))
    with Agent(
        "desk-model",
        [quick_pay, lookup],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        with pytest.raises(RunTimeoutError):
            agent.run("Pay 7", session="s", deps=payments, limits=_limits())
        payments.release.set()
        wait_until(lambda: _record_state(store, "s") == "done")
        assert store.load("s").calls[0].result == "paid, receipt 1"
        slow.set()


@pytest.mark.parametrize("on_session", [True, False])
def test_a_side_effect_call_past_its_timeout_is_in_doubt_not_failed(
    store: Any, server: ScriptedServer, payments: Payments, on_session: bool
) -> None:
    @tool(name="pay", side_effects=True, timeout=0.1)
    def quick_pay(ctx: RunContext[Payments], order_id: int) -> str:
        """Pay the supplier of an order."""
        return ctx.deps.pay(ctx.idempotency_key)

    server.queue(Reply.tool_calls(("pay", {"order_id": 7})), Reply.text("I cannot tell yet."))
    with Agent(
        "desk-model",
        [quick_pay],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        result = agent.run("Pay 7", session="s" if on_session else None, deps=payments)
    told = sent(server.requests[-1])[-1]["content"]
    assert "timed out after 0.1 s and may still take effect" in told
    assert "do not call it again" in told
    assert [c.name for c in result.in_doubt] == ["pay"]


def test_an_async_side_effect_tool_cancelled_mid_call_is_in_doubt(
    store: Any, server: ScriptedServer
) -> None:
    started = asyncio.Event()

    @tool(name="pay", side_effects=True)
    async def pay_async(order_id: int) -> str:
        """Pay the supplier of an order."""
        started.set()
        await asyncio.Event().wait()  # the payment API has the request; no answer yet
        return "paid"

    server.queue(Reply.tool_calls(("pay", {"order_id": 7})), Reply.text("I cannot tell."))

    async def main(agent: Agent[str]) -> None:
        task = asyncio.ensure_future(agent.run_async("Pay 7", session="s"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with Agent(
        "desk-model",
        [pay_async],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        asyncio.run(main(agent))
        assert _record_state(store, "s") == "started"
        result = agent.run("Was it paid?", session="s")
    assert [c.name for c in result.in_doubt] == ["pay"]
    assert sent(server.requests[-1])[-2]["content"] == IN_DOUBT


def test_a_resumed_approved_call_cancelled_mid_call_is_in_doubt_not_paused(
    store: Any, server: ScriptedServer, payments: Payments
) -> None:
    @tool(name="pay", requires_approval=True)
    def approved_pay(ctx: RunContext[Payments], order_id: int) -> str:
        """Pay the supplier of an order."""
        return ctx.deps.pay(ctx.idempotency_key)

    server.queue(Reply.tool_calls(("pay", {"order_id": 7})))
    with Agent(
        "desk-model",
        [approved_pay],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        paused = agent.run("Pay 7", session="s", deps=payments)
        (call,) = paused.pending

        async def main() -> None:
            resume = agent.resume_async("s", {call: True}, deps=payments)
            task = asyncio.ensure_future(resume)
            await wait_until_async(payments.started.is_set)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert store.load("s").status == "idle" and _record_state(store, "s") == "started"
        server.queue(Reply.text("I cannot tell yet."))
        result = agent.run("Was it paid?", session="s", deps=payments)
        assert [c.name for c in result.in_doubt] == ["pay"]
        payments.release.set()
        wait_until(lambda: len(payments.paid) == 1)
    assert sent(server.requests[-1])[-2]["content"] == IN_DOUBT


def test_a_cancel_while_an_ungated_call_runs_beside_a_gated_one(
    desk: Agent[str], store: Any, server: ScriptedServer, payments: Payments
) -> None:
    @tool(name="refund", requires_approval=True)
    def refund(order_id: int) -> str:
        """Refund an order."""
        raise AssertionError("never approved, never run")

    server.queue(Reply.tool_calls(("pay", {"order_id": 7}), ("refund", {"order_id": 8})))
    with Agent(
        "desk-model",
        [pay, refund],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:

        async def main() -> None:
            task = asyncio.ensure_future(
                agent.run_async("Pay 7, refund 8", session="s", deps=payments)
            )
            await wait_until_async(payments.started.is_set)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert store.load("s").status == "idle"  # the pause was never reached
        server.queue(Reply.text("Pay is unclear; the refund did not run."))
        result = agent.run("Well?", session="s", deps=payments)
    assert [c.name for c in result.in_doubt] == ["pay"]
    told = {m["name"]: m["content"] for m in sent(server.requests[-1]) if m["role"] == "tool"}
    assert told["pay"] == IN_DOUBT and "refund" in told and "unknown" not in told["refund"]
    assert_resendable(sent(server.requests[-1]))


def test_a_call_id_reused_in_a_later_round_is_not_taken_for_a_running_call(
    store: Any, server: ScriptedServer, payments: Payments
) -> None:
    # Some servers name every call "call_1". pay times out in round 1 (still running);
    # round 2's lookup, also "call_1", is what runs when the run times out.
    @tool(name="pay", side_effects=True, timeout=0.1)
    def quick_pay(ctx: RunContext[Payments], order_id: int) -> str:
        """Pay the supplier of an order."""
        return ctx.deps.pay(ctx.idempotency_key)

    slow = threading.Event()

    @tool
    def lookup(order_id: int) -> str:
        """Look an order up."""
        slow.wait(30)
        return "found"

    server.queue(
        Reply.tool_calls(("pay", {"order_id": 7}, "call_1")),
        Reply.tool_calls(("lookup", {"order_id": 7}, "call_1")),
    )
    with Agent(
        "desk-model",
        [quick_pay, lookup],
        "You pay suppliers.",
        base_url=server.base_url,
        api_key="sk-test",
        store=store,
    ) as agent:
        with pytest.raises(RunTimeoutError):
            agent.run("Pay 7", session="s", deps=payments, limits=_limits())
        slow.set()
    stored = store.load("s").messages
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant", "tool"]
    assert store.load("s").calls == ()  # round 2 closed: nothing of it is open
