"""examples/support_desk.py end to end over the scripted model: triage hands the customer to
billing (a refund that waits for a person, decided in another process and over HTTP) and to
tech, billing asks tech as a tool, the follow-up reaches the specialist, and the desk is
served by ``agentkit serve`` as a real process."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import pytest

from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from ._serving import serving
from .conftest import sessions_or_skip

sessions_or_skip()

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_support_desk", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Desk:
    """The scripted model of the three agents, told apart by their instructions."""

    AGENTS: ClassVar[dict[str, str]] = {
        "triage": "triage",
        "billing": "billing",
        "technical": "tech",
    }

    def __init__(self, server: ScriptedServer) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        server.respond_with(self)

    def add(self, agent: str, *replies: Reply) -> None:
        self.replies.setdefault(agent, []).extend(replies)

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.json()
        agent = self.AGENTS[body["messages"][0]["content"].split()[3]]  # "You are the X ..."
        with self._lock:
            self.seen.setdefault(agent, []).append(body)
            return self.replies[agent].pop(0)


@pytest.fixture
def desk(server: ScriptedServer) -> Desk:
    return Desk(server)


@pytest.fixture
def env(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "DESK_DB": str(tmp_path / "desk.db"),
        "DESK_STORE": str(tmp_path / "desk-sessions.db"),
        "DESK_MODEL": "scripted",
        "AGENTKIT_BASE_URL": server.base_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_main(module: ModuleType, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = module.main(list(argv))
    return code, out.getvalue()


def refunds(env: dict[str, str]) -> list[tuple[int, int, str]]:
    with sqlite3.connect(env["DESK_DB"]) as db:
        return list(db.execute("SELECT invoice_id, amount_cents, reason FROM refunds"))


def script_refund(desk: Desk) -> None:
    desk.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    desk.add(
        "billing",
        Reply.tool_calls(("lookup_invoices", {"month": "2025-03"})),
        Reply.tool_calls(("issue_refund", {"invoice_id": 302, "reason": "charged twice"})),
    )


def test_triage_hands_off_to_billing_whose_refund_waits_then_runs_in_another_process(
    desk: Desk, env: dict[str, str]
) -> None:
    module = load()
    script_refund(desk)
    code, out = run_main(module, "I was charged twice for March.")
    assert code == 0
    assert out.splitlines()[0].startswith("[billing] waiting for approval: issue_refund(")
    assert refunds(env) == []  # nothing moved before a person decided
    told = desk.seen["billing"][1]["messages"][-1]
    invoices = json.loads(told["content"])
    assert told["role"] == "tool" and [i["invoice"] for i in invoices] == [301, 302]

    desk.add("billing", Reply.text("Refunded invoice 302."))
    approve = subprocess.run(
        [sys.executable, str(EXAMPLE), "--approve"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert approve.returncode == 0, approve.stderr
    assert approve.stdout.strip() == "[billing] Refunded invoice 302."
    assert refunds(env) == [(302, 4000, "charged twice")]
    tool_message = desk.seen["billing"][-1]["messages"][-1]
    assert tool_message["content"] == "Refunded 40.00 EUR for invoice 302."

    # the customer's follow-up goes to billing, who has the conversation now
    desk.add("billing", Reply.text("You are welcome."))
    code, out = run_main(module, "Thanks!")
    assert out.strip() == "[billing] You are welcome."
    assert len(desk.seen["triage"]) == 1
    assert refunds(env) == [(302, 4000, "charged twice")]  # the refund ran once


def test_a_denied_refund_moves_nothing(desk: Desk, env: dict[str, str]) -> None:
    module = load()
    script_refund(desk)
    run_main(module, "I was charged twice for March.")
    desk.add("billing", Reply.text("The refund was not approved."))
    code, out = run_main(module, "--deny")
    assert code == 0 and out.strip() == "[billing] The refund was not approved."
    assert refunds(env) == []
    told = desk.seen["billing"][-1]["messages"][-1]
    assert told["role"] == "tool" and told["content"].startswith("Not run: a person did not")
    code, _ = run_main(module, "--approve")
    assert code == 1  # nothing waits any more


def test_triage_hands_off_to_tech_who_checks_the_line(desk: Desk, env: dict[str, str]) -> None:
    module = load()
    desk.add("triage", Reply.tool_calls(("transfer_to_tech", {})))
    desk.add("tech", Reply.tool_calls(("check_line", {})), Reply.text("Your line is up."))
    _, out = run_main(module, "My internet is slow.")
    assert out.strip() == "[tech] Your line is up."
    line = desk.seen["tech"][-1]["messages"][-1]
    assert line["role"] == "tool" and "95 Mbit/s" in line["content"]


def test_billing_asks_tech_as_a_tool(desk: Desk, env: dict[str, str]) -> None:
    module = load()
    desk.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    desk.add(
        "billing",
        Reply.tool_calls(("ask_tech", {"request": "Was the line down in April?"})),
        Reply.text("An outage in April: I will credit it."),
    )
    desk.add("tech", Reply.tool_calls(("check_line", {})), Reply.text("Down 3 to 5 April."))
    _, out = run_main(module, "Why is April so expensive?")
    assert out.strip() == "[billing] An outage in April: I will credit it."
    asked = desk.seen["tech"][0]["messages"]
    assert asked[-1] == {"role": "user", "content": "Was the line down in April?"}
    answered = desk.seen["billing"][-1]["messages"][-1]
    assert answered["role"] == "tool" and answered["content"] == "Down 3 to 5 April."


# --- served -----------------------------------------------------------------------------------


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[str]:
    argv = [f"{EXAMPLE}:triage", "--deps", f"{EXAMPLE}:account_for"]
    with serving(argv, {**os.environ, **env}) as url:
        yield url


def post(url: str, path: str, body: dict[str, Any], conversation: str | None = None) -> Any:
    headers = {} if conversation is None else {"X-Agentkit-Conversation": conversation}
    response = httpx.post(url + path, json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_served_desk_pauses_a_refund_and_a_person_approves_it_over_http(
    desk: Desk, env: dict[str, str], served: str, stream: bool
) -> None:
    script_refund(desk)
    asked = post(
        served,
        "/v1/chat/completions",
        {"model": "triage", "messages": [{"role": "user", "content": "Charged twice!"}]},
        "cust-9-web",
    ).json()
    extension = asked["agentkit"]
    assert extension["status"] == "paused" and extension["agent"] == "billing"
    (pending,) = extension["pending"]
    assert pending["name"] == "issue_refund"
    shown = httpx.get(served + "/v1/sessions/cust-9-web", timeout=30).json()
    assert [call["id"] for call in shown["pending"]] == [pending["id"]]

    wrong = httpx.post(
        served + "/v1/sessions/cust-9-web/approvals",
        json={"decisions": {pending["id"]: True}, "digests": {pending["id"]: "0" * 64}},
        timeout=30,
    )
    assert wrong.status_code == 409 and refunds(env) == []

    desk.add("billing", Reply.text("Refunded invoice 302."))
    decided = post(
        served,
        "/v1/sessions/cust-9-web/approvals",
        {
            "decisions": {pending["id"]: True},
            "digests": {pending["id"]: pending["arguments_digest"]},
            "stream": stream,
        },
    )
    if stream:
        chunks = [json.loads(f[6:]) for f in decided.text.split("\n\n") if f.startswith("data: {")]
        text = "".join(
            (c["choices"] or [{"delta": {}}])[0]["delta"].get("content") or "" for c in chunks
        )
        assert text == "Refunded invoice 302."  # billing's answer, streamed
        assert chunks[-1]["agentkit"]["agent"] == "billing"
    else:
        body = decided.json()
        assert body["choices"][0]["message"]["content"] == "Refunded invoice 302."
        assert body["agentkit"]["agent"] == "billing"
    assert refunds(env) == [(302, 4000, "charged twice")]
