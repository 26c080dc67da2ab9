"""Handoffs (Agent(handoffs=[...])): the run goes on as another agent, over the real
scripted server. Each agent has its own model name and the server answers each model from
its own script, so every assertion says which agent was asked what."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

import pytest
from _helpers import Scripts
from pydantic import BaseModel

from agentkit import (
    Agent,
    ConfigurationError,
    HandedOff,
    Handoff,
    HandoffLimitError,
    MaxTurnsExceededError,
    RunContext,
    RunFinished,
    RunLimits,
    RunObserver,
    RunResult,
    SubAgentEvent,
    Tool,
    ToolCallStarted,
    ToolResult,
    tool,
)
from agentkit._sources import ToolSource
from agentkit.cli._console import Console, play
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-handoff-test-0123456789"
DRIVERS = ["run", "run_async", "stream", "stream_async"]


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


refunds: list[str] = []


@tool
def lookup_invoice(month: str) -> str:
    """Look up the customer's invoice for a month."""
    return f"{month}: charged twice, 40 EUR each"


@tool(requires_approval=True)
def issue_refund(amount: int) -> str:
    """Refund an amount to the customer."""
    refunds.append(f"{amount}")
    return f"refunded {amount} EUR"


@tool
def check_line(number: str) -> str:
    """Check a customer's line."""
    return f"line {number} is up"


def make(
    server: ScriptedServer, name: str, tools: Sequence[Any] = (), **options: Any
) -> Agent[Any]:
    return Agent(
        name,
        list(tools),
        f"You are {name}. You help customers.",
        name=name,
        base_url=server.base_url,
        api_key=KEY,
        **options,
    )


def desk(server: ScriptedServer, **options: Any) -> tuple[Agent[Any], Agent[Any], Agent[Any]]:
    billing = make(server, "billing", [lookup_invoice, issue_refund])
    tech = make(server, "tech", [check_line])
    triage = make(server, "triage", [], handoffs=[billing, tech], **options)
    return triage, billing, tech


def drive(
    agent: Agent[Any], driver: str, prompt: Any, **kwargs: Any
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


def tool_names(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_transfer_goes_on_as_the_target_with_its_instructions_and_tools(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    triage, _, _ = desk(server)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {}), usage=usage(100, 10)))
    scripts.add(
        "billing",
        Reply.tool_calls(("lookup_invoice", {"month": "March"}), usage=usage(50, 5)),
        Reply.text("You were charged twice in March.", usage=usage(70, 7)),
    )

    result, events = drive(triage, driver, "I was charged twice for March.")

    assert result.output == "You were charged twice in March."
    assert result.agent == "billing"
    assert result.usage.total_tokens == 110 + 55 + 77  # every agent's calls, summed
    assert result.turns == 3
    # triage's model sees one compact transfer tool per target, and nothing else
    first = scripts.seen["triage"][0]
    assert tool_names(first) == ["transfer_to_billing", "transfer_to_tech"]
    transfer = first["tools"][0]["function"]
    assert transfer["parameters"] == {"type": "object", "properties": {}}
    assert transfer["description"] == "Hand the conversation to billing: You are billing"
    # billing is sent its own instructions and tools, and the whole history (policy "all")
    asked = scripts.seen["billing"][0]
    assert tool_names(asked) == ["lookup_invoice", "issue_refund"]
    assert asked["messages"][0] == {
        "role": "system",
        "content": "You are billing. You help customers.",
    }
    assert [m["role"] for m in asked["messages"]] == ["system", "user", "assistant", "tool"]
    assert asked["messages"][2]["name"] == "triage"
    assert asked["messages"][3]["content"] == "Transferred to billing."
    # every assistant message names the agent that wrote it
    authors = [m.get("name") for m in result.messages if m["role"] == "assistant"]
    assert authors == ["triage", "billing", "billing"]
    if driver.startswith("stream"):
        assert HandedOff("triage", "billing") in events
        after = events[events.index(HandedOff("triage", "billing")) :]
        assert any(isinstance(e, ToolResult) and e.name == "lookup_invoice" for e in after)


