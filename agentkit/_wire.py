"""Pydantic models of the Chat Completions wire format (responses and stream chunks).

Every model tolerates unknown fields (vendors add ``reasoning_content`` and more) and
nulls where real servers send them. Requests and the transcript stay plain dicts: they are
what users read and write, and building them needs no validation layer.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from ._pricing import ModelPrice

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "Choice",
    "ChunkChoice",
    "Delta",
    "FunctionCall",
    "FunctionCallDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "distinct_calls",
    "message_to_dict",
    "new_call_id",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# Nulls and near-misses real servers send, read the same on both paths (plain and
# streamed): a null string field is its default, arguments sent as a JSON object are that
# object's text, a float ``created`` is whole seconds.


def _null_is(default: Callable[[], Any]) -> BeforeValidator:
    return BeforeValidator(lambda value: default() if value is None else value)


def _arguments_text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _seconds(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) else None
    return None  # anything else says nothing about when


_Text = Annotated[str, _null_is(str)]
_Role = Annotated[str, _null_is(lambda: "assistant")]
_Kind = Annotated[str, _null_is(lambda: "function")]
_Arguments = Annotated[str, _null_is(str), BeforeValidator(_arguments_text)]
_ArgumentsDelta = Annotated[str | None, BeforeValidator(_arguments_text)]
_Created = Annotated[int | None, BeforeValidator(_seconds)]


class _Indexed(_Wire):
    """A wire object with an ``index`` that some servers send as null: null means absent."""

    @model_validator(mode="before")
    @classmethod
    def _null_index_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and "index" in data and data["index"] is None:
            data = {key: value for key, value in data.items() if key != "index"}
        return data


def _count(value: Any) -> int:
    """A token count as sent, or 0 for a null, a negative or a non-integer (vendors vary)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)


class Usage(_Wire):
    """Token counts of one model call, or summed over a run.

    ``prompt_tokens`` includes ``cached_tokens`` (input served from the provider's cache,
    billed lower) and ``cache_creation_tokens`` (input written to DashScope's explicit
    context cache, billed higher); ``completion_tokens`` includes ``reasoning_tokens``
    (Qwen's thinking, OpenAI's reasoning). The three details are read from
    ``prompt_tokens_details.cached_tokens``,
    ``prompt_tokens_details.cache_creation_input_tokens`` and
    ``completion_tokens_details.reasoning_tokens``; a server that reports none of them
    leaves them 0. Add two with ``+`` (or ``sum(usages)``): every count is summed.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @model_validator(mode="before")
    @classmethod
    def _read_details(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        prompt = data.get("prompt_tokens_details")
        if isinstance(prompt, dict):
            out.setdefault("cached_tokens", prompt.get("cached_tokens"))
            out.setdefault("cache_creation_tokens", prompt.get("cache_creation_input_tokens"))
        elif "prompt_cache_hit_tokens" in data:  # DeepSeek's name for the same count
            out.setdefault("cached_tokens", data.get("prompt_cache_hit_tokens"))
        completion = data.get("completion_tokens_details")
        if isinstance(completion, dict):
            out.setdefault("reasoning_tokens", completion.get("reasoning_tokens"))
        for name in _COUNTS:
            if name in out:
                out[name] = _count(out[name])
        return out

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage.model_construct(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def __radd__(self, other: object) -> Usage:
        # sum(usages) starts from 0
        if other == 0:
            return self
        return NotImplemented

    def to_dict(self) -> dict[str, int]:
        """The counts as a plain dict (the six fields, nothing a vendor added)."""
        return {name: getattr(self, name) for name in _COUNTS}

    def cost(self, price: ModelPrice) -> float:
        """The estimated cost of these tokens at ``price`` (see :class:`ModelPrice`)."""
        return price.cost(self)


class FunctionCall(_Wire):
    """The function a tool call names, with its arguments as a JSON text."""

    name: _Text = ""
    arguments: _Arguments = ""


class ToolCall(_Wire):
    """One tool call of an assistant message."""

    id: _Text = ""
    type: _Kind = "function"
    function: Annotated[FunctionCall, _null_is(dict)] = Field(default_factory=FunctionCall)


class ChatMessage(_Wire):
    """An assistant message from a non-streamed answer (or assembled from a stream)."""

    role: _Role = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Indexed):
    """One choice of a completion."""

    index: int = 0
    message: Annotated[ChatMessage, _null_is(dict)] = Field(default_factory=ChatMessage)
    finish_reason: str | None = None


class ChatCompletion(_Wire):
    """A non-streamed answer: ``POST /chat/completions`` with ``stream`` off."""

    id: _Text = ""
    object: _Text = "chat.completion"
    created: _Created = None
    model: _Text = ""
    choices: Annotated[list[Choice], _null_is(list)]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class FunctionCallDelta(_Wire):
    """A fragment of a streamed tool call's function; absent keys are ``None``."""

    name: str | None = None
    arguments: _ArgumentsDelta = None


class ToolCallDelta(_Indexed):
    """A fragment of a streamed tool call, keyed by ``index``."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class Delta(_Wire):
    """The increment a stream chunk carries for one choice."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Indexed):
    """One choice of a stream chunk."""

    index: int = 0
    delta: Annotated[Delta, _null_is(dict)] = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Wire):
    """One ``data:`` event of a streamed answer."""

    id: _Text = ""
    object: _Text = "chat.completion.chunk"
    created: _Created = None
    model: _Text = ""
    choices: Annotated[list[ChunkChoice], _null_is(list)] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


def message_to_dict(message: ChatMessage) -> dict[str, Any]:
    """The assistant message as a transcript dict, in the form every server accepts back.

    ``content`` is ``""`` rather than null when there are tool calls (llama.cpp fails on a
    null), vendor extras such as ``reasoning_content`` are dropped (servers reject them as
    input), and each tool call keeps only ``id``, ``type`` and ``function``.
    """
    out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ]
    return out


def new_call_id() -> str:
    """A fresh tool-call id, for a call a server sent without one."""
    return "call_" + uuid.uuid4().hex[:24]


def distinct_calls(calls: list[ToolCall]) -> list[ToolCall]:
    """The calls of one message, each with an id of its own, so a transcript pairs every id
    with exactly one tool message.

    A call without an id gets a fresh one. A call repeating an earlier one of the same
    message (same id, name and arguments: a server that sent it twice) is dropped, so it
    runs once. Another call reusing an earlier id gets a fresh one: both run. ``calls``
    itself is returned when every call already has an id of its own.
    """
    seen: dict[str, ToolCall] = {}
    out: list[ToolCall] = []
    changed = False
    for call in calls:
        if not call.id:
            call = call.model_copy(update={"id": new_call_id()})
            changed = True
        elif call.id in seen:
            changed = True
            first = seen[call.id].function
            if (first.name, first.arguments) == (call.function.name, call.function.arguments):
                continue
            call = call.model_copy(update={"id": new_call_id()})
        seen[call.id] = call
        out.append(call)
    return out if changed else calls
