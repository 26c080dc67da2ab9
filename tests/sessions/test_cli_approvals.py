"""``agentkit sessions --agent ... pending|approve|deny``: the CLI decides a served bot's
paused calls in the bot's own store, with the rules of the HTTP API."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentkit import PlannedCall, RunInfo, RunObserver
from agentkit._observe import add_global_observer, remove_global_observer
from agentkit._store import argument_digest
from agentkit.cli import main
from agentkit.cli._loading import load_agent
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer

from ._support import calls, user

BOT = '''
import os
from agentkit import Agent, tool
from agentkit.sessions import SQLiteStore

refunded = []

@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    refunded.append(order_id)
    return f"refunded {order_id}"

desk = Agent("scripted", [refund], "You run the order desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456",
             store=SQLiteStore(os.environ["BOT_STORE"]))
'''


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def bot(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bot file's ``desk`` target; its store is ``tmp_path/desk.db``."""
    path = tmp_path / "bot.py"
    path.write_text(BOT)
    monkeypatch.setenv("BOT_MODEL_URL", server.base_url)
    monkeypatch.setenv("BOT_STORE", str(tmp_path / "desk.db"))
    return f"{path}:desk"


def _pause(bot: str, server: ScriptedServer, *orders: int, session: str = "c1") -> Any:
    """Run the bot (as serve would) until it pauses on a refund of each order."""
    server.queue(Reply.tool_calls(*[("refund", {"order_id": n}, f"call_{n}") for n in orders]))
    _, agent = load_agent(bot)
    with agent:
        result = agent.run(f"refund {orders}", session=session)
    assert agent.store is not None
    agent.store.close()
    assert result.status == "paused"
    return agent


def test_pending_lists_the_waiting_calls_of_the_agents_store(
    bot: str, server: ScriptedServer
) -> None:
    _pause(bot, server, 7)
    code, out, err = _cli("sessions", "pending", "--agent", bot)
    assert code == 0, err
    session, call_id, call, _ = out.strip().split("\t")
    assert (session, call_id, call) == ("c1", "call_7", 'refund({"order_id": 7})')
    code, out, err = _cli("sessions", "pending", "--agent", bot, "--json")
    [row] = json.loads(out)
    assert row["session"] == "c1" and row["call_id"] == "call_7" and row["waiting_since"] > 0
    assert row["arguments_digest"] == argument_digest("refund", '{"order_id": 7}')


def test_approve_runs_the_call_and_prints_the_answer(bot: str, server: ScriptedServer) -> None:
    agent = _pause(bot, server, 7)
    server.queue(Reply.text("Refunded order 7."))
    code, out, err = _cli("sessions", "approve", "c1", "call_7", "--agent", bot)
    assert code == 0, err
    assert out == "Refunded order 7.\n"
    assert "approved call_7 refund" in err and " as cli" in err
    assert server.requests[-1].messages[-1]["content"] == "refunded 7"
    assert _cli("sessions", "pending", "--agent", bot)[1] == ""
    store = SQLiteStore(agent.store.path)
    assert store.load("c1").status == "idle"
    store.close()


def test_the_operators_decision_reaches_the_observers_with_who_and_when(
    bot: str, server: ScriptedServer
) -> None:
    seen: list[tuple[str, bool, str | None, str | None]] = []

    class Decisions(RunObserver):
        def approval(self, call: PlannedCall, granted: bool) -> None:
            seen.append((call.call_id, granted, call.decided_by, call.decided_at))

    def factory(info: RunInfo) -> RunObserver:
        return Decisions()

    _pause(bot, server, 7)
    server.queue(Reply.text("Not refunded."))
    add_global_observer(factory)
    try:
        code, _, err = _cli("sessions", "deny", "c1", "call_7", "--agent", bot)
    finally:
        remove_global_observer(factory)
    assert code == 0, err
    ((call_id, granted, by, at),) = seen
    assert (call_id, granted) == ("call_7", False)
    assert by is not None and by.startswith("cli") and f" as {by}\n" in err
    assert at is not None and datetime.fromisoformat(at).tzinfo is not None


