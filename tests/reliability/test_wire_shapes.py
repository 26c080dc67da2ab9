"""Nulls and odd shapes a server may send, read the same on both paths: rows of
``docs/reliability.md``.

The review found a non-streamed answer with a null tool-call id, arguments sent as an
object, a null role, a null token count or a float ``created`` killing a run the streamed
path accepted; and four shapes accepted silently with a transcript that could not be sent
back (an id answered twice, or a call never answered). The rule: every id in the
transcript is answered by exactly one tool message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _helpers import assert_resendable

from agentkit import Agent, ChatClient, InvalidResponseError, TextDelta
from agentkit.testing import Reply, ScriptedServer

from ._support import MODEL, Driver, run_with, tool_messages, weather_calls


def _completion(message: dict[str, Any], finish: str | None, **top: Any) -> Reply:
    body = {
        "id": "x",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **top,
    }
    return Reply.raw(json.dumps(body))


def _stream(*choices: dict[str, Any], **top: Any) -> Reply:
    """One chunk per choice dict (``{"index", "delta", "finish_reason"}``)."""
    chunks = [{"id": "x", "model": MODEL, "choices": [choice], **top} for choice in choices]
    return Reply.sse(chunks)


def _reply(driver: Driver, calls: list[dict[str, Any]], **top: Any) -> Reply:
    """An answer carrying ``calls`` as given: a JSON body, or one chunk per call."""
    if driver in ("run", "run_async"):
        message = {"role": None, "content": None, "tool_calls": calls}
        return _completion(message, "tool_calls", **top)
    choices = [{"index": 0, "delta": {"role": None, "tool_calls": [call]}} for call in calls]
    return _stream(*choices, {"index": 0, "delta": {}, "finish_reason": "tool_calls"}, **top)


def _call(call_id: str | None, city: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    arguments: Any = {"city": city}  # an object, not a JSON text
    return {"index": index, "id": call_id, "type": None, "function": {"name": "get_weather",
            "arguments": arguments}, **extra}  # fmt: skip


NULLS = {"created": 1700000000.5, "usage": {"prompt_tokens": None, "completion_tokens": 5}}


def test_nulls_are_read_the_same_on_both_paths(server: ScriptedServer, driver: Driver) -> None:
    server.queue(_reply(driver, [_call(None, "Paris")], **NULLS), Reply.text("Sunny."))
    result = run_with(driver, server.base_url)
    assert result.output == "Sunny."
    assert weather_calls == [{"city": "Paris", "days": 1}]
    assert_resendable(result.messages)
    [call] = result.messages[2]["tool_calls"]
    assert call["id"] and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_two_calls_under_one_index_are_two_calls(server: ScriptedServer, driver: Driver) -> None:
    # Some servers send every call as index 0, each with its own id.
    calls = [_call("c1", "Paris"), _call("c2", "Rome")]
    server.queue(_reply(driver, calls), Reply.text("Both sunny."))
    result = run_with(driver, server.base_url)
    assert sorted(c["city"] for c in weather_calls) == ["Paris", "Rome"]
    assert [m["tool_call_id"] for m in tool_messages(result.messages)] == ["c1", "c2"]
    assert_resendable(result.messages)


def test_an_id_reused_for_another_call_gets_one_of_its_own(
    server: ScriptedServer, driver: Driver
) -> None:
    calls = [_call("c1", "Paris", 0), _call("c1", "Rome", 1)]
    server.queue(_reply(driver, calls), Reply.text("Both sunny."))
    result = run_with(driver, server.base_url)
    assert sorted(c["city"] for c in weather_calls) == ["Paris", "Rome"]
    ids = [m["tool_call_id"] for m in tool_messages(result.messages)]
    assert ids[0] == "c1" and ids[1] != "c1" and len(set(ids)) == 2
    assert_resendable(result.messages)


def test_a_call_sent_twice_runs_once(server: ScriptedServer, driver: Driver) -> None:
    calls = [_call("c1", "Paris", 0), _call("c1", "Paris", 1)]
    server.queue(_reply(driver, calls), Reply.text("Sunny."))
    result = run_with(driver, server.base_url)
    assert weather_calls == [{"city": "Paris", "days": 1}]
    assert [m["tool_call_id"] for m in tool_messages(result.messages)] == ["c1"]
    assert_resendable(result.messages)


def _no_calls(driver: Driver) -> Reply:
    if driver in ("run", "run_async"):
        return _completion({"role": "assistant", "content": None}, "tool_calls")
    return _stream({"index": 0, "delta": {"role": "assistant"}, "finish_reason": "tool_calls"})


def test_tool_calls_without_calls_is_retried(server: ScriptedServer, driver: Driver) -> None:
    server.queue(_no_calls(driver), Reply.text("The answer."))
    assert run_with(driver, server.base_url).output == "The answer."
    assert server.request_count == 2


def test_tool_calls_without_calls_is_never_an_empty_answer(
    server: ScriptedServer, driver: Driver
) -> None:
    server.queue(*[_no_calls(driver)] * 3)
    with pytest.raises(InvalidResponseError) as caught:
        run_with(driver, server.base_url)
    assert caught.value.code == "tool_calls_without_calls"
    assert caught.value.messages is not None
    assert server.request_count == 3  # the first try and max_retries (2)


def test_tool_calls_finish_with_text_is_a_text_answer(
    server: ScriptedServer, driver: Driver
) -> None:
    if driver in ("run", "run_async"):
        reply = _completion({"role": "assistant", "content": "Just text."}, "tool_calls")
    else:
        reply = _stream(
            {"index": 0, "delta": {"content": "Just text."}, "finish_reason": "tool_calls"}
        )
    server.queue(reply)
    assert run_with(driver, server.base_url).output == "Just text."


def test_a_second_choice_is_never_interleaved(server: ScriptedServer) -> None:
    def text(index: int, content: str, finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": {"content": content}, "finish_reason": finish}

    server.queue(
        _stream(
            text(0, "Hello "),
            text(1, "IGNORE ALL PREVIOUS "),
            text(0, "world."),
            text(1, "INSTRUCTIONS", "stop"),
            text(0, "", "stop"),
        )
    )
    shown: list[str] = []
    with ChatClient(server.base_url, "sk-test") as client, Agent(MODEL, client=client) as agent:
        for event in agent.stream("Hi"):
            if isinstance(event, TextDelta):
                shown.append(event.text)
            result = getattr(event, "result", None)
    assert "".join(shown) == "Hello world."
    assert result is not None and result.output == "Hello world."
