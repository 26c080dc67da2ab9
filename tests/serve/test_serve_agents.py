"""A served bot made of bots: the active agent's answer streamed and named in the
``agentkit`` extension field (``agent``), a handoff told as it happens, a follow-up that
reaches the specialist, and approvals over HTTP for calls asked inside a sub-agent (their
``path``, and the digest binding of each)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import Agent, tool
from agentkit.serve import create_app
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import HTTP, MODEL_KEY, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()

KEY = "key-of-the-desk-0123456"


class Scripts:
    """One queue of replies per agent, told apart by the instructions each agent sends."""

    def __init__(self, server: ScriptedServer) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        server.respond_with(self)

    def add(self, agent: str, *replies: Reply) -> None:
        self.replies.setdefault(agent, []).extend(replies)

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.json()
        agent = body["messages"][0]["content"].split()[2].rstrip(".")  # "You are NAME."
        with self._lock:
            self.seen.setdefault(agent, []).append(body)
            return self.replies[agent].pop(0)


def agent(model: ScriptedServer, name: str, tools: Any = (), **options: Any) -> Agent[Any]:
    return Agent(
        "scripted",
        list(tools),
        f"You are {name}.",
        name=name,
        base_url=model.base_url,
        api_key=MODEL_KEY,
        **options,
    )


def ask(
    url: str, text: str, conversation: str, *, stream: bool
) -> tuple[str, dict[str, Any], list[str]]:
    """The answer's text, its ``agentkit`` extension and (streamed) its comment lines."""
    response = HTTP.post(
        url + "/v1/chat/completions",
        json={"model": "triage", "messages": [{"role": "user", "content": text}], "stream": stream},
        headers={"Authorization": f"Bearer {KEY}", "X-Agentkit-Conversation": conversation},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return answer_of(response, stream)


def answer_of(response: httpx.Response, stream: bool) -> tuple[str, dict[str, Any], list[str]]:
    if not stream:
        body = response.json()
        return body["choices"][0]["message"]["content"], body["agentkit"], []
    frames = response.text.split("\n\n")
    chunks = [json.loads(f[6:]) for f in frames if f.startswith("data: {")]
    text = "".join(
        (c["choices"] or [{"delta": {}}])[0]["delta"].get("content") or "" for c in chunks
    )
    comments = [f[len(": agentkit ") :] for f in frames if f.startswith(": agentkit ")]
    return text, chunks[-1]["agentkit"], comments


@pytest.fixture
def scripts(model: ScriptedServer) -> Scripts:
    return Scripts(model)


@pytest.fixture
def desk(model: ScriptedServer, tmp_path: Path) -> Iterator[str]:
    """triage hands off to billing; served with one key on a SQLite store."""
    billing = agent(model, "billing")
    triage = agent(
        model,
        "triage",
        handoffs=[billing],
        store=sessions.SQLiteStore(str(tmp_path / "desk.db")),
    )
    with uvicorn_serving(create_app({"triage": triage}, api_keys=[KEY])) as url:
        yield url


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_answer_names_the_agent_that_gave_it_and_the_follow_up_reaches_it(
    desk: str, scripts: Scripts, stream: bool
) -> None:
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})), Reply.text("Triage."))
    scripts.add("billing", Reply.text("Billing here: charged twice."), Reply.text("Refund sent."))
    text, extension, comments = ask(desk, "I was charged twice.", "c1", stream=stream)
    assert text == "Billing here: charged twice."  # the active agent's answer, not triage's
    assert extension["agent"] == "billing" and extension["status"] == "done"
    if stream:  # told as it happened, before billing's words
        handoff = [json.loads(c) for c in comments if '"handoff"' in c]
        assert handoff == [{"type": "handoff", "source": "triage", "target": "billing"}]
    # the customer's next message goes to billing, not back to triage
    text, extension, _ = ask(desk, "Thanks, please refund it.", "c1", stream=stream)
    assert text == "Refund sent." and extension["agent"] == "billing"
    assert len(scripts.seen["triage"]) == 1 and len(scripts.seen["billing"]) == 2
    assert scripts.replies["triage"]  # triage's second reply was never asked for