def test_an_agent_without_handoffs_is_unchanged_and_named_in_the_result(
    server: ScriptedServer, scripts: Scripts
) -> None:
    billing = make(server, "billing", [lookup_invoice])
    scripts.add("billing", Reply.text("Hello."))
    result = billing.run("hi")
    assert result.agent == "billing"
    assert "name" not in result.messages[-1]  # no handoffs: messages exactly as before
    assert "tools" in scripts.seen["billing"][0]
    assert tool_names(scripts.seen["billing"][0]) == ["lookup_invoice"]


# --- history policies -----------------------------------------------------------------

EARLIER = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello, how can I help?"},
    {"role": "user", "content": "I was charged twice for March."},
]


def _policy_run(server: ScriptedServer, scripts: Scripts, history: Any) -> list[dict[str, Any]]:
    """Triage looks the status up and hands off under ``history``; billing's first request."""

    @tool
    def account_status(customer: str) -> str:
        """The customer's account status."""
        return f"{customer} is active"

    billing = make(server, "billing", [lookup_invoice])
    triage = make(server, "triage", [account_status], handoffs=[Handoff(billing, history)])
    scripts.add(
        "triage",
        Reply.tool_calls(
            ("account_status", {"customer": "c-9"}, "call_status"),
            ("transfer_to_billing", {}, "call_transfer"),
        ),
    )
    scripts.add("billing", Reply.text("Let me check."))
    result = triage.run(EARLIER)
    assert result.agent == "billing"
    asked: list[dict[str, Any]] = scripts.seen["billing"][0]["messages"]
    return asked


BILLING_SYSTEM = "You are billing. You help customers."
TRIAGE_TURN = {
    "role": "assistant",
    "name": "triage",
    "content": "",
    "tool_calls": [
        {
            "id": "call_status",
            "type": "function",
            "function": {"name": "account_status", "arguments": '{"customer": "c-9"}'},
        },
        {
            "id": "call_transfer",
            "type": "function",
            "function": {"name": "transfer_to_billing", "arguments": "{}"},
        },
    ],
}


def test_history_all_sends_the_whole_conversation_after_the_targets_instructions(
    server: ScriptedServer, scripts: Scripts
) -> None:
    asked = _policy_run(server, scripts, "all")
    assert asked == [
        {"role": "system", "content": BILLING_SYSTEM},
        *EARLIER,
        TRIAGE_TURN,
        {
            "role": "tool",
            "tool_call_id": "call_status",
            "name": "account_status",
            "content": "c-9 is active",
        },
        {
            "role": "tool",
            "tool_call_id": "call_transfer",
            "name": "transfer_to_billing",
            "content": "Transferred to billing.",
        },
    ]


def test_history_none_sends_only_the_last_user_message(
    server: ScriptedServer, scripts: Scripts
) -> None:
    asked = _policy_run(server, scripts, "none")
    assert asked == [
        {"role": "system", "content": BILLING_SYSTEM},
        {"role": "user", "content": "I was charged twice for March."},
    ]


def test_history_summary_sends_a_digest_with_the_instructions_and_the_last_user_message(
    server: ScriptedServer, scripts: Scripts
) -> None:
    asked = _policy_run(server, scripts, "summary")
    assert asked == [
        {
            "role": "system",
            "content": (
                f"{BILLING_SYSTEM}\n\nSummary of the earlier conversation:\n"
                "- The user said: Hi\n"
                "- The assistant said: Hello, how can I help?\n"
                '- triage called account_status({"customer": "c-9"})\n'
                "- account_status returned: c-9 is active"
            ),
        },
        {"role": "user", "content": "I was charged twice for March."},
    ]


