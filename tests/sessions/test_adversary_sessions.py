"""An outside review of handoffs and agents as tools on stored sessions: crashes at each
point of a round that hands the conversation on, and a team changed between a pause and
its resume. Each test is a probe that broke, kept as its regression test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentkit._session import ResumeError
from agentkit.testing import Reply, ScriptedServer

from ._support import StoreSpec, open_store, run_child

KEY = "sk-adversary-sessions-0123456789"

# The desk of the crash tests, built the same way in the child that crashes and in the
# test that picks the session up: triage charges (a side effect) and hands off to billing.
DESK = """
import os
from agentkit import Agent, tool

KEY = "sk-adversary-sessions-0123456789"

@tool(side_effects=True)
def charge(amount: int) -> str:
    '''Charge the customer.'''
    with open(os.environ["AGENTKIT_TEST_LEDGER"], "a") as ledger:
        ledger.write(f"charge {amount}\\n")
    if os.environ.get("AGENTKIT_TEST_CRASH") == "1":
        os._exit(17)  # after the effect, before its result is recorded
    return f"charged {amount}"

def desk(store, base_url):
    common = dict(base_url=base_url, api_key=KEY, store=store)
    billing = Agent("billing", [], "You handle billing.", name="billing", **common)
    return Agent("triage", [charge], "Route.", name="triage", handoffs=[billing], **common)
"""


def _desk(store: Any, base_url: str) -> Any:
    scope: dict[str, Any] = {}
    exec(DESK, scope)
    return scope["desk"](store, base_url)


def _crash_in_a_round_that_hands_off(spec: StoreSpec, ledger: Path) -> None:
    """A child process whose triage model charges and transfers in one round, and which
    dies inside the charge."""
    body = DESK + (
        "from agentkit.testing import Reply, ScriptedServer\n"
        "with ScriptedServer() as server:\n"
        "    server.queue(Reply.tool_calls(\n"
        "        ('charge', {'amount': 5}), ('transfer_to_billing', {})))\n"
        "    desk(store, server.base_url).run('Charge me and pass me on.', session='c-1')\n"
    )
    env = {"AGENTKIT_TEST_LEDGER": str(ledger), "AGENTKIT_TEST_CRASH": "1"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        child = run_child(spec, body)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert child.returncode == 17, child.stderr
    assert ledger.read_text() == "charge 5\n"


def test_a_crash_beside_a_transfer_resumes_as_the_target(
    spec: StoreSpec, server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming a round a crash left open, whose model also asked for a transfer: the
    transfer is made (nothing of it ran before: it runs nowhere), the side effect is in
    doubt and not run again, and billing answers. It was told "Unknown tool
    'transfer_to_billing'" and the conversation stayed with triage."""
    ledger = tmp_path / "ledger.txt"
    _crash_in_a_round_that_hands_off(spec, ledger)
    monkeypatch.setenv("AGENTKIT_TEST_LEDGER", str(ledger))
    server.respond_with(lambda request: Reply.text(f"{request.json()['model']} here"))
    store = open_store(spec)
    try:
        result = _desk(store, server.base_url).resume("c-1", {})
    finally:
        store.close()
    assert result.status == "done"
    assert [call.name for call in result.in_doubt] == ["charge"]
    transfer = [m for m in result.messages if m.get("name") == "transfer_to_billing"]
    assert [m["content"] for m in transfer] == ["Transferred to billing."]
    assert result.agent == "billing" and result.output == "billing here"
    assert ledger.read_text() == "charge 5\n"  # not charged again


def test_a_pause_in_a_specialist_the_graph_lost_is_refused_and_stays_paused(
    store: Any, server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """billing's refund waits for a person; a new release drops billing from triage's
    handoffs. Approving is a ResumeError that names the agent that asked and runs nothing,
    also when triage has a tool of the same name (it ran triage's); the session stays
    paused, and the graph that has billing again resumes it (the refund runs once). The
    approval was answered "Unknown tool 'issue_refund'" and the session went on with
    triage, done, as if the person's decision had been carried out."""
    from agentkit import Agent, tool

    refunds: list[int] = []

    @tool(requires_approval=True)
    def issue_refund(amount: int) -> str:
        """Refund an amount to the customer."""
        refunds.append(amount)
        return f"refunded {amount} EUR"

    common: dict[str, Any] = {"base_url": server.base_url, "api_key": KEY, "store": store}
    billing = Agent("billing", [issue_refund], "You bill.", name="billing", **common)
    triage = Agent("triage", [], "Route.", name="triage", handoffs=[billing], **common)
    server.queue(
        Reply.tool_calls(("transfer_to_billing", {})),
        Reply.tool_calls(("issue_refund", {"amount": 40})),
    )
    paused = triage.run("Refund me.", session="c-2")
    assert paused.status == "paused" and paused.agent == "billing"
    [call] = paused.pending

    @tool(requires_approval=True, name="issue_refund")
    def store_credit(amount: int) -> str:
        """Give the customer store credit."""
        refunds.append(-amount)
        return f"credit {amount} EUR"

    # without billing; and with triage holding a tool of the same name, which would have run
    for tools in ([], [store_credit]):
        without = Agent("triage", tools, "Route.", name="triage", **common)
        with pytest.raises(ResumeError, match=r"asked by agent 'billing'.*nothing was run"):
            without.resume("c-2", {call: True})
        assert store.load("c-2").status == "paused" and refunds == []

    server.queue(Reply.text("Refunded."))
    done = triage.resume("c-2", {call: True})
    assert done.status == "done" and done.agent == "billing" and refunds == [40]


def test_approving_a_call_paused_in_a_sub_agent_that_lost_its_tool_runs_nothing(
    store: Any, server: ScriptedServer
) -> None:
    """The sibling one level down: flights (an agent tool of the planner) asked to book;
    a new release gives flights no booking tool. Approving is a ResumeError before anything
    runs and the session stays paused. The refusal came from inside the sub-run: the
    planner's model was told the agent tool failed, the run finished, and the session went
    idle with the person's approval spent on nothing."""
    from agentkit import Agent, tool

    booked: list[str] = []

    @tool(requires_approval=True)
    def book(flight: str) -> str:
        """Book a flight."""
        booked.append(flight)
        return f"booked {flight}"

    common: dict[str, Any] = {"base_url": server.base_url, "api_key": KEY}

    def planner(tools: list[Any]) -> Agent[Any]:
        flights = Agent("flights", tools, "You book flights.", name="flights", **common)
        return Agent(
            "planner", [flights.as_tool()], "You plan.", name="planner", store=store, **common
        )

    server.queue(
        Reply.tool_calls(("flights", {"request": "Oslo"})),
        Reply.tool_calls(("book", {"flight": "SK1"})),
    )
    paused = planner([book]).run("Book me to Oslo.", session="c-3")
    [call] = paused.pending
    assert call.path == ("planner", "flights")
    asked = server.request_count
    with pytest.raises(ResumeError, match=r"'book' paused inside agent 'flights'"):
        planner([]).resume("c-3", {call: True})
    assert store.load("c-3").status == "paused" and booked == []
    assert server.request_count == asked

    server.queue(Reply.text("Booked SK1."), Reply.text("You fly SK1."))
    done = planner([book]).resume("c-3", {call: True})
    assert done.output == "You fly SK1." and booked == ["SK1"]