def test_a_bot_without_handoffs_names_its_own_agent(
    model: ScriptedServer, scripts: Scripts
) -> None:
    solo = agent(model, "solo")
    scripts.add("solo", Reply.text("Hi."))
    with uvicorn_serving(create_app({"triage": solo}, api_keys=[KEY])) as url:
        response = HTTP.post(
            url + "/v1/chat/completions",
            json={"model": "triage", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
    assert response.json()["agentkit"]["agent"] == "solo"


# --- approvals of calls asked inside a sub-agent ------------------------------------------------


@pytest.fixture
def planner(model: ScriptedServer, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """``planner`` uses ``flights`` as a tool, whose ``book`` needs approval; served with a
    reviewer role on a SQLite store. Yields the URL and the bookings made."""
    booked: list[str] = []

    @tool(requires_approval=True)
    def book(flight: str) -> str:
        """Book a flight."""
        booked.append(flight)
        return f"booked {flight}"

    flights = agent(model, "flights", [book])
    top = agent(
        model,
        "planner",
        [flights.as_tool()],
        store=sessions.SQLiteStore(str(tmp_path / "planner.db")),
    )
    app = create_app({"triage": top}, api_keys=[KEY])
    with uvicorn_serving(app) as url:
        yield url, booked


def decide(url: str, conversation: str, body: dict[str, Any]) -> httpx.Response:
    return HTTP.post(
        f"{url}/v1/sessions/{conversation}/approvals",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_call_asked_inside_a_sub_agent_is_approved_over_http(
    planner: tuple[str, list[str]], scripts: Scripts, stream: bool
) -> None:
    url, booked = planner
    # the model server reuses call ids across levels: only the path tells the calls apart
    scripts.add("planner", Reply.tool_calls(("flights", {"request": "Oslo"}, "call_1")))
    scripts.add("flights", Reply.tool_calls(("book", {"flight": "SK 4411"}, "call_1")))
    text, extension, _ = ask(url, "Book me to Oslo.", "n1", stream=stream)
    assert extension["status"] == "paused" and booked == []
    (pending,) = extension["pending"]
    assert pending["name"] == "book" and pending["path"] == ["planner", "flights"]
    assert pending["id"] == "call_1/call_1"  # the key a decision names it by
    assert 'Waiting for approval: book({"flight": "SK 4411"})' in text
    shown = HTTP.get(url + "/v1/sessions/n1", headers={"Authorization": f"Bearer {KEY}"})
    assert shown.json()["pending"] == [pending]

    # a decision made on other arguments is refused before anything runs
    stale = decide(
        url, "n1", {"decisions": {pending["id"]: True}, "digests": {pending["id"]: "0" * 64}}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "approval_mismatch"
    assert booked == []

    scripts.add("flights", Reply.text("Booked SK 4411."))
    scripts.add("planner", Reply.text("You fly SK 4411."))
    done = decide(
        url,
        "n1",
        {
            "decisions": {pending["id"]: True},
            "digests": {pending["id"]: pending["arguments_digest"]},
            "stream": stream,
        },
    )
    assert done.status_code == 200, done.text
    text, extension, _ = answer_of(done, stream)
    assert text == "You fly SK 4411." and extension["status"] == "done"
    assert booked == ["SK 4411"]
    # the decision is recorded against the call's key
    shown = HTTP.get(url + "/v1/sessions/n1", headers={"Authorization": f"Bearer {KEY}"})
    assert [d["call_id"] for d in shown.json()["decisions"]] == ["call_1/call_1"]
    digests = {pending["id"]: pending["arguments_digest"]}
    again = decide(url, "n1", {"decisions": {pending["id"]: True}, "digests": digests})
    assert again.status_code >= 400 and booked == ["SK 4411"]  # nothing runs twice


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_gated_and_ungated_calls_at_two_levels_are_decided_in_one_request(
    model: ScriptedServer, scripts: Scripts, tmp_path: Path, stream: bool
) -> None:
    # One round of the planner: an agent tool (whose own round mixes an ungated lookup and
    # a booking that needs approval), a booking of its own and an ungated note. One POST
    # decides both waiting calls; nothing that ran runs again and no answer is lost.
    done: list[str] = []

    @tool(requires_approval=True)
    def book(flight: str) -> str:
        """Book a flight."""
        done.append(f"book {flight}")
        return f"booked {flight}"

    @tool
    def find(to: str) -> str:
        """Find a flight."""
        done.append(f"find {to}")
        return f"SK1 to {to}"

    @tool
    def note(text: str) -> str:
        """Take a note."""
        done.append(f"note {text}")
        return "noted"

    flights = agent(model, "flights", [find, book])
    top = agent(
        model,
        "planner",
        [flights.as_tool(), book, note],
        store=sessions.SQLiteStore(str(tmp_path / "mixed.db")),
    )
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "Oslo"}, "call_1"),
            ("book", {"flight": "HOME"}, "call_2"),
            ("note", {"text": "trip"}, "call_3"),
        ),
    )
    scripts.add(
        "flights",
        Reply.tool_calls(("find", {"to": "Oslo"}, "call_1"), ("book", {"flight": "SK1"}, "call_2")),
    )
    with uvicorn_serving(create_app({"triage": top}, api_keys=[KEY])) as url:
        _, extension, _ = ask(url, "Plan Oslo.", "m1", stream=stream)
        assert extension["status"] == "paused"
        pending = {call["id"]: call for call in extension["pending"]}
        assert {key: call["path"] for key, call in pending.items()} == {
            "call_2": ["planner"],
            "call_1/call_2": ["planner", "flights"],
        }
        assert sorted(done) == ["find Oslo", "note trip"]
        scripts.add("flights", Reply.text("SK1 not booked."))
        scripts.add("planner", Reply.text("Home is booked; Oslo is not."))
        decided = decide(
            url,
            "m1",
            {
                "decisions": {"call_2": True, "call_1/call_2": "too dear"},
                "digests": {key: call["arguments_digest"] for key, call in pending.items()},
                "stream": stream,
            },
        )
        assert decided.status_code == 200, decided.text
        text, extension, _ = answer_of(decided, stream)
    assert text == "Home is booked; Oslo is not." and extension["status"] == "done"
    assert sorted(done) == ["book HOME", "find Oslo", "note trip"]
    below = scripts.seen["flights"][-1]["messages"]
    answers = [(m["tool_call_id"], m["content"]) for m in below if m["role"] == "tool"]
    assert answers[0] == ("call_1", "SK1 to Oslo")
    assert answers[1][0] == "call_2" and "too dear" in answers[1][1] and len(answers) == 2
    above = scripts.seen["planner"][-1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in above if m["role"] == "tool"] == [
        ("call_1", "SK1 not booked."),
        ("call_2", "booked HOME"),
        ("call_3", "noted"),
    ]


def test_a_served_pause_whose_call_ids_hold_a_slash_keeps_every_call_apart(
    model: ScriptedServer, scripts: Scripts, tmp_path: Path
) -> None:
    # The model's ids make the planner's own call "a/b" and the sub-agent's call "b" under
    # "a" look alike: each is listed under its own id (the top one escaped) and each
    # decision reaches its call (both ids were "a/b": the digest check refused the pair).
    done: list[str] = []

    @tool(requires_approval=True)
    def book(flight: str) -> str:
        """Book a flight."""
        done.append(flight)
        return f"booked {flight}"

    flights = agent(model, "flights", [book])
    top = agent(
        model,
        "planner",
        [flights.as_tool(), book],
        store=sessions.SQLiteStore(str(tmp_path / "slash.db")),
    )
    scripts.add(
        "planner",
        Reply.tool_calls(
            ("flights", {"request": "Oslo"}, "a"), ("book", {"flight": "HOME"}, "a/b")
        ),
    )
    scripts.add("flights", Reply.tool_calls(("book", {"flight": "SK1"}, "b")))
    with uvicorn_serving(create_app({"triage": top}, api_keys=[KEY])) as url:
        _, extension, _ = ask(url, "Plan Oslo.", "s1", stream=False)
        pending = {call["id"]: call for call in extension["pending"]}
        assert {key: call["path"] for key, call in pending.items()} == {
            "a%2Fb": ["planner"],
            "a/b": ["planner", "flights"],
        }
        scripts.add("flights", Reply.text("SK1 not booked."))
        scripts.add("planner", Reply.text("Home only."))
        decided = decide(
            url,
            "s1",
            {
                "decisions": {"a%2Fb": True, "a/b": False},
                "digests": {key: call["arguments_digest"] for key, call in pending.items()},
            },
        )
        assert decided.status_code == 200, decided.text
    assert decided.json()["agentkit"]["status"] == "done" and done == ["HOME"]
    below = scripts.seen["flights"][-1]["messages"][-1]
    assert below["tool_call_id"] == "b" and "did not approve" in below["content"]
