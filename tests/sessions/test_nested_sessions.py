"""A pause inside an agent used as a tool, on a stored session, against each store: the
whole run pauses, and a resume (also in another process, with a freshly built agent graph)
carries on through every level."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import Scripts, wait_until, wait_until_async

from agentkit import Agent, RunContext, RunFinished, RunResult, tool
from agentkit._session import IN_DOUBT_BELOW, ResumeError
from agentkit.testing import Reply, ScriptedServer

from ._bot import make_planner
from ._support import HERE, StoreSpec, last_json, run_child

DRIVERS = ["run", "run_async", "stream", "stream_async"]


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.touch()
    monkeypatch.setenv("AGENTKIT_TEST_LEDGER", str(path))
    monkeypatch.delenv("AGENTKIT_TEST_CRASH", raising=False)
    return path


def effects(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.read_text().splitlines()]


@pytest.fixture
def planner(store: Any, server: ScriptedServer) -> Iterator[Any]:
    with make_planner(store, server.base_url) as agent:
        yield agent


def child(spec: StoreSpec, server: ScriptedServer, body: str) -> Any:
    """Run ``body`` in a fresh process with ``agent``, a planner built there."""
    code = (
        f"import json, sys\nsys.path.insert(0, {str(HERE)!r})\nfrom _bot import make_planner\n"
        f"agent = make_planner(store, {server.base_url!r})\n{body}"
    )
    return run_child(spec, code)


def script_refund(scripts: Scripts) -> None:
    scripts.add(
        "planner-model",
        Reply.tool_calls(("desk", {"request": "refund order 7"}, "call_0")),
        Reply.text("Order 7 is refunded."),
    )
    scripts.add(
        "desk-model",
        Reply.tool_calls(("get_order", {"order_id": 7}, "call_0")),
        Reply.tool_calls(("refund", {"order_id": 7}, "call_0")),
        Reply.text("Refunded order 7."),
    )


def resume(agent: Any, driver: str, session: str, decisions: dict[Any, Any]) -> RunResult[Any]:
    if driver == "run":
        result: RunResult[Any] = agent.resume(session, decisions)
        return result
    if driver == "run_async":
        return asyncio.run(agent.resume_async(session, decisions))
    if driver == "stream":
        events = list(agent.resume_stream(session, decisions))
    else:

        async def collect() -> list[Any]:
            return [e async for e in agent.resume_stream_async(session, decisions)]

        events = asyncio.run(collect())
    assert isinstance(events[-1], RunFinished)
    return events[-1].result


def test_a_nested_approval_paused_in_one_process_is_resumed_in_another(
    spec: StoreSpec, server: ScriptedServer, scripts: Scripts, store: Any, ledger: Path
) -> None:
    script_refund(scripts)
    body = """
r = agent.run("Refund order 7", session="s")
print(json.dumps({"status": r.status, "pending": [c.to_dict() for c in r.pending]}))
"""
    paused = child(spec, server, body)
    assert paused.returncode == 0, paused.stderr
    data = last_json(paused)
    assert data["status"] == "paused"
    (call,) = data["pending"]
    assert call["name"] == "refund" and call["path"] == ["planner", "desk"]
    assert call["key"] == "call_0/call_0"
    record = store.load("s")
    assert record.status == "paused"
    (stored,) = record.pending_calls
    assert (stored.key, stored.path, stored.digest) == (
        "call_0/call_0",
        ("planner", "desk"),
        call["digest"],
    )
    assert effects(ledger) == []

    body = """
