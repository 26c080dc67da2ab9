"""The API key as given, and as a server or httpx may echo it: rows of ``docs/reliability.md``.

A key read with ``open("key.txt").read()`` ends in ``"\\n"``; a key pasted from a web page
may hold a non-breaking space. httpx refuses such a header value with a message quoting
it (``Illegal header value b'Bearer <key>\\n'``), so agentkit checks the key where it is
given. A server may echo the key back escaped (JSON ``\\/`` and ``\\u`` escapes,
percent-encoding), and an httpx exception keeps the request it failed on, headers and all:
neither may show the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from agentkit import (
    Agent,
    AgentKitError,
    APITimeoutError,
    AsyncChatClient,
    AuthenticationError,
    ChatClient,
    ConfigurationError,
)
from agentkit.testing import Reply, ScriptedServer

from ._support import INSTRUCTIONS, MODEL

KEY = "sk-proj/SECRET+key_1234567890"
"""A fake key with a ``/`` and a ``+``, which JSON and percent-encoding escape."""
DISTINCT = "SECRET+key_1234567890"
USER = [{"role": "user", "content": "Hi"}]


def escaped_forms(secret: str) -> dict[str, str]:
    """The key as a server, a JSON encoder or a URL may carry it."""
    return {
        "as is": secret,
        "json \\/": json.dumps(secret).strip('"').replace("/", "\\/"),
        "json \\u": "".join(f"\\u{ord(char):04x}" for char in secret),
        "percent": urllib.parse.quote(secret, safe=""),
        "percent twice": urllib.parse.quote(urllib.parse.quote(secret, safe=""), safe=""),
        "bytes repr": repr(secret.encode()),
    }


LEAKS = [*escaped_forms(KEY).values(), *escaped_forms(DISTINCT).values()]


def reachable_texts(obj: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[str]:
    """Every string reachable from ``obj`` through attributes, items and chained causes
    (not through tracebacks: their frames hold the caller's own variables)."""
    seen = set() if seen is None else seen
    if depth > 12 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
        return
    if isinstance(obj, bytes | bytearray):
        yield bytes(obj).decode("latin-1")
        return
    if obj is None or isinstance(obj, int | float | type | types.ModuleType | types.FunctionType):
        return
    if isinstance(obj, types.TracebackType | types.FrameType | types.CodeType):
        return
    children: list[Any] = []
    if isinstance(obj, BaseException):
        yield str(obj)
        yield repr(obj)
        children += [obj.args, obj.__cause__, obj.__context__]
    if isinstance(obj, httpx.Headers):
        children += [list(obj.raw)]
    elif isinstance(obj, Mapping):
        children += [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children += list(obj)
    if hasattr(obj, "__dict__"):
        children += list(vars(obj).values())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            children.append(getattr(obj, name, None))
    for child in children:
        yield from reachable_texts(child, depth + 1, seen)


def assert_never_shows_key(error: BaseException) -> None:
    shown = ["".join(traceback.format_exception(error)), *reachable_texts(error)]
    for text in shown:
        for leak in LEAKS:
            assert leak not in text, f"the key leaked as {leak!r} in {text[:300]!r}"


# --- the key as given ----------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["\n", "\r\n", "\r", "  ", "\t\n"])
def test_whitespace_around_the_key_is_stripped(server: ScriptedServer, tail: str) -> None:
    server.queue(Reply.text("one"), Reply.text("two"))
    with ChatClient(server.base_url, KEY + tail) as client:
        assert client.create(model=MODEL, messages=USER).choices[0].message.content == "one"
    with Agent(
        MODEL, (), INSTRUCTIONS, base_url=server.base_url, api_key=" " + KEY + tail
    ) as agent:
        assert agent.run("Hi").output == "two"
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {KEY}"] * 2


def test_key_from_the_environment_is_stripped(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY + "\r\n")
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url, provider="dashscope") as client:
        client.create(model=MODEL, messages=USER)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (KEY[:8] + "\n" + KEY[8:], "control character (U+000A)"),
        (KEY[:8] + "\r" + KEY[8:], "control character (U+000D)"),
        (KEY + "\x00", "control character (U+0000)"),
        (KEY[:8] + "\x7f" + KEY[8:], "control character (U+007F)"),
        (KEY[:8] + "\u00a0" + KEY[8:], "non-ASCII character (U+00A0)"),
        (KEY + "\u00e9", "non-ASCII character (U+00E9)"),
        (KEY[:8] + " " + KEY[8:], "a space"),
    ],
)
@pytest.mark.parametrize("where", ["ChatClient", "AsyncChatClient", "Agent", "environment"])
def test_a_key_that_cannot_be_sent_is_refused_without_showing_it(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, bad: str, what: str, where: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        if where == "ChatClient":
            ChatClient(server.base_url, bad).close()
        elif where == "AsyncChatClient":
            asyncio.run(AsyncChatClient(server.base_url, bad).aclose())
        elif where == "Agent":
            Agent(MODEL, (), INSTRUCTIONS, base_url=server.base_url, api_key=bad).close()
        elif "\x00" not in bad:  # an environment cannot hold a NUL
            monkeypatch.setenv("DASHSCOPE_API_KEY", bad)
            ChatClient(server.base_url, provider="dashscope").close()
        else:
            raise ConfigurationError(what)
    assert what in str(caught.value)
    assert_never_shows_key(caught.value)
    assert KEY[:8] not in repr(caught.value.args)
    assert server.request_count == 0


def test_a_header_value_that_cannot_be_sent_is_refused_without_showing_it(
    server: ScriptedServer,
) -> None:
    with pytest.raises(ConfigurationError, match="X-Api-Key") as caught:
        ChatClient(server.base_url, headers={"X-Api-Key": KEY + "\n"})
    assert_never_shows_key(caught.value)


def test_a_malformed_key_never_reaches_a_log(server: ScriptedServer) -> None:
    # Sent as given, httpcore's DEBUG record quoted the refused header value in full.
    records: list[str] = []

    class Everything(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(f"{record.getMessage()} {record.args!r} {record.exc_info!r}")

    handler = Everything(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    server.queue(Reply.text("ok"))
    try:
        with ChatClient(server.base_url, KEY + "\n", max_retries=0) as client:
            client.create(model=MODEL, messages=USER)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert any("httpcore" in line or "HTTP" in line for line in records) or records
    for line in records:
        for leak in LEAKS:
            assert leak not in line


# --- the key as a server echoes it -----------------------------------------------------------


@pytest.mark.parametrize("form", list(escaped_forms(KEY)))
@pytest.mark.parametrize("streamed", [False, True])
def test_an_echoed_key_is_masked_in_every_escaped_form(
    server: ScriptedServer, form: str, streamed: bool
) -> None:
    echoed = escaped_forms(KEY)[form]
    body = (
        '{"error": {"message": "Incorrect API key provided: '
        + echoed.replace('"', '\\"')
        + '", "code": "invalid_api_key", "param": "'
        + echoed.replace('"', '\\"')
        + '"}}'
    )
    server.queue(Reply.raw(body, status=401))
    with ChatClient(server.base_url, KEY) as client, pytest.raises(AuthenticationError) as caught:
        if streamed:
            client.stream(model=MODEL, messages=USER).until_done()
        else:
            client.create(model=MODEL, messages=USER)
    assert "***" in caught.value.message
    assert_never_shows_key(caught.value)


# --- the key in what httpx keeps ---------------------------------------------------------------


def test_a_read_timeout_keeps_no_live_authorization_header(server: ScriptedServer) -> None:
    server.queue(Reply.hang())
    with (
        ChatClient(server.base_url, KEY, read_timeout=0.2, max_retries=0) as client,
        pytest.raises(APITimeoutError) as caught,
    ):
        client.create(model=MODEL, messages=USER)
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ReadTimeout)  # the cause is kept, for debugging
    assert cause.request.headers["authorization"] == "Bearer ***"
    assert_never_shows_key(caught.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # sent in full


def test_a_stalled_stream_keeps_no_live_authorization_header(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c").with_(hang_after=2))

    async def main() -> AgentKitError:
        async with AsyncChatClient(server.base_url, KEY, read_timeout=0.2, max_retries=0) as c:
            with pytest.raises(AgentKitError) as caught:
                await c.stream(model=MODEL, messages=USER).until_done()
        return caught.value

    error = asyncio.run(main())
    assert_never_shows_key(error)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_refused_connection_keeps_no_live_authorization_header() -> None:
    from ._support import refused_url

    with (
        ChatClient(refused_url(), KEY, max_retries=0) as client,
        pytest.raises(AgentKitError) as caught,
    ):
        client.create(model=MODEL, messages=USER)
    assert_never_shows_key(caught.value)