def test_deny_tells_the_model_the_reason_and_runs_nothing(bot: str, server: ScriptedServer) -> None:
    _pause(bot, server, 7)
    server.queue(Reply.text("I could not refund it."))
    code, out, err = _cli(
        "sessions", "deny", "c1", "call_7", "--reason", "over the limit", "--agent", bot
    )
    assert code == 0, err
    assert out == "I could not refund it.\n"
    told = server.requests[-1].messages[-1]["content"]
    assert "over the limit" in told and "refunded" not in told


def test_a_decision_that_leads_to_the_next_pause_prints_the_waiting_call(
    bot: str, server: ScriptedServer
) -> None:
    _pause(bot, server, 7)
    server.queue(Reply.tool_calls(("refund", {"order_id": 8}, "call_8")))
    code, out, err = _cli("sessions", "approve", "c1", "call_7", "--agent", bot)
    assert code == 0, err
    assert out == "" and 'waiting for approval: c1 call_8 refund({"order_id": 8})' in err
    assert "c1\tcall_8\t" in _cli("sessions", "pending", "--agent", bot)[1]


def test_every_waiting_call_is_decided_at_once(bot: str, server: ScriptedServer) -> None:
    _pause(bot, server, 7, 8)
    code, _, err = _cli("sessions", "approve", "c1", "call_7", "--agent", bot)
    assert code == 2
    assert "also waits on call_8 (refund)" in err
    assert "hint: name each: agentkit sessions approve c1 call_7 call_8" in err
    server.queue(Reply.text("Both refunded."))
    code, out, err = _cli("sessions", "approve", "c1", "call_7", "call_8", "--agent", bot)
    assert code == 0 and out == "Both refunded.\n", err
    assert [m["content"] for m in server.requests[-1].messages[-2:]] == [
        "refunded 7",
        "refunded 8",
    ]


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (
            ["approve", "c1", "call_9"],
            1,
            "session 'c1' has no waiting call 'call_9' (waiting: call_7)",
        ),
        (["approve", "c1"], 2, "needs the CALL_ID of each call to decide"),
        (["approve", "c2", "call_7"], 1, "c2"),
        (["approve", "c1", "call_7", "--reason", "x"], 2, "--reason is for sessions deny"),
    ],
)
def test_a_decision_that_names_no_waiting_call_is_one_line_and_runs_nothing(
    bot: str, server: ScriptedServer, argv: list[str], code: int, said: str
) -> None:
    _pause(bot, server, 7)
    requests = len(server.requests)
    got, out, err = _cli("sessions", *argv, "--agent", bot)
    assert (got, out) == (code, "")
    assert said in err and "Traceback" not in err
    assert len(server.requests) == requests
    assert "c1\tcall_7\t" in _cli("sessions", "pending", "--agent", bot)[1]


def test_a_session_that_is_not_paused_has_nothing_to_decide(
    bot: str, server: ScriptedServer
) -> None:
    _pause(bot, server, 7)
    server.queue(Reply.text("done"))
    assert _cli("sessions", "approve", "c1", "call_7", "--agent", bot)[0] == 0
    code, _, err = _cli("sessions", "approve", "c1", "call_7", "--agent", bot)
    assert code == 1 and "session 'c1' is not waiting for a decision" in err


def test_approve_needs_the_agent_that_runs_the_call(tmp_path: Path) -> None:
    code, _, err = _cli("sessions", "approve", "c1", "call_7", "--store", str(tmp_path / "s.db"))
    assert code == 2 and "name the agent with --agent" in err


def test_a_decision_on_arguments_that_changed_since_the_pause_runs_nothing(
    tmp_path: Path, bot: str, server: ScriptedServer
) -> None:
    # The paused state says order 7; the stored transcript's call now says 8.
    store = SQLiteStore(tmp_path / "desk.db")
    claim = store.claim("c1")
    state = {
        "calls": [
            {
                "id": "c9",
                "name": "refund",
                "arguments": '{"order_id": 7}',
                "digest": argument_digest("refund", '{"order_id": 7}'),
            }
        ]
    }
    store.append(
        claim,
        [user("refund 7"), calls(("c9", "refund"), arguments='{"order_id": 8}')],
        pending=state,
    )
    store.release(claim)
    store.close()
    code, out, err = _cli("sessions", "approve", "c1", "c9", "--agent", bot)
    assert code == 1 and out == ""
    assert "no longer matches its stored arguments" in err
    assert server.requests == []


