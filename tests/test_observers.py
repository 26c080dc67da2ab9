"""Two observers of one run: each sees every event, in the run's order, the first before
the second; an awaitable one observer returns is awaited before the side effect runs."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agentkit import (
    Agent,
    MaxTurnsExceededError,
    RunFinished,
    RunInfo,
    RunLimits,
    RunObserver,
    tool,
)
from agentkit.testing import Reply, ScriptedServer

log: list[tuple[str, str]] = []


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    log.append(("tool ran", "refund"))
    return f"refunded {order_id}"


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@pytest.fixture(autouse=True)
def _clear() -> None:
    log.clear()


class Watcher(RunObserver):
    """Writes every event it gets into the shared log, under its own name."""

    def __init__(self, name: str, awaitable: bool = False) -> None:
        self.name = name
        self.awaitable = awaitable

    def _saw(self, event: str) -> None:
        log.append((event, self.name))

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> None:
        self._saw(f"model_call_started {turn}")

    def model_call_finished(self, turn: int, completion: Any) -> None:
        self._saw(f"model_call_finished {turn}")

    def retrying(self, error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
        self._saw(f"retrying {attempt}")

    def tool_call_started(self, call: Any) -> None:
        self._saw(f"tool_call_started {call.name}")

    def tool_call_finished(self, call: Any, result: Any) -> None:
        self._saw(f"tool_call_finished {call.name}")

    def approval(self, call: Any, granted: bool) -> None:
        self._saw(f"approval {granted}")

    def approval_pending(self, call: Any) -> None:
        self._saw(f"approval_pending {call.name}")

    def before_side_effect(self, call: Any) -> object:
        if not self.awaitable:
            self._saw(f"before_side_effect {call.name}")
            return None

        async def written_ahead() -> None:
            await asyncio.sleep(0)  # a store's write, off the loop
            self._saw(f"before_side_effect {call.name}")

        return written_ahead()

    def after_side_effect(self, call: Any, result: Any) -> object:
        self._saw(f"after_side_effect {call.name}")
        return None

    def limit_reached(self, limit: str, error: BaseException) -> None:
        self._saw(f"limit_reached {limit}")

    def run_finished(self, result: Any) -> None:
        self._saw(f"run_finished {result.status}")

    def run_failed(self, error: BaseException) -> None:
        self._saw(f"run_failed {type(error).__name__}")


def _agent(server: ScriptedServer, *watchers: Watcher, **options: Any) -> Agent[str]:
    def factory(watcher: Watcher) -> Any:
        def make(info: RunInfo) -> RunObserver:
            return watcher

        return make

    return Agent(
        "m",
        [refund, get_order],
        base_url=server.base_url,
        observers=[factory(w) for w in watchers],
        **options,
    )


def _events_in_pairs() -> list[str]:
    """The events, each seen by "first" and then at once by "second"."""
    events = [entry for entry in log if entry[0] != "tool ran"]
    assert [name for _, name in events] == ["first", "second"] * (len(events) // 2), log
    pairs = list(zip(events[0::2], events[1::2], strict=True))
    assert all(a[0] == b[0] for a, b in pairs), log
    return [a[0] for a, _ in pairs]


def _a_round_with_everything(server: ScriptedServer) -> None:
    server.queue(
        Reply.rate_limited(retry_after=0),  # retried: the observers hear of it
        Reply.tool_calls(("refund", {"order_id": 7}), ("get_order", {"order_id": 7})),
        Reply.text("Refunded."),
    )


def test_two_observers_each_see_every_event_in_order(server: ScriptedServer) -> None:
    _a_round_with_everything(server)
    watchers = Watcher("first"), Watcher("second")
    with _agent(server, *watchers, approve=lambda call: True) as agent:
        assert agent.run("refund order 7").output == "Refunded."
    events = _events_in_pairs()
    assert events[0] == "model_call_started 1" and events[-1] == "run_finished done"
    assert {
        "retrying 1",
        "model_call_finished 1",
        "approval True",
        "before_side_effect refund",
        "tool_call_started refund",
        "tool_call_finished refund",
        "after_side_effect refund",
        "tool_call_started get_order",
        "model_call_finished 2",
    } <= set(events)
    ran = log.index(("tool ran", "refund"))
    assert log.index(("before_side_effect refund", "second")) < ran
    assert log.index(("after_side_effect refund", "first")) > ran


def test_two_observers_see_a_pause_and_a_limit(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("refund", {"order_id": 7})))
    with _agent(server, Watcher("first"), Watcher("second")) as agent:
        assert agent.run("refund order 7").status == "paused"
        assert "approval_pending refund" in _events_in_pairs()
        log.clear()
        server.queue(Reply.tool_calls(("get_order", {"order_id": 7})))
        with pytest.raises(MaxTurnsExceededError):
            agent.run("where is order 7?", limits=RunLimits(max_turns=1))
    events = _events_in_pairs()
    assert events[-2:] == ["limit_reached max_turns", "run_failed MaxTurnsExceededError"]


def test_an_awaitable_from_either_observer_is_awaited_before_the_call_runs(
    server: ScriptedServer,
) -> None:
    _a_round_with_everything(server)
    watchers = Watcher("first"), Watcher("second", awaitable=True)

    async def run() -> str:
        async with _agent(server, *watchers, approve=lambda call: True) as agent:
            return (await agent.run_async("refund order 7")).output

    assert asyncio.run(run()) == "Refunded."
    ran = log.index(("tool ran", "refund"))
    assert log.index(("before_side_effect refund", "second")) < ran
    # the awaitable one wrote when awaited, after the first's own write: still in pairs
    assert _events_in_pairs()[-1] == "run_finished done"


@pytest.mark.parametrize("driver", ["stream", "stream_async", "resume_stream"])
def test_a_consumer_that_stops_at_the_final_event_leaves_the_run_finished(
    server: ScriptedServer, driver: str
) -> None:
    # Stopping at RunFinished (a common loop) closes the stream there: the run had
    # finished, so the observers hear run_finished only, not run_failed(GeneratorExit)
    # after it (a tracer ended the run's span twice, a counter counted a failure).
    agent = _agent(server, Watcher("first"), Watcher("second"))

    def until_finished(events: Any) -> None:
        for event in events:
            if isinstance(event, RunFinished):
                break
        events.close()

    if driver == "resume_stream":
        server.queue(Reply.tool_calls(("refund", {"order_id": 7})))
        paused = agent.run("refund 7")
        log.clear()
    server.queue(Reply.text("Hello."))
    if driver == "stream":
        until_finished(agent.stream("hi"))
    elif driver == "resume_stream":
        until_finished(agent.resume_stream(paused, {paused.pending[0].call_id: False}))
    else:

        async def main() -> None:
            events = agent.stream_async("hi")
            async for event in events:
                if isinstance(event, RunFinished):
                    break
            await events.aclose()

        asyncio.run(main())
    assert _events_in_pairs()[-1] == "run_finished done"
    assert not [event for event, _ in log if event.startswith("run_failed")]


@pytest.mark.parametrize("streamed", ["sync", "async"])
def test_a_retry_after_the_first_events_reaches_the_observers(
    server: ScriptedServer, streamed: str
) -> None:
    # The second round's request is retried after the caller has had events: the run's
    # observer is made current again for each step, not only for the step that made it.
    server.queue(
        Reply.tool_calls(("get_order", {"order_id": 7})),
        Reply.rate_limited(retry_after=0),
        Reply.text("Shipped."),
    )
    with _agent(server, Watcher("first"), Watcher("second")) as agent:
        if streamed == "sync":
            events = list(agent.stream("where is order 7?"))
        else:

            async def collect() -> list[Any]:
                return [event async for event in agent.stream_async("where is order 7?")]

            events = asyncio.run(collect())
    assert isinstance(events[-1], RunFinished) and events[-1].result.output == "Shipped."
    seen = _events_in_pairs()
    assert seen.index("tool_call_finished get_order") < seen.index("retrying 1")
    assert seen.index("retrying 1") < seen.index("model_call_finished 2")