r = agent.resume("s", {"call_0/call_0": True})
print(json.dumps({"status": r.status, "output": r.output}))
"""
    done = child(spec, server, body)
    assert done.returncode == 0, done.stderr
    assert last_json(done) == {"status": "done", "output": "Order 7 is refunded."}
    assert [e["kind"] for e in effects(ledger)] == ["refund"]
    # the desk's model got the lookup from before the pause and the refund, not a new lookup
    desk_last = scripts.seen["desk-model"][-1]["messages"]
    assert [m["content"] for m in desk_last if m["role"] == "tool"] == [
        "order 7: shipped",
        "refunded order 7",
    ]
    record = store.load("s")
    assert record.status == "idle" and record.pending_calls == ()
    assert record.messages[-1] == {"role": "assistant", "content": "Order 7 is refunded."}
    tool_message = record.messages[-2]
    assert (
        tool_message["tool_call_id"] == "call_0" and tool_message["content"] == "Refunded order 7."
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_driver_resumes_a_nested_pause_on_a_session(
    server: ScriptedServer, scripts: Scripts, planner: Any, store: Any, ledger: Path, driver: str
) -> None:
    script_refund(scripts)
    paused = planner.run("Refund order 7", session="s")
    (call,) = paused.pending
    with pytest.raises(ResumeError, match="no decision for the paused call 'call_0/call_0'"):
        resume(planner, driver, "s", {})
    assert store.load("s").status == "paused" and effects(ledger) == []
    done = resume(planner, driver, "s", {call: True})
    assert done.output == "Order 7 is refunded." and done.session == "s"
    assert [e["kind"] for e in effects(ledger)] == ["refund"]
    assert store.load("s").status == "idle"


def test_a_new_message_instead_of_a_decision_runs_nothing_below(
    server: ScriptedServer, scripts: Scripts, planner: Any, store: Any, ledger: Path
) -> None:
    script_refund(scripts)
    planner.run("Refund order 7", session="s")
    scripts.add("planner-model", Reply.text("Fine, no refund."))
    done = planner.run("Never mind.", session="s")
    assert done.status == "done" and effects(ledger) == []
    sent = scripts.seen["planner-model"][-1]["messages"]
    assert sent[-2]["role"] == "tool" and "instead of deciding" in sent[-2]["content"]
    assert sent[-1] == {"role": "user", "content": "Never mind."}
    assert store.load("s").pending_calls == ()


# -- a crash inside a sub-agent's side-effect call ------------------------------------------


def crash_in_the_desk(
    spec: StoreSpec,
    server: ScriptedServer,
    scripts: Scripts,
    monkeypatch: pytest.MonkeyPatch,
    call: tuple[str, dict[str, Any]],
) -> None:
    """A planner run in another process whose desk's side-effect call kills the process
    after its effect, before its result is recorded."""
    scripts.add("planner-model", Reply.tool_calls(("desk", {"request": "do it"}, "call_0")))
    scripts.add("desk-model", Reply.tool_calls((*call, "call_0")))
    monkeypatch.setenv("AGENTKIT_TEST_CRASH", "1")
    crashed = child(spec, server, "agent.run('Pay order 7', session='s')")
    monkeypatch.delenv("AGENTKIT_TEST_CRASH")
    assert crashed.returncode == 17, crashed.stderr


def test_a_crash_inside_a_sub_agents_side_effect_call_is_in_doubt_at_the_top(
    spec: StoreSpec,
    server: ScriptedServer,
    scripts: Scripts,
    planner: Any,
    store: Any,
    ledger: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash_in_the_desk(spec, server, scripts, monkeypatch, ("pay", {"order_id": 7, "amount": 10}))
    assert [e["kind"] for e in effects(ledger)] == ["pay"]
    (record,) = store.load("s").calls
    assert record.state == "started" and record.name == "pay"

    scripts.add("planner-model", Reply.text("I cannot tell whether order 7 was paid."))
    result = planner.resume("s", {})
    (doubt,) = result.in_doubt
    assert (doubt.name, doubt.path, doubt.via, doubt.call_id) == (
        "pay",
        ("planner", "desk"),
        ("call_0",),
        "call_0",
    )
    assert json.loads(doubt.arguments) == {"order_id": 7, "amount": 10}
    told = scripts.seen["planner-model"][-1]["messages"][-1]
    assert told["tool_call_id"] == "call_0" and told["content"].startswith(IN_DOUBT_BELOW)
    assert 'pay {"order_id": 7, "amount": 10}: outcome unknown' in told["content"]
    assert [e["kind"] for e in effects(ledger)] == ["pay"]  # not run again
    assert len(scripts.seen["desk-model"]) == 1  # nor was the desk asked again
    assert store.load("s").calls == ()


def test_a_new_message_after_a_crash_inside_a_sub_agent_reports_it_in_doubt(
    spec: StoreSpec,
    server: ScriptedServer,
    scripts: Scripts,
    planner: Any,
    ledger: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash_in_the_desk(spec, server, scripts, monkeypatch, ("pay", {"order_id": 7, "amount": 10}))
    scripts.add("planner-model", Reply.text("I am not sure it was paid."))
    result = planner.run("Did it work?", session="s")
    assert [(c.name, c.path) for c in result.in_doubt] == [("pay", ("planner", "desk"))]
    sent = scripts.seen["planner-model"][-1]["messages"]
    assert sent[-2]["content"].startswith(IN_DOUBT_BELOW) and sent[-1]["content"] == "Did it work?"
    assert [e["kind"] for e in effects(ledger)] == ["pay"]


def test_an_idempotent_call_cut_by_a_crash_inside_a_sub_agent_is_run_again_with_its_key(
    spec: StoreSpec,
    server: ScriptedServer,
    scripts: Scripts,
    planner: Any,
    store: Any,
    ledger: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash_in_the_desk(spec, server, scripts, monkeypatch, ("charge", {"order_id": 9}))
    scripts.add("desk-model", Reply.tool_calls(("charge", {"order_id": 9}, "call_0")))
    scripts.add("desk-model", Reply.text("Charged order 9."))
    scripts.add("planner-model", Reply.text("Order 9 is charged."))
    result = planner.resume("s", {})
    assert result.output == "Order 9 is charged." and result.in_doubt == ()
    first, again = effects(ledger)
    assert first["kind"] == again["kind"] == "charge"
    # the same idempotency key both times, naming the session and both levels' calls
    assert first["key"] == again["key"] and first["key"].startswith("s/")
    assert first["key"].endswith("/call_0/2/call_0")
    assert store.load("s").calls == ()


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


@tool(side_effects=True)
def pay_supplier(ctx: RunContext[Payments], order_id: int) -> str:
    """Pay the supplier of an order."""
    return ctx.deps.pay(ctx.idempotency_key)


def test_a_cancel_while_a_sub_agents_side_effect_call_runs_keeps_its_late_result(
    server: ScriptedServer, scripts: Scripts, store: Any
) -> None:
    """The caller's run is cancelled while its sub-agent's payment runs on in its thread:
    the agent-tool call stays open, the payment's late result is recorded, and the next
    resume tells the caller's model what was paid (not "cancelled"), running nothing."""
    desk = Agent(
        "desk-model", [pay_supplier], "Desk.", base_url=server.base_url, api_key="k", name="desk"
    )
    planner = Agent(
        "planner-model",
        [desk.as_tool()],
        "Plan.",
        base_url=server.base_url,
        api_key="k",
        store=store,
        name="planner",
    )
    scripts.add("planner-model", Reply.tool_calls(("desk", {"request": "pay 7"}, "call_0")))
    scripts.add("desk-model", Reply.tool_calls(("pay_supplier", {"order_id": 7}, "call_0")))
    payments = Payments()

    async def cancel() -> None:
        task = asyncio.ensure_future(planner.run_async("Pay 7", session="s", deps=payments))
        await wait_until_async(payments.started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(cancel())
        (record,) = store.load("s").calls
        assert record.state == "started" and record.name == "pay_supplier"
    finally:
        payments.release.set()
    wait_until(lambda: store.load("s").calls[0].state == "done")

    scripts.add("planner-model", Reply.text("Order 7 was paid."))
    result = planner.resume("s", {}, deps=payments)
    assert result.output == "Order 7 was paid." and result.in_doubt == ()
    told = scripts.seen["planner-model"][-1]["messages"][-1]["content"]
    assert 'pay_supplier {"order_id": 7} finished: paid, receipt 1' in told
    assert len(payments.paid) == 1 and len(scripts.seen["desk-model"]) == 1
    planner.close()
    desk.close()


def test_a_crash_during_an_approved_call_inside_a_sub_agent_leaves_it_in_doubt_not_paused(
    spec: StoreSpec,
    server: ScriptedServer,
    scripts: Scripts,
    planner: Any,
    store: Any,
    ledger: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused in one process, approved in another that dies during the approved nested
    side-effect call: the pause was cleared before the call started, so a stale second
    decision is refused and the call is settled from the log, in doubt, never run twice."""
    scripts.add("planner-model", Reply.tool_calls(("desk", {"request": "refund 7"}, "call_0")))
    scripts.add("desk-model", Reply.tool_calls(("refund_card", {"order_id": 7}, "call_0")))
    paused = child(spec, server, "print(agent.run('Refund 7', session='s').status)")
    assert paused.stdout.strip() == "paused", paused.stderr
    monkeypatch.setenv("AGENTKIT_TEST_CRASH", "1")
    crashed = child(spec, server, "agent.resume('s', {'call_0/call_0': True})")
    monkeypatch.delenv("AGENTKIT_TEST_CRASH")
    assert crashed.returncode == 17, crashed.stderr
    assert [e["kind"] for e in effects(ledger)] == ["refund_card"]
    record = store.load("s")
    assert record.status == "idle" and record.pending_calls == ()
    assert [c.name for c in record.calls] == ["refund_card"]

    with pytest.raises(ResumeError, match=r"not waiting for a decision.*resume with no decisions"):
        planner.resume("s", {"call_0/call_0": True})
    scripts.add("planner-model", Reply.text("The refund may have gone through; please check."))
    result = planner.resume("s", {})
    assert [(c.name, c.path, c.via) for c in result.in_doubt] == [
        ("refund_card", ("planner", "desk"), ("call_0",))
    ]
    assert [e["kind"] for e in effects(ledger)] == ["refund_card"]


def test_a_stored_nested_state_that_cannot_be_read_refuses_its_session_only(
    store: Any,
) -> None:
    from agentkit import SessionCorruptError

    claim = store.claim("s")
    open_round = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "desk", "arguments": "{}"}}
        ],
    }
    state = {"calls": [], "settled": {}, "nested": {"c1": {"messages": "not a list", "state": {}}}}
    store.append(claim, [{"role": "user", "content": "hi"}, open_round], pending=state)
    store.release(claim)
    with pytest.raises(SessionCorruptError, match="malformed nested run"):
        store.load("s")
    claim = store.claim("t")
    store.append(claim, [{"role": "user", "content": "hi"}])
    store.release(claim)
    assert store.load("t").messages[0]["content"] == "hi"


def test_the_paused_usage_counts_the_sub_agents_tokens_and_the_resume_only_its_own(
    server: ScriptedServer, scripts: Scripts, planner: Any, ledger: Path
) -> None:
    def used(prompt: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}

    scripts.add(
        "planner-model",
        Reply.tool_calls(("desk", {"request": "refund 7"}, "call_0"), usage=used(100)),
        Reply.text("Done.", usage=used(200)),
    )
    scripts.add(
        "desk-model",
        Reply.tool_calls(("refund", {"order_id": 7}, "call_0"), usage=used(10)),
        Reply.text("Refunded.", usage=used(20)),
    )
    paused = planner.run("Refund 7", session="s")
    assert paused.usage.prompt_tokens == 100 + 10
    done = planner.resume("s", {"call_0/call_0": True})
    assert done.usage.prompt_tokens == 20 + 200
