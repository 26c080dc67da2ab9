"""What a client asked for: the chat completion request, read and checked.

Only the fields the endpoint acts on are read; sampling parameters are the operator's
(the Agent's) to set, so a client's ``temperature`` and the like are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ServeError

__all__ = ["ChatRequest", "Limits", "check_conversation", "parse_chat_request", "parse_json"]

_CONVERSATION_MAX = 128  # the stored id adds the owner and the agent, within 256


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may cost the server.

    Attributes:
        max_body_bytes: the largest request body (413 above it).
        max_messages: the most messages one request may carry.
        max_stream_chars: the most answer text one response carries; the run is stopped
            there and the answer ends with ``finish_reason: "length"``.
        run_timeout: seconds one request's run may take (504 after it).
    """

    max_body_bytes: int = 1_000_000
    max_messages: int = 200
    max_stream_chars: int = 200_000
    run_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A checked request: the agent's name, the client's messages, and how to answer."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    conversation: str | None


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise ServeError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ServeError(400, "the request body must be a JSON object", code="invalid_json")
    return data


def parse_chat_request(
    data: Mapping[str, Any],
    *,
    limits: Limits,
    allowed_roles: Collection[str],
    conversation_header: str | None,
) -> ChatRequest:
    """Check a ``/v1/chat/completions`` body; a :class:`ServeError` (400) says what is wrong.

    ``allowed_roles`` are the roles besides ``user`` and plain-text ``assistant`` that the
    operator lets clients send (``system``, ``tool``).
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
    conversation = conversation_header or data.get("user")
    if conversation is not None:
        conversation = check_conversation(conversation)
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


def _messages(value: Any, limits: Limits, allowed_roles: Collection[str]) -> list[dict[str, Any]]:
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
        if role == "user" or role in allowed_roles:
            checked.append(_plain(message, where))
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
            raise ServeError(400, f"{where}: unknown role {role!r}", param=where)
    if checked[-1]["role"] not in ("user", "tool"):
        raise ServeError(400, "the last message must be the user's", param="messages")
    return checked


def _plain(message: dict[str, Any], where: str) -> dict[str, Any]:
    kept = {
        k: v
        for k, v in message.items()
        if k in ("role", "content", "name", "tool_calls", "tool_call_id")
    }
    kept["content"] = _content(message, where)
    return kept


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
