"""``agentkit sessions list|show|delete`` over a SQLite store (and the default path)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from agentkit.cli import main
from agentkit.cli._sessions import default_store_path
from agentkit.sessions import SQLiteStore

from ._support import answer, assistant, calls, user


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    claim = store.claim("cust-17")
    store.append(
        claim,
        [
            user("Where is order 1042?"),
            calls(("c1", "get_order"), arguments='{"order_id": 1042}'),
            answer("c1", "get_order", "shipped"),
            assistant("It shipped yesterday."),
        ],
    )
    store.release(claim)
    claim = store.claim("cust-18")
    state = {"calls": [{"id": "c9", "name": "refund", "arguments": '{"order_id": 7}'}]}
    store.append(claim, [user("refund 7"), calls(("c9", "refund"))], pending=state)
    store.release(claim)
    store.close()
    return path


def test_list(db: str) -> None:
    code, out, _ = _cli("sessions", "list", "--store", db)
    assert code == 0
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["cust-18", "cust-17"]
    assert "paused" in lines[0] and "4 messages" in lines[1]
    code, out, _ = _cli("sessions", "list", "--store", db, "--json", "--prefix", "cust-17")
    assert [s["session"] for s in json.loads(out)] == ["cust-17"]


def test_show(db: str) -> None:
    code, out, _ = _cli("sessions", "show", "cust-17", "--store", db)
    assert code == 0
    assert "user: Where is order 1042?" in out
    assert 'get_order({"order_id": 1042})' in out and "tool get_order: shipped" in out
    code, out, _ = _cli("sessions", "show", "cust-18", "--store", db)
    assert '(waiting for approval) c9: refund({"order_id": 7})' in out
    code, out, _ = _cli("sessions", "show", "cust-18", "--store", db, "--json")
    data = json.loads(out)
    assert data["status"] == "paused" and data["pending"][0]["name"] == "refund"


def test_delete_and_unknown_names(db: str) -> None:
    assert _cli("sessions", "delete", "cust-17", "--store", db)[0] == 0
    code, _, err = _cli("sessions", "show", "cust-17", "--store", db)
    assert code == 1 and "no session 'cust-17'" in err
    code, _, err = _cli("sessions", "delete", "cust-17", "--store", db)
    assert code == 1 and "no session" in err
    code, _, err = _cli("sessions", "show", "--store", db)
    assert code == 2 and "needs a session NAME" in err


def test_a_corrupt_session_is_one_error_line(db: str) -> None:
    import sqlite3

    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE agentkit_messages SET body = 'x' WHERE seq = 2")
    connection.close()
    code, _, err = _cli("sessions", "show", "cust-17", "--store", db)
    assert code == 1 and "corrupt" in err and "message 2" in err and "Traceback" not in err
    assert _cli("sessions", "show", "cust-18", "--store", db)[0] == 0


def test_the_default_store_is_under_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = default_store_path()
    assert path == tmp_path / "agentkit" / "sessions.db"
    code, _, err = _cli("sessions", "list")
    assert code == 0 and "(no sessions)" in err and path.exists()


def test_chat_continues_a_stored_session(server: Any, tmp_path: Path) -> None:
    from agentkit.testing import Reply

    db = str(tmp_path / "chat.db")
    server.queue(Reply.text("Hello!"), Reply.text("You said hi before."))
    base = ["chat", "--base-url", server.base_url, "--no-tools", "--session", "me", "--store", db]
    code, out, err = _cli(*base, "hi")
    assert code == 0 and "Hello!" in out, err
    code, out, err = _cli(*base, "--no-stream", "what did I say?")
    assert code == 0 and "You said hi before." in out, err
    sent = server.requests[1].json()["messages"]
    assert [m["content"] for m in sent] == ["hi", "Hello!", "what did I say?"]
    code, out, _ = _cli("sessions", "show", "me", "--store", db)
    assert "user: what did I say?" in out


def test_chat_store_without_a_session_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = _cli("chat", "--base-url", "http://127.0.0.1:9/v1", "--store", "x.db", "hi")
    assert code == 2 and "give --session NAME too" in err


BOT = '''
import os
from agentkit import Agent, tool

refunded = []

@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    refunded.append(order_id)
    return f"refunded {order_id}"

desk = Agent("scripted", [refund], "You run the order desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456")
'''


@pytest.mark.parametrize("approve_all", [False, True])
def test_chat_settles_a_paused_approval_of_your_own_agent(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, approve_all: bool
) -> None:
    from agentkit.testing import Reply

    bot = tmp_path / "bot.py"
    bot.write_text(BOT)
    monkeypatch.setenv("BOT_MODEL_URL", server.base_url)
    server.queue(Reply.tool_calls(("refund", {"order_id": 7})), Reply.text("All settled."))
    argv = ["chat", "--agent", f"{bot}:desk", "--session", "c1", "--store", str(tmp_path / "s.db")]
    code, out, err = _cli(*argv, *(["--approve-all"] if approve_all else []), "refund 7")
    assert code == 0, err
    assert "All settled." in out
    told = server.requests[1].json()["messages"][-1]["content"]
    if approve_all:
        assert told == "refunded 7"
    else:
        assert "needs your approval" in err and "did not approve" in told
