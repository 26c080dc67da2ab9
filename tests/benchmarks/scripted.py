"""The scripted conversation every contender runs, as a pure function of the request.

The server is stateless: what it answers depends only on the request body, so any number
of conversations can run at once and every contender sees exactly the same bytes.

- ``MODEL`` (the two-round run): a request whose last message is not a tool result gets
  one tool call (``get_weather`` for Paris); a request whose last message is a tool result
  gets the final answer.
- ``PARALLEL_MODEL``: the same, with ``PARALLEL_CALLS`` tool calls in the first round.
- ``ANSWER_MODEL``: the answer straight away (one round), used to time the first text event.

A request with ``"stream": true`` gets the same reply as server-sent events.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "bench-two-round"
PARALLEL_MODEL = "bench-parallel"
ANSWER_MODEL = "bench-answer"

PARALLEL_CALLS = 8
TOOL_SECONDS = 0.1
"""How long the parallel benchmark's tool sleeps per call."""

QUESTION = "What is the weather in Paris?"
TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Get the current weather for a city."
CITY_DESCRIPTION = "The city name, for example Paris."
TOOL_OUTPUT = "Sunny, 21 C"
ANSWER = "It is sunny and 21 C in Paris."
ANSWER_PIECES = ("It is sunny", " and 21 C", " in Paris.")
"""How a streamed answer is split into chunks."""

CITIES = ("Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Perth")

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": TOOL_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": CITY_DESCRIPTION}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
"""The tool as the hand-written loops send it."""

_USAGE = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}


def get_weather(city: str) -> str:
    """The tool every contender calls: a constant answer, so only framework cost shows."""
    return TOOL_OUTPUT


def wants_answer(body: dict[str, Any]) -> bool:
    """Whether this request gets the final answer (else it gets tool calls)."""
    if body.get("model") == ANSWER_MODEL:
        return True
    messages = body.get("messages") or []
    return bool(messages) and messages[-1].get("role") == "tool"


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    count = PARALLEL_CALLS if body.get("model") == PARALLEL_MODEL else 1
    return [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": json.dumps({"city": CITIES[index]})},
        }
        for index in range(count)
    ]


def completion(body: dict[str, Any]) -> dict[str, Any]:
    """The non-streamed reply to ``body``."""
    if wants_answer(body):
        message: dict[str, Any] = {"role": "assistant", "content": ANSWER}
        finish = "stop"
    else:
        message = {"role": "assistant", "content": None, "tool_calls": _tool_calls(body)}
        finish = "tool_calls"
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _USAGE,
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The streamed reply to ``body``, as the chunk objects (without ``[DONE]``).

    Shaped like DashScope's streams: the first chunk carries the role and the first piece,
    a tool call's id and name come first and its arguments in two fragments, and the last
    chunk has empty ``choices`` and the usage.
    """
    model = body.get("model", MODEL)
    out: list[dict[str, Any]] = []
    if wants_answer(body):
        for index, piece in enumerate(ANSWER_PIECES):
            delta: dict[str, Any] = {"content": piece}
            if index == 0:
                delta["role"] = "assistant"
            out.append(_chunk(model, delta, None))
        out.append(_chunk(model, {}, "stop"))
    else:
        out.append(_chunk(model, {"role": "assistant", "content": ""}, None))
        for index, call in enumerate(_tool_calls(body)):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": arguments[:half]},
            }
            tail = {"index": index, "function": {"arguments": arguments[half:]}}
            out.append(_chunk(model, {"tool_calls": [head]}, None))
            out.append(_chunk(model, {"tool_calls": [tail]}, None))
        out.append(_chunk(model, {}, "tool_calls"))
    usage_chunk = _chunk(model, {}, None)
    usage_chunk["choices"] = []
    usage_chunk["usage"] = _USAGE
    out.append(usage_chunk)
    return out
