"""What a client asked for: the chat completion request, read and checked.

Only the fields the endpoint acts on are read; sampling parameters are the operator's
(the Agent's) to set, so a client's ``temperature`` and the like are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ServeError

__all__ = ["ChatRequest", "RequestLimits", "check_conversation", "parse_chat_request", "parse_json"]

_CONVERSATION_MAX = 128  # the stored id adds the owner and the agent, within 256
MAX_DEPTH = 400
"""The deepest nesting of arrays and objects a request may have: deeper bodies would
reach Python's recursion limit in the run (copying, validating, encoding), far below
json's own."""
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on what one request may cost the server.

    Attributes:
        max_body_bytes: the largest request body (413 above it).
        max_messages: the most messages one request may carry.
        max_stream_chars: the most answer text one response carries; the run is stopped
            there and the answer ends with ``finish_reason: "length"``.
        run_timeout: seconds one request's run may take (504 after it).
        body_timeout: seconds a request's body may take to arrive, once its headers have
            (408 after it).
    """

    max_body_bytes: int = 1_000_000
    max_messages: int = 200
    max_stream_chars: int = 200_000
    run_timeout: float = 300.0
    body_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A checked request: the agent's name, the client's messages, and how to answer."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    conversation: str | None


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400: not JSON, nested deeper than
    :data:`MAX_DEPTH`, or holding text that is not Unicode (a lone surrogate such as
    ``"\\ud800"``, which no answer could quote)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ServeError(400, "the request body is not valid JSON", code="invalid_json") from None
    except RecursionError:  # arrays nested thousands deep
        raise _too_deep() from None
    if not isinstance(data, dict):
        raise ServeError(400, "the request body must be a JSON object", code="invalid_json")
    _check_tree(data)
    return data


def _check_tree(data: dict[str, Any]) -> None:
    # Iterative, so that checking a deep body cannot itself reach the recursion limit.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if isinstance(value, dict):
            children: Any = value.values()
            for key in value:
                _check_text(key)
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children)


def _too_deep() -> ServeError:
    return ServeError(
        400, f"the request body is nested deeper than {MAX_DEPTH} levels", code="too_deep"
    )


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise ServeError(
            400,
            "the request body holds a lone UTF-16 surrogate (such as \\ud800): "
            "text must be valid Unicode",
            code="invalid_text",
        )


def parse_chat_request(
    data: Mapping[str, Any],
    *,
    limits: RequestLimits,
    allowed_roles: Collection[str],
    conversation_header: str | None,
    conversation_from_user: bool = False,
) -> ChatRequest:
    """Check a ``/v1/chat/completions`` body; a :class:`ServeError` (400) says what is wrong.

    ``allowed_roles`` are the roles besides ``user`` and plain-text ``assistant`` that the
    operator lets clients send (``system``, ``tool``). The conversation is the header's;
    the body's ``user`` field names one only with ``conversation_from_user``.
    """
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ServeError(
            400,
            "'model' must name one of the served agents (GET /v1/models)",
            param="model",
            code="missing_model",
        )
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ServeError(400, "'stream' must be true or false", param="stream")
    options = data.get("stream_options")
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    messages = _messages(data.get("messages"), limits, allowed_roles)
    conversation: str | None = None
    if conversation_header is not None:
        conversation = check_conversation(conversation_header)
    elif conversation_from_user and data.get("user") is not None:
        conversation = check_conversation(data.get("user"))
    return ChatRequest(model, messages, stream, include_usage, conversation)


def check_conversation(name: object) -> str:
    """A client's name for a conversation, or a 400: 1 to 128 printable characters."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > _CONVERSATION_MAX
        or not name.isprintable()
    ):
        raise ServeError(
            400,
            f"a conversation name is 1 to {_CONVERSATION_MAX} printable characters",
            param="user",
            code="invalid_conversation",
        )
    return name


def _messages(
    value: Any, limits: RequestLimits, allowed_roles: Collection[str]
) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ServeError(400, "'messages' must be a non-empty list", param="messages")
    if len(value) > limits.max_messages:
        raise ServeError(
            400,
            f"too many messages: {len(value)} (this server takes at most {limits.max_messages})",
            param="messages",
            code="too_many_messages",
        )
    checked: list[dict[str, Any]] = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ServeError(400, f"{where} must be an object", param=where)
        role = message.get("role")
        if role == "system" and role in allowed_roles:
            # Only at the start: a system message after the user's turns would read to the
            # model as new orders in the middle of the conversation.
            if any(earlier["role"] != "system" for earlier in checked):
                raise ServeError(
                    400,
                    f"{where}: a system message may only come before the conversation's "
                    "first user or assistant message",
                    param=where,
                    code="role_not_allowed",
                )
            checked.append({"role": "system", "content": _content(message, where)})
        elif role == "user":
            # Only what a user says: a name, tool calls or a tool call id are not the user's
            # to set, and the model would read them as the bot's own.
            checked.append({"role": "user", "content": _content(message, where)})
        elif role == "tool" and role in allowed_roles:
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ServeError(400, f"{where}: a tool message needs a tool_call_id", param=where)
            checked.append(
                {"role": "tool", "tool_call_id": call_id, "content": _content(message, where)}
            )
        elif role == "assistant":
            # A client's own history: its text, never tool calls, which would let it forge
            # what the bot's tools did.
            if message.get("tool_calls") or message.get("function_call"):
                raise ServeError(
                    400,
                    f"{where}: an assistant message from a client may not carry tool calls",
                    param=where,
                    code="role_not_allowed",
                )
            checked.append({"role": "assistant", "content": _content(message, where)})
        elif role in ("system", "developer", "tool", "function"):
            raise ServeError(
                400,
                f"{where}: this server does not accept {role} messages from clients; "
                "the bot's instructions and tools are set by its operator",
                param=where,
                code="role_not_allowed",
            )
        else:
            raise ServeError(400, f"{where}: unknown role {repr(role)[:40]}", param=where)
    if checked[-1]["role"] not in ("user", "tool"):
        raise ServeError(400, "the last message must be the user's", param="messages")
    return checked


def _content(message: Mapping[str, Any], where: str) -> Any:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
    ):
        return content
    if content is None and message.get("role") == "assistant":
        return ""
    raise ServeError(400, f"{where}.content must be text or a list of content parts", param=where)
