"""Checks and waits the tests share (import them: ``from _helpers import wait_until``).

The tests folder is on ``sys.path`` while pytest runs (its ``conftest.py`` puts it there),
so test modules in any subfolder import this module by its plain name.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from agentkit.testing import RecordedRequest, Reply, ScriptedServer

_ROLES = {"system", "user", "assistant", "tool"}
_refusing: socket.socket | None = None


def refused_port() -> int:
    """A loopback port where every connection is refused.

    The port stays bound by this process for its whole life and never listens, so no
    other test or process can take it meanwhile (a port picked by bind-and-close and then
    released could be taken before the test connects to it).
    """
    global _refusing
    if _refusing is None:
        _refusing = socket.socket()
        _refusing.bind(("127.0.0.1", 0))
    return int(_refusing.getsockname()[1])


def assert_resendable(messages: object) -> None:
    """``messages`` is a Chat Completions transcript that a provider accepts again.

    Plain JSON data; known roles; a system message only first; every assistant turn with
    ``tool_calls`` is followed by exactly one ``role: tool`` message per call id, in call
    order, naming the tool, with string content; call ids unique within a turn; no tool
    message without its assistant turn; no null assistant content next to tool calls
    (llama.cpp answers 500 to that).
    """
    assert isinstance(messages, list) and messages, f"not a transcript: {messages!r}"
    json.loads(json.dumps(messages))  # plain, JSON-ready data
    position = 0
    while position < len(messages):
        message = messages[position]
        assert isinstance(message, dict), message
        role = message.get("role")
        assert role in _ROLES, f"message {position} has role {role!r}"
        assert role != "tool", f"message {position} is a tool message with no assistant turn"
        if role == "system":
            assert position == 0, "a system message only comes first"
        content = message.get("content")
        assert content is None or isinstance(content, str | list), message
        calls = message.get("tool_calls") if role == "assistant" else None
        position += 1
        if not calls:
            assert role == "assistant" or isinstance(content, str | list), message
            continue
        assert isinstance(content, str), f"assistant content next to tool calls: {content!r}"
        ids = []
        for call in calls:
            assert call.get("type") == "function", call
            assert isinstance(call.get("id"), str) and call["id"], call
            function = call.get("function")
            assert isinstance(function, dict), call
            assert isinstance(function.get("name"), str), call
            assert isinstance(function.get("arguments"), str), call
            ids.append(call["id"])
        assert len(set(ids)) == len(ids), f"duplicate call ids {ids}"
        answers = messages[position : position + len(ids)]
        assert [m.get("role") for m in answers] == ["tool"] * len(ids), (
            f"assistant turn {position - 1} has {len(ids)} calls but is followed by "
            f"{[m.get('role') for m in answers]}"
        )
        for answer, call in zip(answers, calls, strict=True):
            assert answer["tool_call_id"] == call["id"]
            assert answer.get("name") == call["function"]["name"]
            assert isinstance(answer.get("content"), str)
        position += len(ids)


WAIT = 20.0
"""How long a wait gives a condition that is expected to hold soon before it fails the test.
A guard against a hang, never a measure: a loaded machine (the suite runs two workers per
core, beside whatever else runs) can stall a thread for seconds, and a passing test never
waits this long."""


def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Poll ``condition`` from a thread until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


async def wait_until_async(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Poll ``condition`` on the event loop until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


class Scripts:
    """One queue of replies per model name, and the requests each model received.

    A bot made of several agents gives each its own model name, so each agent's replies
    are scripted apart, whatever order parallel sub-runs (or a child process's runs: the
    server runs in the test's process) ask in.
    """

    def __init__(self, server: ScriptedServer) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        server.respond_with(self)

    def add(self, model: str, *replies: Reply) -> None:
        """Queue ``replies`` for the next requests to ``model``."""
        self.replies.setdefault(model, []).extend(replies)

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.json()
        with self._lock:
            self.seen.setdefault(body["model"], []).append(body)
            return self.replies[body["model"]].pop(0)
