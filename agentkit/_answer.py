"""What a server's answer says, as both the whole-body and the streamed readers see it.

The request id in its headers, a short quote of its text for an error message, the refusal
of an answer that claims tool calls it does not carry, and the legacy ``function_call``
read as a tool call. Shared by :mod:`agentkit._protocol` and :mod:`agentkit._stream_state`;
it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import InvalidResponseError
from ._wire import ChatCompletion, ChatMessage, FunctionCall, ToolCall, new_call_id

__all__ = ["check_finish", "is_success", "legacy_function_call", "request_id_of", "snippet"]

_REQUEST_ID_HEADERS = ("x-request-id", "x-dashscope-request-id", "request-id")
_SNIPPET = 200


def request_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The request id a server put in its response headers, if any."""
    if headers:
        for name in _REQUEST_ID_HEADERS:
            value = headers.get(name)
            if value:
                return value
    return None


def snippet(text: str) -> str:
    """``text`` on one line, cut to a length an error message can quote."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def is_success(status: int) -> bool:
    """Whether an HTTP status is a 2xx."""
    return 200 <= status < 300


def check_finish(
    completion: ChatCompletion, status: int, headers: Mapping[str, str] | None
) -> None:
    """Refuse an answer that says it called tools but carries neither a call nor text.

    Taken as is, it would end a run with the final answer ``""``. It is a model glitch a
    second try usually clears, so it is retried like a 5xx (a stream only while nothing
    was shown). With text, the text is the answer and the finish reason is left as sent.

    Raises:
        InvalidResponseError: ``code == "tool_calls_without_calls"``, retryable.
    """
    for choice in completion.choices:
        message = choice.message
        if choice.finish_reason == "tool_calls" and not message.tool_calls and not message.content:
            error = InvalidResponseError(
                "the model's answer says it called tools (finish_reason 'tool_calls') but "
                "carries no tool call and no text",
                status=status,
                code="tool_calls_without_calls",
                # looked up only now: each header lookup scans httpx's header list
                request_id=request_id_of(headers),
            )
            error.retryable = True
            raise error


def legacy_function_call(message: ChatMessage) -> ChatMessage:
    """A message with only a legacy ``function_call`` gets it as a tool call too."""
    extra = message.__pydantic_extra__
    legacy = extra.get("function_call") if extra else None
    if not isinstance(legacy, Mapping):
        return message
    name = legacy.get("name")
    if not isinstance(name, str) or not name:
        return message
    arguments = legacy.get("arguments")
    call = ToolCall(
        id=new_call_id(),
        type="function",
        function=FunctionCall(name=name, arguments=arguments if isinstance(arguments, str) else ""),
    )
    return message.model_copy(update={"tool_calls": [call]})
