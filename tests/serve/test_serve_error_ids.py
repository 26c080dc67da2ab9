"""No internal id in any error serve answers (issue 18, item 8).

Every failing request a client can make (a wrong key, another person's or an unknown
conversation, a bad digest, a busy conversation, a bad body, a failing model ...) is sent to
a served store-backed desk, under shared keys and under stored keys with reviewers. Each
error body is scanned for what only the server knows: the API keys and any part of their
digests (a shared key's principal is ``key:`` and eight hex characters of one), the stored
keys' ids and digests, the claim tokens and host names in the session rows, the people's
names, the store's path and the model's key. Only what the client itself sent may come back.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import Agent, tool
from agentkit.serve import StoredKeys, create_app
from agentkit.testing import Reply, ScriptedServer, echo

from .conftest import HTTP, MODEL_KEY, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()

SHARED_KEY = "desk-shared-key-0123456789"
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
# A name an error quotes ('c2', `nobody`): it must be one the client sent, one the API gave
# it (a waiting call's id), or a field or header of the API itself.
_QUOTED = re.compile(r"(?<!\w)'([^']*)'(?!\w)|`([^`]*)`")  # not the ' of "call's"
API_WORDS = {
    "messages",
    "decisions",
    "digests",
    "stream",
    "model",
    "Authorization: Bearer <api key>",
    "Content-Type: application/json",
}


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order.

    Args:
        order_id: the order number.
    """
    return f"order {order_id}: refunded"


@dataclass
class Sent:
    """One failing request: what the client sent (every byte of it may come back) and the
    answer."""

    what: str
    sent: str
    response: httpx.Response


