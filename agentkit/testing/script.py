"""A model scripted in a file: ``python -m agentkit.testing --script replies.json``.

A script is a list of *turns*. A turn answers one user message: ``when`` (optional) is
text the message must contain (case-insensitive; the first turn that matches answers),
and ``replies`` are the model's answers to that message, round by round: the first
request after the user message gets ``replies[0]``, the request carrying its tool results
``replies[1]``, and so on. Every conversation walks the script on its own, so one script
serves any number of chats, served conversations and tests at once::

    [
      {"when": "order 42",
       "replies": [{"tool_calls": [{"name": "get_order", "arguments": {"order_id": 42}}]},
                   "Order 42 has shipped."]},
      {"replies": ["Ask me about an order."]}
    ]

A reply is a string (the answer text), ``{"text": ..., "reasoning": ...}``, or
``{"tool_calls": [{"name": ..., "arguments": {...}, "id": ...}], "content": ...}`` (``id``
and ``content`` optional). A bare list of replies is one turn that matches any message.

A ``.py`` script defines either ``script`` (the same structure, where a reply may also be a
:class:`Reply`) or ``handler``, a function of the :class:`RecordedRequest` returning a
:class:`Reply`, as :meth:`ScriptedServer.respond_with` takes.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import AgentKitError
from .recorded import RecordedRequest
from .replies import Reply

__all__ = ["ScriptError", "load_script", "script_model"]


class ScriptError(AgentKitError, ValueError):
    """A script that cannot be read, or has no reply for a request: the message names the
    file, the turn and reply, and why."""


@dataclass(frozen=True, slots=True)
class _Turn:
    when: str | None
    replies: tuple[Reply, ...]


def script_model(script: Any, *, source: str = "the script") -> Callable[[RecordedRequest], Reply]:
    """The handler answering each request from ``script`` (the structure described above).

    Raises ``ScriptError`` when the script is malformed, before anything is served. A
    request the script has no reply for is answered with a 500 that says so (and is one
    of the server's :attr:`~ScriptedServer.errors`).
    """
    turns = _turns(script, source)

    def handler(request: RecordedRequest) -> Reply:
        said, rounds = _position(request.messages)
        for turn in turns:
            if turn.when is None or turn.when.lower() in said.lower():
                if rounds < len(turn.replies):
                    return turn.replies[rounds]
                matched = f"the turn for {turn.when!r}" if turn.when else "the turn"
                raise ScriptError(
                    f"{source}: {matched} has {len(turn.replies)} replies; this is round "
                    f"{rounds + 1} after the user's {_short(said)!r}"
                )
        raise ScriptError(f"{source}: no turn matches the user's {_short(said)!r}")

    return handler


def load_script(path: str | Path) -> Callable[[RecordedRequest], Reply]:
    """The handler a script file describes: a ``.json`` script, or a ``.py`` module with
    ``script`` or ``handler``. Raises ``ScriptError`` naming the file and the problem."""
    file = Path(path)
    if not file.is_file():
        raise ScriptError(f"{path}: no such file")
    if file.suffix == ".py":
        return _from_module(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ScriptError(f"{path}: not JSON ({error})") from None
    return script_model(data, source=str(path))


def _from_module(file: Path) -> Callable[[RecordedRequest], Reply]:
    spec = importlib.util.spec_from_file_location(f"_agentkit_script_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file failed while importing
        raise ScriptError(f"{file}: {type(error).__name__}: {error}") from None
    handler = getattr(module, "handler", None)
    if callable(handler):
        return handler  # type: ignore[no-any-return]
    if hasattr(module, "script"):
        return script_model(module.script, source=str(file))
    raise ScriptError(f"{file}: defines neither `script` nor a `handler(request)` function")


def _position(messages: Sequence[Any]) -> tuple[str, int]:
    """The last user message's text, and how many model rounds have answered it."""
    rounds = 0
    for message in reversed(messages):
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "user":
            content = message.get("content")
            return (content if isinstance(content, str) else json.dumps(content)), rounds
        if message.get("role") == "assistant":
            rounds += 1
    return "", rounds


def _turns(script: Any, source: str) -> tuple[_Turn, ...]:
    if isinstance(script, Sequence) and not isinstance(script, str) and script:
        if all(isinstance(item, Mapping) and "replies" in item for item in script):
            return tuple(_turn(item, f"{source}: turn {n}") for n, item in enumerate(script, 1))
        return (_turn({"replies": script}, source),)
    raise ScriptError(f"{source}: a script is a non-empty list of turns or of replies")


def _turn(item: Mapping[str, Any], where: str) -> _Turn:
    unknown = set(item) - {"when", "replies"}
    if unknown:
        raise ScriptError(f"{where}: unknown key {sorted(unknown)[0]!r} (a turn has when, replies)")
    when = item.get("when")
    if when is not None and (not isinstance(when, str) or not when):
        raise ScriptError(f"{where}: 'when' is text the user's message contains")
    replies = item["replies"]
    if not isinstance(replies, Sequence) or isinstance(replies, str) or not replies:
        raise ScriptError(f"{where}: 'replies' is a non-empty list")
    return _Turn(when, tuple(_reply(r, f"{where}, reply {n}") for n, r in enumerate(replies, 1)))


def _reply(value: Any, where: str) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply.text(value)
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: a reply is text or an object, not {type(value).__name__}")
    if "tool_calls" in value:
        _only(value, {"tool_calls", "content"}, where)
        calls = value["tool_calls"]
        if not isinstance(calls, Sequence) or isinstance(calls, str) or not calls:
            raise ScriptError(f"{where}: 'tool_calls' is a non-empty list")
        content = value.get("content", "")
        if not isinstance(content, str):
            raise ScriptError(f"{where}: 'content' is text")
        return Reply.tool_calls(*(_call(c, where) for c in calls), content=content)
    if "text" in value:
        _only(value, {"text", "reasoning"}, where)
        text, reasoning = value["text"], value.get("reasoning")
        if not isinstance(text, str) or not isinstance(reasoning, str | None):
            raise ScriptError(f"{where}: 'text' and 'reasoning' are text")
        return Reply.text(text, reasoning=reasoning)
    raise ScriptError(f"{where}: a reply object has 'text' or 'tool_calls'")


def _call(value: Any, where: str) -> tuple[str, Any] | tuple[str, Any, str]:
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ScriptError(f"{where}: each tool call is an object with a 'name'")
    _only(value, {"name", "arguments", "id"}, where)
    arguments = value.get("arguments", {})
    if not isinstance(arguments, Mapping | str):
        raise ScriptError(f"{where}: a call's 'arguments' is an object (or JSON text)")
    call_id = value.get("id")
    if call_id is None:
        return (value["name"], dict(arguments) if isinstance(arguments, Mapping) else arguments)
    if not isinstance(call_id, str) or not call_id:
        raise ScriptError(f"{where}: a call's 'id' is text")
    return (
        value["name"],
        dict(arguments) if isinstance(arguments, Mapping) else arguments,
        call_id,
    )


def _only(value: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(value) - allowed
    if unknown:
        raise ScriptError(
            f"{where}: unknown key {sorted(unknown)[0]!r} (expected {', '.join(sorted(allowed))})"
        )


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