def test_history_function_chooses_the_messages_and_cannot_change_the_transcript(
    server: ScriptedServer, scripts: Scripts
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def users_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append(messages)
        for message in messages:
            message["content"] = "changed"  # a copy: the run's transcript is untouched
        return [{"role": "user", "content": m["content"]} for m in messages if m["role"] == "user"]

    asked = _policy_run(server, scripts, users_only)
    assert asked == [
        {"role": "system", "content": BILLING_SYSTEM},
        {"role": "user", "content": "changed"},
        {"role": "user", "content": "changed"},
    ]
    assert [m["role"] for m in seen[0]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "tool",
    ]


def test_a_history_function_returning_no_messages_is_a_configuration_error(
    server: ScriptedServer, scripts: Scripts
) -> None:
    with pytest.raises(ConfigurationError, match="history function") as caught:
        _policy_run(server, scripts, lambda messages: "everything")
    assert caught.value.messages is not None  # the transcript comes with the error
    assert caught.value.messages[-1]["content"] == "Transferred to billing."


def test_a_bad_history_policy_is_refused_when_the_handoff_is_made(server: ScriptedServer) -> None:
    billing = make(server, "billing")
    with pytest.raises(ConfigurationError, match="history"):
        Handoff(billing, "some")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="target is an Agent"):
        Handoff("billing")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="handoffs is a list"):
        make(server, "triage", handoffs=billing)


# --- what the model may do with transfers ----------------------------------------------


def test_an_invented_transfer_is_an_unknown_tool_and_the_run_stays_with_the_agent(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_nobody", {})),
        Reply.text("Sorry, I can only reach billing or tech."),
    )
    result = triage.run("Put me through to sales.")
    assert result.agent == "triage"
    told = result.messages[-2]
    assert told["role"] == "tool" and "transfer_to_nobody" in told["content"]
    assert "transfer_to_billing" in told["content"]  # the model is told what exists
    assert "billing" not in scripts.seen