@dataclass
class Served:
    url: str
    path: Path
    store: Any
    keys: dict[str, str] = field(default_factory=dict)  # person -> key
    answers: list[Sent] = field(default_factory=list)

    def send(
        self,
        what: str,
        method: str,
        route: str,
        *,
        key: str | None,
        body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent_headers = dict(headers or {})
        if key is not None:
            sent_headers["Authorization"] = f"Bearer {key}"
        if body is not None:
            content = json.dumps(body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        response = HTTP.request(
            method, self.url + route, content=content, headers=sent_headers, timeout=60
        )
        sent = " ".join(
            [route, (content or b"").decode("utf-8", "replace"), *sent_headers.values()]
        )
        self.answers.append(Sent(what, sent, response))
        return response

    def ask(self, what: str, text: str, conversation: str, key: str | None) -> httpx.Response:
        body = {"model": "desk", "messages": [{"role": "user", "content": text}]}
        return self.send(
            what,
            "POST",
            "/v1/chat/completions",
            key=key,
            body=body,
            headers={"X-Agentkit-Conversation": conversation},
        )

    def decide(
        self,
        what: str,
        conversation: str,
        key: str | None,
        decisions: dict[str, Any],
        digests: dict[str, str] | None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"model": "desk", "decisions": decisions}
        if digests is not None:
            body["digests"] = digests
        return self.send(what, "POST", f"/v1/sessions/{conversation}/approvals", key=key, body=body)


def internal_ids(path: Path, keys: Mapping[str, str]) -> set[str]:
    """What only the server knows: each key, its full digest, the people's names, and every
    id the store keeps beside the conversations (key ids and digests, claim tokens, hosts)."""
    found = {MODEL_KEY, str(path), path.name}
    for person, key in keys.items():
        found |= {person, key, hashlib.sha256(key.encode()).hexdigest()}
    columns = {
        "agentkit_keys": ("id", "digest", "principal"),
        "agentkit_sessions": ("owner", "owner_host"),
        "agentkit_owners": ("owner", "principal"),
        "agentkit_decisions": ("decided_by",),
    }
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        for table, names in columns.items():
            if table in tables:
                for name in names:
                    for (value,) in db.execute(f"SELECT {name} FROM {table}"):
                        if isinstance(value, str) and value:
                            found.add(value)
    return found


def leaks(body: str, sent: str, secret: set[str]) -> list[str]:
    """The internal ids in ``body`` that the client did not send itself: a secret named
    whole, or a run of eight or more hex characters (a digest or a part of one)."""
    found = sorted(s for s in secret if _named(s, body) and s not in sent)
    found += [run for run in _HEX_RUN.findall(body) if run not in sent]
    return found


def strangers(message: str, sent: str, given: set[str]) -> list[str]:
    """The names ``message`` quotes that neither the client sent nor the API gave it."""
    quoted = [a or b for a, b in _QUOTED.findall(message)]
    return [name for name in quoted if name not in sent and name not in given | API_WORDS]


def _named(word: str, text: str) -> bool:
    """Whether ``text`` holds ``word`` whole (``erin`` is not in ``answering``)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def check_every_error(served: Served, given: set[str]) -> None:
    """Every answer was an error, a JSON one, with no internal id and no name the client
    was not given (``given``: the ids of the waiting calls the API showed it)."""
    secret = internal_ids(served.path, served.keys)
    errors = [a for a in served.answers if a.response.status_code >= 400]
    # every case made a failing request; a case that now passes must be looked at
    assert [a.what for a in errors] == [a.what for a in served.answers]
    for answer in errors:
        body = answer.response.text
        error = answer.response.json()["error"]  # a JSON error body, never plain text
        assert isinstance(error["message"], str) and error["message"], answer.what
        assert leaks(body, answer.sent, secret) == [], (answer.what, body)
        assert strangers(error["message"], answer.sent, given) == [], (answer.what, body)


def test_the_scan_finds_a_planted_id() -> None:
    """The scan itself: an id of the server's in a body is found, a name the client sent
    is not."""
    digest = hashlib.sha256(SHARED_KEY.encode()).hexdigest()
    secret = {"dana", "tok_1234"}
    assert leaks('{"message": "no such conversation"}', "", secret) == []
    assert leaks(f'{{"message": "not yours, key:{digest[:8]}"}}', "", secret) == [digest[:8]]
    assert leaks('{"message": "held by dana"}', "", secret) == ["dana"]
    assert leaks('{"message": "held: tok_1234"}', "", secret) == ["tok_1234"]
    assert leaks('{"message": "no decision for \'dana-1\'"}', "/dana-1", {"dana"}) == []
    assert strangers("no such session 'key:1a2b/c2'", "/c2", set()) == ["key:1a2b/c2"]
    assert strangers("no call 'call_9'; paused: ['call_1']", "call_9", {"call_1"}) == []
    assert strangers("each call's digest in 'digests'", "", set()) == []
    given = "0123abcd0123abcd"
    assert leaks(f'{{"message": "unknown call {given!r}"}}', given, secret) == []


@pytest.fixture
def shared(model: ScriptedServer, tmp_path: Path) -> Iterator[Served]:
    """The desk under one shared key (its principal is ``key:`` and digest characters)."""
    path = tmp_path / "desk.db"
    store = sessions.SQLiteStore(path)
    desk = Agent(
        "scripted", [refund], "desk", base_url=model.base_url, api_key=MODEL_KEY, store=store
    )
    with uvicorn_serving(create_app({"desk": desk}, api_keys=[SHARED_KEY])) as url:
        yield Served(url, path, store, {"operator": SHARED_KEY})
    store.close()


@pytest.fixture
def stored(model: ScriptedServer, tmp_path: Path) -> Iterator[Served]:
    """The desk with stored keys: two people who ask and a reviewer who decides."""
    path = tmp_path / "desk.db"
    store = sessions.SQLiteStore(path)
    table = sessions.KeyTable(store)
    keys = {person: table.add(person, [role]).key for person, role in PEOPLE}
    desk = Agent(
        "scripted", [refund], "desk", base_url=model.base_url, api_key=MODEL_KEY, store=store
    )
    app = create_app({"desk": desk}, auth=StoredKeys(store), reviewers={"reviewer"})
    with uvicorn_serving(app) as url:
        yield Served(url, path, store, keys)
    store.close()


PEOPLE = (("dana", "patient"), ("erin", "patient"), ("rita", "reviewer"))


def _pause(served: Served, model: ScriptedServer, conversation: str, key: str) -> dict[str, Any]:
    model.queue(Reply.tool_calls(("refund", {"order_id": 5})))
    answer = HTTP.post(
        served.url + "/v1/chat/completions",
        json={"model": "desk", "messages": [{"role": "user", "content": "refund 5"}]},
        headers={"Authorization": f"Bearer {key}", "X-Agentkit-Conversation": conversation},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    extension: dict[str, Any] = answer.json()["agentkit"]
    assert extension["status"] == "paused"
    return extension


def _bodies(served: Served, key: str) -> None:
    """Bad bodies and routes: each refused before anything runs."""
    chat = "/v1/chat/completions"
    served.send("not json", "POST", chat, key=key, content=b"{nope", headers=JSON)
    served.send("a list", "POST", chat, key=key, body=[1, 2])
    served.send("text/plain", "POST", chat, key=key, content=b"{}", headers=PLAIN)
    served.send("no messages", "POST", chat, key=key, body={"model": "desk"})
    served.send("unknown model", "POST", chat, key=key, body=_message("nobody"))
    served.send("surrogate model", "POST", chat, key=key, body=_message("\ud800"))
    bad_role = {"model": "desk", "messages": [{"role": "wizard", "content": "x"}]}
    served.send("unknown role", "POST", chat, key=key, body=bad_role)
    served.send("no route", "GET", "/v1/nowhere", key=key)
    served.send("wrong method", "GET", chat, key=key)
    served.send("no agent", "GET", "/v1/sessions/c1", key=key)
    served.send("bad decisions", "POST", "/v1/sessions/c1/approvals", key=key, body=_DESK)


JSON = {"Content-Type": "application/json"}
PLAIN = {"Content-Type": "text/plain"}
_DESK = {"model": "desk", "decisions": "yes"}


def _message(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def test_no_error_under_shared_keys_names_an_internal_id(
    model: ScriptedServer, shared: Served
) -> None:
    key = SHARED_KEY
    _bodies(shared, key)
    shared.ask("no key", "hi", "c1", None)
    shared.ask("wrong key", "hi", "c1", "desk-shared-key-9999999999")
    shared.decide("unknown conversation", "never-was", key, {"call_1": True}, {"call_1": "d"})
    shared.send("read unknown", "GET", "/v1/sessions/never-was?model=desk", key=key)

    paused = _pause(shared, model, "c2", key)
    call = paused["pending"][0]
    shared.decide("no digest", "c2", key, {call["id"]: True}, None)
    shared.decide("other digest", "c2", key, {call["id"]: True}, {call["id"]: "0" * 64})
    shared.decide("unknown call", "c2", key, {"call_9": True}, {"call_9": call["arguments_digest"]})

    claim = shared.store.claim("c2")  # a run of another worker holds the conversation
    try:
        shared.ask("busy", "again", "c2", key)
        shared.decide("busy decision", "c2", key, {call["id"]: True}, _digest(call))
    finally:
        shared.store.release(claim)

    # every attempt fails (retries included), quoting the model's key
    model.respond_with(lambda request: Reply.error(400, f"upstream refused {MODEL_KEY}"))
    shared.ask("model fails", "hi", "c3", key)
    shared.send("reviewers only", "GET", "/v1/approvals?agent=desk", key=key)
    check_every_error(shared, {call["id"]})


def _digest(call: Mapping[str, Any]) -> dict[str, str]:
    return {call["id"]: call["arguments_digest"]}


def test_no_error_under_stored_keys_names_an_internal_id_or_another_person(
    model: ScriptedServer, stored: Served
) -> None:
    dana, erin, rita = (stored.keys[person] for person, _ in PEOPLE)
    _bodies(stored, dana)
    stored.ask("no key", "hi", "c1", None)
    stored.ask("unknown key", "hi", "c1", "ak_" + "0" * 43)
    stored.decide("unknown conversation", "never-was", rita, {"call_1": True}, {"call_1": "d"})

    paused = _pause(stored, model, "c2", dana)
    call = paused["pending"][0]
    stored.ask("another's conversation", "let me in", "c2", erin)
    stored.send("another's read", "GET", "/v1/sessions/c2?model=desk", key=erin)
    stored.decide("another's decision", "c2", erin, {call["id"]: True}, _digest(call))
    stored.decide("owner decides", "c2", dana, {call["id"]: True}, _digest(call))
    stored.send("not a reviewer", "GET", "/v1/approvals?agent=desk", key=dana)
    stored.decide("no digest", "c2", rita, {call["id"]: True}, None)
    stored.decide("other digest", "c2", rita, {call["id"]: True}, {call["id"]: "f" * 64})
    stored.decide("unknown call", "c2", rita, {"call_9": True}, {"call_9": "d"})

    claim = stored.store.claim("c2")
    try:
        stored.ask("busy", "again", "c2", dana)
        stored.decide("busy decision", "c2", rita, {call["id"]: True}, _digest(call))
    finally:
        stored.store.release(claim)

    model.respond_with(echo())
    decided = HTTP.post(
        f"{stored.url}/v1/sessions/c2/approvals",
        json={"model": "desk", "decisions": {call["id"]: True}, "digests": _digest(call)},
        headers={"Authorization": f"Bearer {rita}"},
        timeout=60,
    )
    assert decided.status_code == 200, decided.text
    stored.decide("decided again", "c2", rita, {call["id"]: False}, _digest(call))
    check_every_error(stored, {call["id"]})
