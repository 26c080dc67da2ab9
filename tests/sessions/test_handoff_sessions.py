"""Handoffs on a stored conversation, against each store: the session remembers which agent
has the conversation (the next message reaches the specialist), every stored assistant
message names its agent, a pause inside the handed-off agent is resumed by a fresh agent
graph in another process, and a specialist hands back to triage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _helpers import Scripts

from agentkit import RunFinished
from agentkit.testing import Reply, ScriptedServer

from ._desk import make_desk, make_mixed_desk
from ._support import HERE, StoreSpec, run_child


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("AGENTKIT_TEST_LEDGER", str(path))
    return path


def authors(messages: list[dict[str, Any]]) -> list[str | None]:
    return [m.get("name") for m in messages if m["role"] == "assistant"]


@pytest.mark.parametrize("driver", ["run", "run_async", "stream", "stream_async"])
def test_a_handoff_then_a_follow_up_reaches_the_specialist(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path, driver: str
) -> None:
    triage = make_desk(store, server.base_url)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("lookup_invoice", {"month": "March"})),
        Reply.text("You were charged twice in March."),
        Reply.text("Your refund will arrive within 5 days."),
    )

    def run(prompt: str) -> Any:
        if driver == "run":
            return triage.run(prompt, session="cust-9")
        if driver == "run_async":
            return asyncio.run(triage.run_async(prompt, session="cust-9"))
        if driver == "stream":
            last = list(triage.stream(prompt, session="cust-9"))[-1]
            assert isinstance(last, RunFinished)
            return last.result

        async def collect() -> Any:
            return [e async for e in triage.stream_async(prompt, session="cust-9")][-1]

        return asyncio.run(collect()).result

    first = run("I was charged twice for March.")
    assert first.agent == "billing" and first.session == "cust-9"
    follow_up = run("When do I get my money back?")
    assert follow_up.agent == "billing"
    assert follow_up.output == "Your refund will arrive within 5 days."
    assert len(scripts.seen["triage"]) == 1  # triage was not asked again
    asked = scripts.seen["billing"][-1]["messages"]
    assert asked[0] == {"role": "system", "content": "You handle billing."}
    assert asked[-1] == {"role": "user", "content": "When do I get my money back?"}
    stored = store.load("cust-9").messages
    assert authors(stored) == ["triage", "billing", "billing", "billing"]


def test_history_none_holds_for_the_next_runs_on_the_session(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    triage = make_desk(store, server.base_url, history="none")
    scripts.add("triage", Reply.text("Hello! What is it about?"))
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {}, "t1")))
    scripts.add("billing", Reply.text("Billing here."), Reply.text("Noted."))
    triage.run("Hi", session="s")
    triage.run("I was charged twice.", session="s")
    triage.run("Thanks.", session="s")
    first, follow_up = (r["messages"] for r in scripts.seen["billing"])
    assert first == [
        {"role": "system", "content": "You handle billing."},
        {"role": "user", "content": "I was charged twice."},
    ]
    assert follow_up == [
        *first,
        {"role": "assistant", "name": "billing", "content": "Billing here."},
        {"role": "user", "content": "Thanks."},
    ]
    # what is stored is the whole conversation
    assert [m["role"] for m in store.load("s").messages] == [
        "user", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant"
    ]  # fmt: skip


def test_a_pause_in_the_handed_off_agent_is_resumed_by_a_fresh_graph_in_another_process(
    spec: StoreSpec, store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    triage = make_desk(store, server.base_url)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("lookup_invoice", {"month": "March"})),
        Reply.tool_calls(("issue_refund", {"amount": 40}, "refund-1")),
        Reply.text("I refunded 40 EUR."),
        Reply.text("You are welcome."),
    )
    paused = triage.run("I was charged twice for March.", session="cust-9")
    assert paused.status == "paused" and paused.agent == "billing"
    assert [c.name for c in paused.pending] == ["issue_refund"]
    assert ledger.read_text() == ""

    body = (
        f"import json, sys\nsys.path.insert(0, {str(HERE.parent)!r})\n"
        "from sessions._desk import make_desk\n"
        f"triage = make_desk(store, {server.base_url!r})\n"
        "r = triage.resume('cust-9', {'refund-1': True})\n"
        "print(json.dumps({'output': r.output, 'agent': r.agent, 'status': r.status}))\n"
    )
    child = run_child(spec, body)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {
        "output": "I refunded 40 EUR.",
        "agent": "billing",
        "status": "done",
    }
    assert ledger.read_text() == "refund 40\n"
    resumed = scripts.seen["billing"][-1]["messages"]
    assert resumed[0] == {"role": "system", "content": "You handle billing."}
    assert resumed[-1]["content"] == "refunded 40 EUR"
    assert len(scripts.seen["triage"]) == 1

    follow_up = triage.run("Thank you!", session="cust-9")
    assert follow_up.agent == "billing" and follow_up.output == "You are welcome."
    assert authors(store.load("cust-9").messages) == [
        "triage",
        "billing",
        "billing",
        "billing",
        "billing",
    ]


def test_a_specialist_hands_back_and_triage_has_the_next_message(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    triage = make_desk(store, server.base_url)
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_billing", {})),
        Reply.text("What else can I do for you?"),
        Reply.text("Tech can help with that."),
    )
    scripts.add("billing", Reply.tool_calls(("transfer_to_triage", {})))
    first = triage.run("Is my line OK?", session="s")
    assert first.agent == "triage"
    again = triage.run("My line, please.", session="s")
    assert again.agent == "triage"
    assert len(scripts.seen["billing"]) == 1
    assert authors(store.load("s").messages) == ["triage", "billing", "triage", "triage"]


def test_a_conversation_stored_before_handoffs_goes_on_with_the_entry_agent(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    from agentkit import Agent

    plain = Agent(
        "triage", [], "Route.", name="triage", base_url=server.base_url, api_key="sk-x", store=store
    )
    scripts.add("triage", Reply.text("Hello."))
    plain.run("Hi", session="old")
    assert "name" not in store.load("old").messages[-1]  # no handoffs: written as before
    # an assistant turn named by an agent the graph no longer has counts as the entry's too
    store_claim = store.claim("old")
    store.append(
        store_claim,
        [{"role": "user", "content": "x"}, {"role": "assistant", "name": "sales", "content": "y"}],
    )
    store.release(store_claim)
    triage = make_desk(store, server.base_url)
    scripts.add("triage", Reply.text("How can I help?"))
    result = triage.run("My bill.", session="old")
    assert result.agent == "triage"
    assert "billing" not in scripts.seen


def test_a_stored_pause_beside_a_transfer_resumes_with_the_asker_then_the_target(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    scripts.add(
        "triage",
        Reply.tool_calls(
            ("open_ticket", {"summary": "double charge"}, "o1"), ("transfer_to_billing", {}, "t1")
        ),
    )
    scripts.add("billing", Reply.text("Billing here; ticket T-1 is open."))
    paused = make_desk(store, server.base_url).run("Charged twice.", session="s")
    assert paused.status == "paused" and paused.agent == "triage"
    # a fresh graph (as another process would build) resumes the stored pause
    result = make_desk(store, server.base_url).resume("s", {"o1": True})
    assert result.agent == "billing" and result.output == "Billing here; ticket T-1 is open."
    assert ledger.read_text() == "ticket double charge\n"
    stored = store.load("s").messages
    answers = {m["tool_call_id"]: m["content"] for m in stored if m["role"] == "tool"}
    assert answers == {"o1": "ticket T-1", "t1": "Transferred to billing."}
    assert authors(stored) == ["triage", "billing"]


def test_a_new_message_instead_of_a_decision_still_goes_to_the_target(
    store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    scripts.add(
        "triage",
        Reply.tool_calls(
            ("open_ticket", {"summary": "x"}, "o1"), ("transfer_to_billing", {}, "t1")
        ),
    )
    scripts.add("billing", Reply.text("Billing here."))
    triage = make_desk(store, server.base_url)
    assert triage.run("Charged twice.", session="s").status == "paused"
    result = triage.run("Never mind the ticket.", session="s")
    assert result.agent == "billing"
    assert ledger.read_text() == ""  # the ticket was not opened
    sent = scripts.seen["billing"][0]["messages"]
    answers = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert answers["t1"] == "Transferred to billing."
    assert answers["o1"].startswith("Not run: the user sent a new message")
    assert sent[-1] == {"role": "user", "content": "Never mind the ticket."}


def test_parallel_gated_and_ungated_calls_across_agents_resume_in_another_process(
    spec: StoreSpec, store: Any, server: ScriptedServer, scripts: Scripts, ledger: Path
) -> None:
    # After a handoff, billing calls in one round: an ungated lookup, a refund that needs
    # approval, and the orders agent as a tool, which itself calls an ungated lookup and a
    # cancellation that needs approval. Both gated calls pause the run; a fresh graph in
    # another process decides them. Nothing that ran runs again, nothing is dropped, every
    # answer reaches its own model in call order (openai-agents #3004/#4827, smolagents #1481).
    triage = make_mixed_desk(store, server.base_url)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {}, "t1")))
    scripts.add(
        "billing",
        Reply.tool_calls(
            ("check_balance", {"account": "A-9"}, "b1"),
            ("issue_refund", {"amount": 40}, "b2"),
            ("ask_orders", {"request": "Was order 7 delivered? Cancel it."}, "b3"),
        ),
        Reply.text("Refunded 40 EUR; order 7 was delivered, not cancelled."),
    )
    scripts.add(
        "orders",
        Reply.tool_calls(
            ("find_order", {"order_id": 7}, "o1"), ("cancel_order", {"order_id": 7}, "o2")
        ),
        Reply.text("Order 7 was delivered; the cancellation was refused."),
    )
    paused = triage.run("Refund me, and what about order 7?", session="cust-9")
    assert paused.status == "paused" and paused.agent == "billing"
    assert sorted((c.key, c.name, c.path) for c in paused.pending) == [
        ("b2", "issue_refund", ("billing",)),
        ("b3/o2", "cancel_order", ("billing", "orders")),
    ]
    assert sorted(ledger.read_text().splitlines()) == ["balance A-9", "order 7"]

    body = (
        f"import json, sys\nsys.path.insert(0, {str(HERE.parent)!r})\n"
        "from sessions._desk import make_mixed_desk\n"
        f"triage = make_mixed_desk(store, {server.base_url!r})\n"
        "r = triage.resume('cust-9', {'b2': True, 'b3/o2': 'not without the customer'})\n"
        "print(json.dumps({'output': r.output, 'agent': r.agent, 'status': r.status}))\n"
    )
    child = run_child(spec, body)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {
        "output": "Refunded 40 EUR; order 7 was delivered, not cancelled.",
        "agent": "billing",
        "status": "done",
    }
    # each lookup ran once, before the pause; the approved refund ran; the refused cancel not
    assert sorted(ledger.read_text().splitlines()) == ["balance A-9", "order 7", "refund 40"]
    below = scripts.seen["orders"][-1]["messages"]
    answers = [(m["tool_call_id"], m["content"]) for m in below if m["role"] == "tool"]
    assert answers[0] == ("o1", "order 7: delivered")
    assert answers[1][0] == "o2" and "not without the customer" in answers[1][1]
    assert len(answers) == 2
    above = scripts.seen["billing"][-1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in above if m["role"] == "tool"] == [
        ("t1", "Transferred to billing."),
        ("b1", "A-9: 80 EUR due"),
        ("b2", "refunded 40 EUR"),
        ("b3", "Order 7 was delivered; the cancellation was refused."),
    ]
    assert len(scripts.seen["triage"]) == 1 and len(scripts.seen["orders"]) == 2
    stored = store.load("cust-9")
    assert stored.status == "idle" and stored.pending_calls == ()
    assert authors(stored.messages) == ["triage", "billing", "billing"]
    # the stored round holds each call once and its answer once
    ids = [m["tool_call_id"] for m in stored.messages if m["role"] == "tool"]
    assert ids == ["t1", "b1", "b2", "b3"]