def test_a_transfer_with_arguments_is_made_all_the_same(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    scripts.add("triage", Reply.tool_calls(("transfer_to_tech", '{"reason": "no internet"}')))
    scripts.add("tech", Reply.text("Let us check your line."))
    result = triage.run("My internet is down.")
    assert result.agent == "tech"
    assert result.messages[-2]["content"] == "Transferred to tech."


def test_two_transfers_in_one_round_make_the_first_and_tell_the_second(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_tech", {}, "t1"), ("transfer_to_billing", {}, "t2")),
    )
    scripts.add("tech", Reply.text("Tech here."))
    result = triage.run("Both my bill and my line are wrong.")
    assert result.agent == "tech"
    answers = {m["tool_call_id"]: m["content"] for m in result.messages if m["role"] == "tool"}
    assert answers == {
        "t1": "Transferred to tech.",
        "t2": "Not run: this round already transferred the conversation to tech.",
    }
    assert "billing" not in scripts.seen


@pytest.mark.parametrize("driver", DRIVERS)
def test_calls_beside_a_transfer_run_and_are_answered_before_the_target_starts(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    ran: list[str] = []

    @tool
    def note(text: str) -> str:
        """Note something on the customer's file."""
        ran.append(text)
        return "noted"

    billing = make(server, "billing", [lookup_invoice])
    triage = make(server, "triage", [note], handoffs=[billing])
    scripts.add(
        "triage",
        Reply.tool_calls(
            ("transfer_to_billing", {}, "t1"), ("note", {"text": "double charge"}, "n1")
        ),
    )
    scripts.add("billing", Reply.text("Billing here."))
    result, _ = drive(triage, driver, "I was charged twice.")
    assert ran == ["double charge"]
    assert result.agent == "billing"
    sent = scripts.seen["billing"][0]["messages"]
    assert [m.get("tool_call_id") for m in sent if m["role"] == "tool"] == ["t1", "n1"]
    assert sent[-1]["content"] == "noted"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_transfer_beside_a_gated_call_pauses_and_the_resume_goes_on_with_the_target(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    @tool(requires_approval=True)
    def open_ticket(summary: str) -> str:
        """Open a support ticket."""
        return "ticket T-1"

    billing = make(server, "billing", [lookup_invoice])
    triage = make(server, "triage", [open_ticket], handoffs=[billing])
    scripts.add(
        "triage",
        Reply.tool_calls(
            ("open_ticket", {"summary": "double"}, "o1"), ("transfer_to_billing", {}, "t1")
        ),
    )
    scripts.add("billing", Reply.text("Billing here; your ticket is T-1."))
    paused, _ = drive(triage, driver, "I was charged twice.")
    assert paused.status == "paused" and paused.agent == "triage"
    assert [call.name for call in paused.pending] == ["open_ticket"]
    assert "billing" not in scripts.seen  # the round is not closed: no switch yet

    if driver == "run":
        result = triage.resume(paused, {"o1": True})
    elif driver == "run_async":
        result = asyncio.run(triage.resume_async(paused, {"o1": True}))
    elif driver == "stream":
        last = list(triage.resume_stream(paused, {"o1": True}))[-1]
        assert isinstance(last, RunFinished)
        result = last.result
    else:

        async def resumed() -> Any:
            return [e async for e in triage.resume_stream_async(paused, {"o1": True})][-1]

        result = asyncio.run(resumed()).result
    assert result.output == "Billing here; your ticket is T-1."
    assert result.agent == "billing"
    sent = scripts.seen["billing"][0]["messages"]
    assert sent[0]["content"] == BILLING_SYSTEM
    answers = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert answers == {"o1": "ticket T-1", "t1": "Transferred to billing."}


def test_a_transfer_on_the_last_allowed_turn_stops_with_the_transfer_in_the_transcript(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    with pytest.raises(MaxTurnsExceededError) as caught:
        triage.run("Refund me.", limits=RunLimits(max_turns=1))
    messages = caught.value.messages
    assert messages is not None and messages[-1]["content"] == "Transferred to billing."
    assert "billing" not in scripts.seen
    # the transcript passed back goes on with billing, who had the conversation
    scripts.add("billing", Reply.text("Billing here."))
    result = triage.run([*messages, {"role": "user", "content": "Hello?"}])
    assert result.agent == "billing"
    assert scripts.seen["billing"][0]["messages"][0]["content"] == BILLING_SYSTEM
    assert "triage" not in [
        m.get("name") for m in scripts.seen["billing"][0]["messages"] if m["role"] == "system"
    ]


# --- hand-back, the limit, ping-pong ----------------------------------------------------


class Watcher(RunObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def handoff(self, source: str, target: str) -> None:
        self.seen.append(("handoff", source, target))

    def limit_reached(self, limit: str, error: BaseException) -> None:
        self.seen.append(("limit", limit))


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_specialist_hands_back_to_triage(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    watcher = Watcher()
    triage, billing, _ = desk(server, observers=[lambda info: watcher])
    billing.handoffs.append(triage)  # a cycle is made after both exist
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_billing", {})),
        Reply.text("Triage again: what else can I do?"),
    )
    scripts.add("billing", Reply.tool_calls(("transfer_to_triage", {})))
    result, events = drive(triage, driver, "Actually, this is not about my bill.")
    assert result.agent == "triage"
    assert tool_names(scripts.seen["billing"][0])[-1] == "transfer_to_triage"
    back = scripts.seen["triage"][1]
    assert back["messages"][0]["content"] == "You are triage. You help customers."
    assert tool_names(back) == ["transfer_to_billing", "transfer_to_tech"]
    assert watcher.seen == [("handoff", "triage", "billing"), ("handoff", "billing", "triage")]
    if driver.startswith("stream"):
        handed = [e for e in events if isinstance(e, HandedOff)]
        assert handed == [HandedOff("triage", "billing"), HandedOff("billing", "triage")]


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_handoff_limit_stops_the_run_with_the_path_and_the_transcript(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    watcher = Watcher()
    triage, billing, tech = desk(
        server, limits=RunLimits(max_handoffs=2), observers=[lambda info: watcher]
    )
    billing.handoffs.append(tech)
    tech.handoffs.append(triage)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("transfer_to_tech", {})))
    scripts.add("tech", Reply.tool_calls(("transfer_to_triage", {}, "third")))
    with pytest.raises(HandoffLimitError, match="limit of 2 handoffs") as caught:
        drive(triage, driver, "Help.")
    error = caught.value
    assert error.path == ("triage", "billing", "tech", "triage")
    assert error.messages is not None
    last = error.messages[-1]
    assert last["tool_call_id"] == "third" and last["content"].startswith("Not run:")
    assert len(scripts.seen["triage"]) == 1  # triage was not asked again
    assert ("limit", "max_handoffs") in watcher.seen


def test_ping_pong_between_two_agents_is_stopped(server: ScriptedServer, scripts: Scripts) -> None:
    triage, billing, _ = desk(server)
    billing.handoffs.append(triage)
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_billing", {})),
        Reply.tool_calls(("transfer_to_billing", {})),
    )
    scripts.add("billing", Reply.tool_calls(("transfer_to_triage", {})))
    with pytest.raises(HandoffLimitError, match="back and forth between triage and billing") as e:
        triage.run("Refund, no wait, not a refund.")
    assert e.value.path == ("triage", "billing", "triage", "billing")
    assert len(scripts.seen["billing"]) == 1


def test_max_handoffs_is_checked_like_every_limit() -> None:
    assert RunLimits().max_handoffs == 5
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ConfigurationError, match="max_handoffs"):
            RunLimits(max_handoffs=bad)  # type: ignore[arg-type]


# --- the graph, checked before any request --------------------------------------------


def test_the_graph_is_checked_before_any_request(server: ScriptedServer) -> None:
    billing = make(server, "billing")
    cases: list[tuple[Agent[Any], str]] = [
        (
            make(server, "triage", handoffs=[Agent("m", name=None, base_url=server.base_url)]),
            "needs a name",
        ),
        (make(server, "triage", handoffs=[make(server, "bill ing")]), "needs a name"),
        (make(server, "triage", handoffs=[billing, Handoff(billing)]), "two handoffs"),
        (
            make(
                server,
                "triage",
                handoffs=[billing, make(server, "x", handoffs=[make(server, "billing")])],
            ),
            "two agents of the handoff graph are named 'billing'",
        ),
        (
            make(
                server,
                "triage",
                handoffs=[Agent("b", name="b", base_url="http://127.0.0.1:9/v1", api_key=KEY)],
            ),
            "one endpoint",
        ),
    ]
    selfish = make(server, "triage")
    selfish.handoffs.append(selfish)
    cases.append((selfish, "hands off to itself"))
    for agent, problem in cases:
        with pytest.raises(ConfigurationError, match=problem):
            agent.run("hi")
    assert not server.requests


@tool
def whoami(ctx: RunContext[dict[str, str]]) -> str:
    """Who the customer is."""
    return ctx.deps["customer"]


def test_a_target_whose_tools_need_deps_is_refused_without_them(server: ScriptedServer) -> None:
    triage = make(server, "triage", handoffs=[make(server, "billing", [whoami])])
    with pytest.raises(ConfigurationError, match="pass deps="):
        triage.run("hi")
    assert not server.requests


def test_a_transfer_tool_name_taken_by_a_tool_is_refused(server: ScriptedServer) -> None:
    @tool
    def transfer_to_billing() -> str:
        """A tool of the same name."""
        return "?"

    triage = make(server, "triage", [transfer_to_billing], handoffs=[make(server, "billing")])
    with pytest.raises(ConfigurationError, match="transfer tool"):
        triage.run("hi")


def test_a_handoff_description_is_the_given_one(server: ScriptedServer, scripts: Scripts) -> None:
    billing = make(server, "billing")
    triage = make(server, "triage", handoffs=[Handoff(billing, description="Money matters.")])
    scripts.add("triage", Reply.text("ok"))
    triage.run("hi")
    assert scripts.seen["triage"][0]["tools"][0]["function"]["description"] == "Money matters."


def test_the_target_answers_with_its_output_type(server: ScriptedServer, scripts: Scripts) -> None:
    class Refund(BaseModel):
        amount: int

    billing = Agent(
        "billing",
        [],
        "You refund.",
        name="billing",
        output_type=Refund,
        output_mode="json_schema",
        base_url=server.base_url,
        api_key=KEY,
    )
    triage = make(server, "triage", handoffs=[billing])
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.text('{"amount": 40}'))
    result = triage.run("Refund me 40.")
    assert result.output == Refund(amount=40)
    assert "response_format" in scripts.seen["billing"][0]
    assert "response_format" not in scripts.seen["triage"][0]


def test_the_cli_shows_the_handoff_and_the_targets_answer(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    scripts.add(
        "triage",
        Reply.tool_calls(("transfer_to_nobody", {}, "x1")),
        Reply.tool_calls(("transfer_to_billing", {}, "t1")),
    )
    scripts.add("billing", Reply.text("Billing here."))
    out, err = io.StringIO(), io.StringIO()
    play(triage, "Refund", Console(out, err))
    assert out.getvalue() == "Billing here.\n"
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("  x transfer_to_nobody not run: Unknown tool")
    assert lines[1:] == ["  => billing takes over from triage"]


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_a_pause_in_the_target_resumes_from_the_result_with_the_target(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    triage, _, _ = desk(server)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("issue_refund", {"amount": 40}, "r1")),
        Reply.text("Refunded."),
    )
    refunds.clear()
    paused, _ = drive(triage, driver, "Refund me 40.")
    assert paused.status == "paused" and paused.agent == "billing"
    assert [call.name for call in paused.pending] == ["issue_refund"]
    if driver == "run":
        result = triage.resume(paused, {"r1": True})
    else:
        result = asyncio.run(triage.resume_async(paused, {"r1": True}))
    assert result.output == "Refunded." and result.agent == "billing"
    assert refunds == ["40"]
    assert len(scripts.seen["triage"]) == 1
    assert scripts.seen["billing"][-1]["messages"][0]["content"] == BILLING_SYSTEM
    assert result.usage.total_tokens > 0


def test_a_runs_own_limits_apply_to_every_agent_and_do_not_stick(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, billing, _ = desk(server)
    billing.handoffs.append(triage)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("transfer_to_triage", {})))
    with pytest.raises(HandoffLimitError, match="limit of 1 handoffs"):
        triage.run("Help.", limits=RunLimits(max_handoffs=1))
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("transfer_to_triage", {})))
    scripts.add("triage", Reply.text("Back with triage."))
    assert triage.run("Help.").agent == "triage"  # the agent's limits again: 5
    # a run's limits reach the target's settings too
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("lookup_invoice", {"month": "May"})))
    with pytest.raises(MaxTurnsExceededError):
        triage.run("Help.", limits=RunLimits(max_turns=2))


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_agent_with_handoffs_used_as_a_tool_answers_through_its_target(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    triage, _, _ = desk(server)
    planner = make(server, "planner", [triage.as_tool(description="Ask the support desk.")])
    scripts.add(
        "planner",
        Reply.tool_calls(("triage", {"request": "Is line 7 up?"})),
        Reply.text("The desk says line 7 is up."),
    )
    scripts.add("triage", Reply.tool_calls(("transfer_to_tech", {})))
    scripts.add(
        "tech", Reply.tool_calls(("check_line", {"number": "7"})), Reply.text("Line 7 is up.")
    )
    result, _ = drive(planner, driver, "Check line 7 for me.")
    assert result.agent == "planner" and result.output == "The desk says line 7 is up."
    answer = next(m for m in result.messages if m["role"] == "tool")
    assert answer["content"] == "Line 7 is up."
    assert "name" not in result.messages[-1]  # the planner has no handoffs


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_call_paused_after_a_handoff_names_the_target_in_its_path(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    # PendingCall.path ends with the agent that asked for the call: after a handoff that is
    # the target, in the run that handed over and in a resume that pauses again.
    triage, _, _ = desk(server)
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("issue_refund", {"amount": 40}, "r1")),
        Reply.tool_calls(("issue_refund", {"amount": 5}, "r2")),
        Reply.text("Refunded both."),
    )
    refunds.clear()
    paused, _ = drive(triage, driver, "Refund me 40 and 5.")
    assert [(c.name, c.path) for c in paused.pending] == [("issue_refund", ("billing",))]
    again = triage.resume(paused, {"r1": True})
    assert [(c.call_id, c.path) for c in again.pending] == [("r2", ("billing",))]
    done = triage.resume(again, {"r2": True})
    assert done.output == "Refunded both." and refunds == ["40", "5"]


