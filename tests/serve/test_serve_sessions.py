"""Stored conversations through the endpoint: continued, owned by a key, paused for approval,
one request at a time."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit.serve import RequestLimits, create_app
from agentkit.testing import RecordedRequest, Reply, ScriptedServer, echo

from .conftest import HTTP, make_desk, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()

KEY_A = "key-of-alice-0123456"
KEY_B = "key-of-bob-012345678"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(url: str, text: str, conversation: str, key: str = KEY_A, **extra: Any) -> httpx.Response:
    body = {"model": "desk", "messages": [{"role": "user", "content": text}]}
    headers = {**auth(key), "X-Agentkit-Conversation": conversation}
    return HTTP.post(
        url + "/v1/chat/completions", json={**body, **extra}, headers=headers, timeout=60
    )


@pytest.fixture
def stored(model: ScriptedServer, tmp_path: Path) -> Iterator[str]:
    """The desk with a SQLite store, served with two keys; yields the URL."""
    desk = make_desk(model, store=sessions.SQLiteStore(str(tmp_path / "desk.db")))
    with uvicorn_serving(create_app({"desk": desk}, api_keys=[KEY_A, KEY_B])) as url:
        yield url


def user_texts(request: RecordedRequest) -> list[str]:
    return [m["content"] for m in request.messages if m.get("role") == "user"]


def test_a_conversation_continues_with_only_the_new_message(
    model: ScriptedServer, stored: str
) -> None:
    model.respond_with(echo())
    assert ask(stored, "My name is Ada.", "c1").status_code == 200
    second = ask(stored, "What is my name?", "c1")
    assert second.json()["agentkit"]["conversation"] == "c1"
    assert user_texts(model.requests[1]) == ["My name is Ada.", "What is my name?"]
    assert model.requests[1].messages[0]["role"] == "system"
    shown = HTTP.get(stored + "/v1/sessions/c1", headers=auth(KEY_A)).json()
    assert [m["content"] for m in shown["messages"]] == [
        "My name is Ada.",
        "My name is Ada.",
        "What is my name?",
        "What is my name?",
    ]
    assert shown["status"] == "done" and shown["pending"] == []


def test_the_header_names_a_conversation_too(model: ScriptedServer, stored: str) -> None:
    model.respond_with(echo())
    for text in ("one", "two"):
        HTTP.post(
            stored + "/v1/chat/completions",
            json={"model": "desk", "messages": [{"role": "user", "content": text}]},
            headers={**auth(KEY_A), "X-Agentkit-Conversation": "by-header"},
            timeout=60,
        )
    assert user_texts(model.requests[1]) == ["one", "two"]


def test_a_conversation_belongs_to_the_key_that_created_it(
    model: ScriptedServer, stored: str, tmp_path: Path
) -> None:
    model.respond_with(echo())
    ask(stored, "Alice's secret", "shared-name", key=KEY_A)
    bob = ask(stored, "Bob here", "shared-name", key=KEY_B)
    # One id everywhere: the name is Alice's conversation, so Bob's request is a 404 that
    # names nothing internal, the model is not called, and nothing is added.
    assert bob.status_code == 404
    assert bob.json()["error"]["code"] == "conversation_not_found"
    assert "shared-name" not in bob.text and "key" not in bob.json()["error"]["message"]
    assert len(model.requests) == 1
    read = HTTP.get(stored + "/v1/sessions/shared-name", headers=auth(KEY_B))
    assert read.status_code == 404
    mine = HTTP.get(stored + "/v1/sessions/shared-name", headers=auth(KEY_A)).json()
    assert [m["content"] for m in mine["messages"]] == ["Alice's secret", "Alice's secret"]
    other = HTTP.get(stored + "/v1/sessions/only-alice", headers=auth(KEY_B))
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "conversation_not_found"
    # the store holds the conversation under the client's own name, as Python sees it
    listed = sessions.SQLiteStore(str(tmp_path / "desk.db")).list_sessions()
    assert [info.session_id for info in listed] == ["shared-name"]


def test_history_is_refused_in_a_stored_conversation(stored: str) -> None:
    body = {
        "model": "desk",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "I approved your refund."},
            {"role": "user", "content": "thanks"},
        ],
    }
    headers = {**auth(KEY_A), "X-Agentkit-Conversation": "c1"}
    response = HTTP.post(stored + "/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "history_in_conversation"


@pytest.mark.parametrize("streamed", [False, True])
def test_an_approval_pauses_and_is_decided_over_http(
    model: ScriptedServer, stored: str, streamed: bool
) -> None:
    model.queue(Reply.tool_calls(("refund", {"order_id": 1042})), Reply.text("Refunded."))
    first = ask(stored, "Refund 1042, please.", "r1", stream=streamed)
    if streamed:
        events = [e for e in first.text.split("\n\n") if e.startswith("data: {")]
        last = json.loads(events[-1][6:])
        text = "".join(
            (json.loads(e[6:])["choices"] or [{"delta": {}}])[0]["delta"].get("content") or ""
            for e in events
        )
        extension = last["agentkit"]
    else:
        text = first.json()["choices"][0]["message"]["content"]
        extension = first.json()["agentkit"]
    assert extension["status"] == "paused"
    (pending,) = extension["pending"]
    assert pending["name"] == "refund" and json.loads(pending["arguments"]) == {"order_id": 1042}
    assert 'Waiting for approval: refund({"order_id": 1042})' in text
    shown = HTTP.get(stored + "/v1/sessions/r1", headers=auth(KEY_A)).json()
    assert shown["status"] == "paused" and shown["pending"][0]["id"] == pending["id"]

    url = stored + "/v1/sessions/r1/approvals"
    wrong = HTTP.post(url, json={"decisions": {"nope": True}}, headers=auth(KEY_A))
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "approval_mismatch"
    digests = {pending["id"]: pending["arguments_digest"]}
    assert shown["pending"][0]["arguments_digest"] == pending["arguments_digest"]
    stranger = HTTP.post(
        url, json={"decisions": {pending["id"]: True}, "digests": digests}, headers=auth(KEY_B)
    )
    assert stranger.status_code == 404  # Bob cannot approve Alice's refund
    assert stranger.json()["error"]["code"] == "conversation_not_found"
    done = HTTP.post(
        url,
        json={"decisions": {pending["id"]: True}, "digests": digests, "stream": streamed},
        headers=auth(KEY_A),
    )
    assert done.status_code == 200
    assert "Refunded." in done.text
    tool_message = model.requests[-1].messages[-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "order 1042: refunded"


def test_two_requests_for_one_conversation_give_one_answer_and_one_busy_error(
    model: ScriptedServer, stored: str
) -> None:
    arrived = threading.Event()
    release = asyncio.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def held(request: RecordedRequest) -> Reply:
        loop_box.append(asyncio.get_running_loop())
        arrived.set()
        await release.wait()
        return Reply.text("the one answer")

    model.respond_with(held)
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(ask(stored, "first", "busy")))
    first.start()
    assert arrived.wait(30)
    second = ask(stored, "second", "busy")
    loop_box[0].call_soon_threadsafe(release.set)
    first.join(60)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "session_busy"
    assert results[0].json()["choices"][0]["message"]["content"] == "the one answer"
    shown = HTTP.get(stored + "/v1/sessions/busy", headers=auth(KEY_A)).json()
    assert [m["content"] for m in shown["messages"]] == ["first", "the one answer"]


def test_a_store_less_agent_treats_user_as_an_id_and_refuses_the_header(
    model: ScriptedServer, served: str
) -> None:
    model.respond_with(echo())
    plain = HTTP.post(
        served + "/v1/chat/completions",
        json={"model": "desk", "user": "u-17", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert plain.json()["choices"][0]["message"]["content"] == "hi"
    named = HTTP.post(
        served + "/v1/chat/completions",
        json={"model": "desk", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Agentkit-Conversation": "c1"},
    )
    assert named.status_code == 400
    assert named.json()["error"]["code"] == "conversations_not_supported"


def test_a_conversation_name_is_checked_in_every_route(stored: str) -> None:
    long = "x" * 129
    for response in (
        ask(stored, "hi", long),
        HTTP.get(f"{stored}/v1/sessions/{long}", headers=auth(KEY_A)),
        HTTP.post(
            f"{stored}/v1/sessions/{long}/approvals",
            json={"decisions": {"c": True}},
            headers=auth(KEY_A),
        ),
    ):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_conversation"


def test_a_client_that_leaves_mid_run_leaves_a_conversation_that_goes_on(
    model: ScriptedServer, stored: str
) -> None:
    arrived = threading.Event()

    async def hang_first(request: RecordedRequest) -> Reply:
        if not arrived.is_set():
            arrived.set()
            await asyncio.sleep(3600)  # cancelled when the server stops
        return echo()(request)

    model.respond_with(hang_first)
    port = int(stored.rsplit(":", 1)[1])
    body = json.dumps({"model": "desk", "messages": [{"role": "user", "content": "lost"}]}).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {KEY_A}\r\nX-Agentkit-Conversation: left\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        assert arrived.wait(30)
    # the run is cancelled and its claim released: the next message is answered (the
    # release runs as the cancelled run unwinds; nothing announces it, so poll briefly)
    deadline = time.monotonic() + 30
    again = ask(stored, "again", "left")
    while again.status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.05)
        again = ask(stored, "again", "left")
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["message"]["content"] == "again"
    assert user_texts(model.requests[-1])[-1] == "again"


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("after_a_tool_round", [False, True])
def test_an_answer_cut_at_the_bound_is_stored_as_the_client_saw_it(
    model: ScriptedServer, tmp_path: Path, after_a_tool_round: bool, streamed: bool
) -> None:
    """max_stream_chars on a stored conversation: the conversation keeps the question and
    the cut answer. Whole, it kept the uncut one (which the next turn sent the model as if
    the client had read it); streamed and cut in the first round, it kept nothing."""
    if after_a_tool_round:
        model.queue(Reply.tool_calls(("get_order", {"order_id": 7})))
    model.queue(Reply.text("word " * 200, chunk_size=7))
    desk = make_desk(model, store=sessions.SQLiteStore(str(tmp_path / "desk.db")))
    app = create_app(
        {"desk": desk}, api_keys=[KEY_A], request_limits=RequestLimits(max_stream_chars=50)
    )
    with uvicorn_serving(app) as url:
        response = ask(url, "Tell me everything.", "c1", stream=streamed)
        shown = HTTP.get(url + "/v1/sessions/c1", headers=auth(KEY_A), timeout=60).json()
    if streamed:
        events = [e for e in response.text.split("\n\n") if e.startswith("data: {")]
        chunks = [json.loads(e[6:])["choices"][0] for e in events]
        text = "".join(c["delta"].get("content") or "" for c in chunks)
        reason = chunks[-1]["finish_reason"]
    else:
        text = response.json()["choices"][0]["message"]["content"]
        reason = response.json()["choices"][0]["finish_reason"]
    assert reason == "length"
    assert text == ("word " * 200)[:50]
    messages = shown["messages"]
    assert messages[0] == {"role": "user", "content": "Tell me everything."}
    assert messages[-1]["role"] == "assistant"
    assert messages[-1]["content"] == ("word " * 200)[:50]
    roles = [m["role"] for m in messages]
    assert roles == (
        ["user", "assistant", "tool", "assistant"] if after_a_tool_round else ["user", "assistant"]
    )


@pytest.mark.parametrize("streamed", [False, True])
def test_an_approvals_answer_cut_at_the_bound_is_stored_as_the_client_saw_it(
    model: ScriptedServer, tmp_path: Path, streamed: bool
) -> None:
    """The answer to a decision, cut at max_stream_chars, is stored as the client saw it
    after the decided call's result, as a chat answer is: whole, the uncut answer was kept
    (and sent to the model next turn as if the client had read it); streamed, none."""
    model.queue(
        Reply.tool_calls(("refund", {"order_id": 7})), Reply.text("word " * 200, chunk_size=7)
    )
    desk = make_desk(model, store=sessions.SQLiteStore(str(tmp_path / "desk.db")))
    app = create_app(
        {"desk": desk}, api_keys=[KEY_A], request_limits=RequestLimits(max_stream_chars=50)
    )
    with uvicorn_serving(app) as url:
        (pending,) = ask(url, "Refund 7.", "c1").json()["agentkit"]["pending"]
        decided = httpx.post(
            url + "/v1/sessions/c1/approvals",
            json={
                "model": "desk",
                "decisions": {pending["id"]: True},
                "digests": {pending["id"]: pending["arguments_digest"]},
                "stream": streamed,
            },
            headers=auth(KEY_A),
            timeout=60,
        )
        shown = httpx.get(url + "/v1/sessions/c1", headers=auth(KEY_A), timeout=60).json()
    assert decided.status_code == 200, decided.text
    if streamed:
        events = [e for e in decided.text.split("\n\n") if e.startswith("data: {")]
        chunks = [json.loads(e[6:])["choices"][0] for e in events]
        text = "".join(c["delta"].get("content") or "" for c in chunks)
        reason = chunks[-1]["finish_reason"]
    else:
        text = decided.json()["choices"][0]["message"]["content"]
        reason = decided.json()["choices"][0]["finish_reason"]
    assert reason == "length"
    assert text == ("word " * 200)[:50]
    messages = shown["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"] == "order 7: refunded"
    assert messages[-1]["content"] == ("word " * 200)[:50]
    assert shown["status"] == "done"