def test_a_store_path_that_does_not_exist_is_an_error_unless_create(tmp_path: Path) -> None:
    missing = tmp_path / "tpyo.db"
    code, _, err = _cli("sessions", "list", "--store", str(missing))
    assert code == 2 and f"--store {missing}: no such file" in err
    assert "add --create" in err and not missing.exists()
    code, _, err = _cli("sessions", "list", "--store", str(missing), "--create")
    assert code == 0 and "(no sessions)" in err and missing.exists()


def test_store_and_agent_that_disagree_are_refused(
    bot: str, server: ScriptedServer, tmp_path: Path
) -> None:
    _pause(bot, server, 7)
    other = tmp_path / "other.db"
    SQLiteStore(other).close()
    code, out, err = _cli("sessions", "pending", "--agent", bot, "--store", str(other))
    assert code == 2 and out == ""
    assert f"--store {other} is not the store of --agent {bot}" in err
    same = tmp_path / "." / "desk.db"
    code, out, err = _cli("sessions", "pending", "--agent", bot, "--store", str(same))
    assert code == 0 and "call_7" in out, err
    code, _, err = _cli("sessions", "list", "--agent", bot, "--store", "postgresql://u@h/db")
    assert code == 2 and "may name different stores" in err


def test_chat_with_an_agents_store_refuses_another_store(bot: str, tmp_path: Path) -> None:
    other = str(tmp_path / "other.db")
    code, _, err = _cli("chat", "--agent", bot, "--session", "c1", "--store", other, "hi")
    assert code == 2 and "is not the store of --agent" in err


NESTED_BOT = '''
import os
from agentkit import Agent, tool
from agentkit.sessions import SQLiteStore

@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    return f"refunded {order_id}"

billing = Agent("billing", [refund], "You refund.", base_url=os.environ["BOT_MODEL_URL"],
                api_key="sk-model-key-123456", name="billing")
desk = Agent("scripted", [billing.as_tool()], "You run the order desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456",
             store=SQLiteStore(os.environ["BOT_STORE"]), name="desk")
'''


def test_a_call_waiting_inside_an_agent_tool_is_listed_and_decided_by_its_key(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.py"
    path.write_text(NESTED_BOT)
    monkeypatch.setenv("BOT_MODEL_URL", server.base_url)
    monkeypatch.setenv("BOT_STORE", str(tmp_path / "desk.db"))
    bot = f"{path}:desk"
    server.queue(
        Reply.tool_calls(("billing", {"request": "refund 7"}, "call_0")),
        Reply.tool_calls(("refund", {"order_id": 7}, "call_0")),
    )
    _, agent = load_agent(bot)
    with agent:
        assert agent.run("refund 7", session="c1").status == "paused"
    assert agent.store is not None
    agent.store.close()

    code, out, err = _cli("sessions", "pending", "--agent", bot)
    assert code == 0, err
    session, key, call, _ = out.strip().split("\t")
    assert (session, key, call) == (
        "c1",
        "call_0/call_0",
        '[desk > billing] refund({"order_id": 7})',
    )
    code, out, _ = _cli("sessions", "show", "c1", "--agent", bot)
    assert "(waiting for approval) call_0/call_0: [desk > billing] refund" in out
    # the agent-tool call's own id is not a waiting call
    code, _, err = _cli("sessions", "approve", "c1", "call_0", "--agent", bot)
    assert code == 1 and "no waiting call 'call_0'" in err

    server.queue(Reply.text("Refunded order 7."), Reply.text("Order 7 is refunded."))
    code, out, err = _cli("sessions", "approve", "c1", "call_0/call_0", "--agent", bot)
    assert code == 0, err
    assert out == "Order 7 is refunded.\n" and "approved call_0/call_0 refund" in err
    assert server.requests[-2].messages[-1]["content"] == "refunded 7"
    assert _cli("sessions", "pending", "--agent", bot)[1] == ""
