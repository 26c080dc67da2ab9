"""How a :class:`~agentkit.testing.Reply` becomes bytes on the wire, for one request.

Internal to :mod:`agentkit.testing`: the server renders each reply against the request it
answers (stream or not, the model asked for, whether usage was requested), then writes
the pieces with the reply's faults.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from .recorded import RecordedRequest
from .replies import (
    _DONE,
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    Reply,
    _Completion,
    _Raw,
    _reason,
    _sse_event,
    _Stream,
    _ToolCall,
)

__all__ = ["Rendered", "reason_phrase", "render", "split_pieces"]

_WORD = re.compile(r"\s*\S+")


@dataclass(slots=True)
class Rendered:
    """A reply rendered for one request: status, headers and body pieces.

    ``streamed`` bodies go out with chunked transfer encoding, one HTTP chunk per piece
    (an SSE event); others with a ``Content-Length`` and ``pieces`` holding one body.
    """

    status: int
    headers: list[tuple[str, str]]
    pieces: list[bytes]
    streamed: bool


def render(reply: Reply, request: RecordedRequest) -> Rendered:
    """Render ``reply`` as the answer to ``request`` (a reset or a hang renders no body)."""
    body = reply.body
    if isinstance(body, _Completion):
        streamed = request.stream if body.stream is None else body.stream
        if streamed:
            events = _completion_events(body, request)
            return Rendered(200, [("content-type", SSE_CONTENT_TYPE)], events, True)
        payload = json.dumps(_completion_json(body, request), ensure_ascii=False).encode()
        return Rendered(200, [("content-type", JSON_CONTENT_TYPE)], [payload], False)
    if isinstance(body, _Raw):
        headers = [] if body.content_type is None else [("content-type", body.content_type)]
        return Rendered(body.status, headers, [body.body], False)
    if isinstance(body, _Stream):
        return Rendered(body.status, [("content-type", SSE_CONTENT_TYPE)], list(body.events), True)
    return Rendered(0, [], [], False)


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase for ``status`` (``"Unknown"`` for unassigned codes)."""
    return _reason(status)


def _completion_json(c: _Completion, request: RecordedRequest) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": _content(c)}
    if c.reasoning is not None:
        message["reasoning_content"] = c.reasoning
    if c.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call, index, request),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(c.tool_calls)
        ]
        if c.style == "llama.cpp":
            first = c.tool_calls[0]
            message["function_call"] = {"name": first.name, "arguments": first.arguments}
    return {
        "id": f"chatcmpl-{request.number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": c.model or request.model or "scripted",
        "choices": [
            {"index": 0, "message": message, "finish_reason": c.finish_reason, "logprobs": None}
        ],
        "usage": _usage(c, request),
        "system_fingerprint": None,
    }


def _completion_events(c: _Completion, request: RecordedRequest) -> list[bytes]:
    base: dict[str, Any] = {
        "id": f"chatcmpl-{request.number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": c.model or request.model or "scripted",
        "system_fingerprint": None,
    }
    include_usage = request.include_usage
    if include_usage:
        base["usage"] = None
    llama = c.style == "llama.cpp"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse_event({**base, "choices": [choice]})

    first: dict[str, Any] = {"role": "assistant", "content": None if llama else ""}
    if llama:
        first.update(function_call=None, tool_calls=None)
    events = [chunk(first)]
    for piece in _split_text(c.reasoning or "", c.chunk_size):
        events.append(chunk({"content": None, "reasoning_content": piece}))
    for piece in _split_text(c.content or "", c.chunk_size):
        events.append(chunk({"content": piece}))
    for index, call in enumerate(c.tool_calls):
        for delta in _tool_call_deltas(call, index, _call_id(call, index, request), c):
            events.append(chunk(delta))
    if llama:
        last: dict[str, Any] = {
            "role": None,
            "content": None,
            "function_call": None,
            "tool_calls": None,
        }
    else:
        last = {"content": ""} if c.style == "dashscope" else {}
    events.append(chunk(last, c.finish_reason))
    if include_usage:
        events.append(_sse_event({**base, "choices": [], "usage": _usage(c, request)}))
    events.append(_DONE)
    return events


def _tool_call_deltas(
    call: _ToolCall, index: int, call_id: str, c: _Completion
) -> list[dict[str, Any]]:
    fragments = _split_arguments(call.arguments, c.chunk_size)
    if c.style == "llama.cpp":
        return [
            {
                "role": None,
                "content": None,
                "function_call": {"name": call.name, "arguments": fragment},
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": fragment},
                    }
                ],
            }
            for fragment in fragments
        ]
    if c.style == "dashscope":
        head = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": fragments[0]},
        }
        rest = [
            {"index": index, "id": "", "type": "function", "function": {"arguments": fragment}}
            for fragment in fragments[1:]
        ]
        trailing = {"index": index, "id": "", "type": "function", "function": {}}
        return [{"tool_calls": [d]} for d in (head, *rest, trailing)]
    head = {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
    rest = [
        {"index": index, "function": {"arguments": fragment}} for fragment in fragments if fragment
    ]
    return [{"tool_calls": [d]} for d in (head, *rest)]


def _content(c: _Completion) -> str | None:
    if c.style == "llama.cpp" and c.tool_calls and not c.content:
        return None
    return c.content


def _call_id(call: _ToolCall, index: int, request: RecordedRequest) -> str:
    return call.call_id if call.call_id is not None else f"call_{request.number}_{index}"


def _usage(c: _Completion, request: RecordedRequest) -> dict[str, Any]:
    if c.usage is not None:
        return dict(c.usage)
    produced = len(c.content or "") + len(c.reasoning or "")
    produced += sum(len(call.name) + len(call.arguments) for call in c.tool_calls)
    prompt = max(1, len(request.body) // 4)
    completion = max(1, produced // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _split_text(text: str, size: int | None) -> list[str]:
    if not text:
        return []
    if size is not None:
        return [text[i : i + size] for i in range(0, len(text), size)]
    words = _WORD.findall(text)
    tail = text[sum(map(len, words)) :]  # trailing whitespace the pattern leaves out
    if tail:
        words.append(tail)
    return words


def _split_arguments(arguments: str, size: int | None) -> list[str]:
    if size is None:
        size = max(1, -(-len(arguments) // 4))
    if not arguments:
        return [""]
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def split_pieces(data: bytes, spec: int | tuple[int, ...]) -> list[bytes]:
    """Split ``data`` by a ``split_bytes`` spec: pieces of one size, or successive sizes
    with the rest in a last piece."""
    if isinstance(spec, int):
        return [data[i : i + spec] for i in range(0, len(data), spec)]
    pieces, start = [], 0
    for size in spec:
        if start >= len(data):
            break
        pieces.append(data[start : start + size])
        start += size
    if start < len(data):
        pieces.append(data[start:])
    return pieces
