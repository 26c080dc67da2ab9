"""Ready-made scripted models: handlers for :meth:`ScriptedServer.respond_with`."""

from __future__ import annotations

from collections.abc import Callable

from .recorded import RecordedRequest
from .replies import Reply, ToolCallSpec

__all__ = ["always", "echo", "tool_then_answer"]


def always(reply: Reply) -> Callable[[RecordedRequest], Reply]:
    """A model that gives the same reply to every request.

    ``always(Reply.tool_calls(("get_time", {})))`` is a model that calls a tool forever,
    for testing turn limits and loop detection. Tool call ids stay unique per request.
    """

    def handler(request: RecordedRequest) -> Reply:
        return reply

    return handler


def tool_then_answer(
    *calls: ToolCallSpec, answer: str = "Done."
) -> Callable[[RecordedRequest], Reply]:
    """A two-round model: it calls ``calls`` and, once the tool results are in, answers.

    It answers ``answer`` when the request's last message is a tool result, and calls the
    tools otherwise, so every conversation (however many run at once) takes two rounds.
    """
    call_reply = Reply.tool_calls(*calls)
    answer_reply = Reply.text(answer)

    def handler(request: RecordedRequest) -> Reply:
        messages = request.messages
        last = messages[-1] if messages else {}
        return answer_reply if isinstance(last, dict) and last.get("role") == "tool" else call_reply

    return handler


def echo() -> Callable[[RecordedRequest], Reply]:
    """A model that answers with the text of the last user message."""

    def handler(request: RecordedRequest) -> Reply:
        for message in reversed(request.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return Reply.text(content if isinstance(content, str) else str(content))
        return Reply.text("")

    return handler