@pytest.mark.parametrize("driver", ["stream", "stream_async"])
def test_a_sub_agents_events_after_its_handoff_name_the_target(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    triage, _, _ = desk(server)
    planner = make(server, "planner", [triage.as_tool(description="Ask the support desk.")])
    scripts.add("planner", Reply.tool_calls(("triage", {"request": "Line 7?"})), Reply.text("Up."))
    scripts.add("triage", Reply.tool_calls(("transfer_to_tech", {})))
    scripts.add("tech", Reply.tool_calls(("check_line", {"number": "7"})), Reply.text("Up."))
    _, events = drive(planner, driver, "Check line 7.")
    nested = [e for e in events if isinstance(e, SubAgentEvent)]
    handed = [e for e in nested if isinstance(e.event, HandedOff)]
    assert [e.path for e in handed] == [("triage",)]  # triage's own event
    after = nested[nested.index(handed[0]) + 1 :]
    assert after and all(e.path == ("tech",) for e in after)
    started = [e.event for e in after if isinstance(e.event, ToolCallStarted)]
    assert [event.name for event in started] == ["check_line"]


def test_a_pause_inside_the_targets_sub_agent_resumes_through_every_level(
    server: ScriptedServer, scripts: Scripts
) -> None:
    refunder = make(server, "refunder", [issue_refund])
    billing = make(server, "billing", [refunder.as_tool(description="Make a refund.")])
    triage = make(server, "triage", handoffs=[billing])
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("refunder", {"request": "refund 40"}, "b1")),
        Reply.text("Your 40 EUR are on their way."),
    )
    scripts.add(
        "refunder",
        Reply.tool_calls(("issue_refund", {"amount": 40}, "r1")),
        Reply.text("Refunded 40."),
    )
    refunds.clear()
    paused = triage.run("Refund me 40.")
    assert paused.status == "paused" and paused.agent == "billing"
    (call,) = paused.pending
    assert call.name == "issue_refund" and call.path[-2:] == ("billing", "refunder")
    assert refunds == []
    result = triage.resume(paused, {call: True})
    assert result.output == "Your 40 EUR are on their way." and result.agent == "billing"
    assert refunds == ["40"]
    assert scripts.seen["billing"][-1]["messages"][-1]["content"] == "Refunded 40."


