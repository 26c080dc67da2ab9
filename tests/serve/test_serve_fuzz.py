"""Every answer is a JSON body and never a 500: the routes fuzzed with hypothesis, over a
real socket, with bodies of any JSON shape and text of any code point; a trailing slash and
a request h11 cannot parse answered in JSON too (they were a bodiless redirect and a
plain-text 400)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentkit.serve import create_app
from agentkit.testing import ScriptedServer, echo

from .conftest import make_desk, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()

TEXT = st.text(max_size=12)  # any code point, lone surrogates included
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
)
ROLES = st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"]) | VALUES
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES, "content": VALUES},
    optional={"tool_calls": VALUES, "name": VALUES, "tool_call_id": VALUES},
)
CHAT = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["desk", ""]) | VALUES,
        "messages": st.lists(MESSAGE, max_size=3) | VALUES,
        "stream": st.booleans() | VALUES,
        "stream_options": VALUES,
        "user": VALUES,
    },
)
APPROVAL = st.fixed_dictionaries(
    {}, optional={"model": VALUES, "decisions": VALUES, "digests": VALUES, "stream": VALUES}
)


def encoded(value: Any) -> bytes:
    # ensure_ascii: a lone surrogate travels as a \\u escape, as a client would send it
    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ScriptedServer() as model:
        model.respond_with(echo())
        path = Path(tmp_path_factory.mktemp("fuzz")) / "desk.db"
        desk = make_desk(model, store=sessions.SQLiteStore(str(path)))
        with uvicorn_serving(create_app({"desk": desk})) as url:
            yield url


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for every example, as a real client sends many requests: a client made
    per request (``httpx.get``) loads the CA bundle each time, most of an example's cost."""
    with httpx.Client(timeout=60) as client:
        yield client


def answered_in_json(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        assert response.text.startswith("data: {")
        return
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body = response.json()
    if response.status_code >= 400:
        assert set(body["error"]) == {"message", "type", "param", "code"}


# Bounded: each example is a real request; under CI=true the suite's profile derandomises.
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.timeout(300)  # 40 requests through the app on a loaded machine
@FUZZ
@given(body=CHAT, conversation=st.none() | st.text(max_size=6))
@example(body={}, conversation="\r").via("a control character")
@example(body={}, conversation=" a").via("an edge space")
def test_chat_completions_answer_json(
    fuzzed: str, http: httpx.Client, body: dict[str, Any], conversation: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if conversation is not None:
        # A value an HTTP client cannot send (a control character, an edge space, non-ASCII)
        # goes as its hex, which it can.
        sendable = conversation.isascii() and conversation.isprintable()
        if not sendable or conversation != conversation.strip():
            conversation = conversation.encode("utf-8", "surrogatepass").hex()
        headers["X-Agentkit-Conversation"] = conversation
    response = http.post(fuzzed + "/v1/chat/completions", content=encoded(body), headers=headers)
    answered_in_json(response)


@pytest.mark.timeout(300)
@FUZZ
@given(body=APPROVAL, name=st.text(min_size=1, max_size=8))
def test_approvals_and_conversations_answer_json(
    fuzzed: str, http: httpx.Client, body: dict[str, Any], name: str
) -> None:
    # Percent-encoded as a client would send it; "." and ".." stay as they are.
    quoted = quote(name.encode("utf-8", "surrogatepass"), safe="")
    response = http.post(
        f"{fuzzed}/v1/sessions/{quoted}/approvals",
        content=encoded(body),
        headers={"Content-Type": "application/json"},
    )
    answered_in_json(response)
    shown = http.get(f"{fuzzed}/v1/sessions/{quoted}")
    answered_in_json(shown)


@pytest.mark.timeout(300)
@FUZZ
@given(path=st.text(max_size=24), slash=st.booleans())
def test_any_path_answers_json(fuzzed: str, http: httpx.Client, path: str, slash: bool) -> None:
    quoted = quote(path.encode("utf-8", "surrogatepass"), safe="/")
    response = http.get(f"{fuzzed}/{quoted}{'/' if slash else ''}")
    if response.status_code == 200 and response.url.path in ("/", "/favicon.svg", "/favicon.ico"):
        return  # the chat page and its icon
    answered_in_json(response)


@pytest.mark.parametrize("route", ["/healthz/", "/v1/models/", "/v1/me/", "/v1/approvals/"])
def test_a_trailing_slash_is_a_json_404_not_a_redirect(fuzzed: str, route: str) -> None:
    response = httpx.get(fuzzed + route, timeout=60)
    assert response.status_code == 404, response.headers
    assert response.json()["error"]["code"] == "not_found"


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after its 400
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
def test_a_request_h11_cannot_parse_gets_a_json_400(fuzzed: str, request_bytes: bytes) -> None:
    head, _, body = raw_exchange(fuzzed, request_bytes).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_http_request"
    assert set(error) == {"message", "type", "param", "code"}