def test_the_cli_shows_a_handoff_inside_an_agent_tool_indented(
    server: ScriptedServer, scripts: Scripts
) -> None:
    triage, _, _ = desk(server)
    planner = make(server, "planner", [triage.as_tool(description="Ask the support desk.")])
    scripts.add("planner", Reply.tool_calls(("triage", {"request": "Line 7?"})), Reply.text("Up."))
    scripts.add("triage", Reply.tool_calls(("transfer_to_tech", {})))
    scripts.add("tech", Reply.text("Line 7 is up."))
    out, err = io.StringIO(), io.StringIO()
    play(planner, "Check line 7.", Console(out, err))
    assert out.getvalue() == "Up.\n"
    lines = err.getvalue().splitlines()
    assert "      => tech takes over from triage" in lines
    assert lines[lines.index("      => tech takes over from triage") + 1] == (
        "      [tech] Line 7 is up."
    )


class _Source(ToolSource):
    """A tool source whose tools are set after the agents exist."""

    def __init__(self) -> None:
        self.found: list[Tool[..., Any]] = []

    def tools(self) -> Sequence[Tool[..., Any]]:
        return self.found

    async def tools_async(self) -> Sequence[Tool[..., Any]]:
        return self.found


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_targets_source_that_brings_a_cycle_of_agent_tools_is_refused_before_any_request(
    server: ScriptedServer, driver: str
) -> None:
    # A handoff target may have tool sources; what they bring is checked like the entry's.
    source = _Source()
    billing = make(server, "billing", [source])
    triage = make(server, "triage", handoffs=[billing])
    source.found = [billing.as_tool(name="ask_billing")]
    with pytest.raises(ConfigurationError, match="cycle: billing -> billing"):
        drive(triage, driver, "hi")
    assert not server.requests
