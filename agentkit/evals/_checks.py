"""What a finished conversation is checked with: tool calls, the output, the final state of
the bot's data, an LLM judge.

A check is any callable taking the finished :class:`Conversation` and returning a truthy
value (or an awaitable of one); the helpers here build the common ones with readable names.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Check",
    "CheckResult",
    "Conversation",
    "called",
    "judge",
    "not_called",
    "output_matches",
    "output_schema",
]


@dataclass(slots=True)
class Conversation:
    """A finished conversation, as checks see it.

    Attributes:
        messages: the bot's whole transcript (wire-format dicts, the system message first).
        output: the bot's last answer (``None`` when the run failed).
        deps: the dependencies the agent factory returned: the bot's data after the
            conversation, for a final-state check.
        error: the error that ended the conversation early (``"TypeName: message"``), or
            ``None``.
    """

    messages: list[dict[str, Any]]
    output: Any = None
    deps: Any = None
    error: str | None = None

    @property
    def tool_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every tool call the bot made, in order: ``(name, arguments)``; arguments that
        are not a JSON object read as ``{}``."""
        calls: list[tuple[str, dict[str, Any]]] = []
        for message in self.messages:
            if message.get("role") != "assistant":
                continue
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                calls.append(
                    (str(function.get("name")), arguments if isinstance(arguments, dict) else {})
                )
        return calls

    @property
    def text(self) -> str:
        """The last answer as text (a structured answer as JSON)."""
        output = self.output
        if output is None:
            return ""
        if isinstance(output, str):
            return output
        dump = getattr(output, "model_dump_json", None)
        return str(dump()) if callable(dump) else json.dumps(output, default=str)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict on one conversation: ``name``, ``passed`` and why (``detail``)."""

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


Check = Callable[[Conversation], "object | Awaitable[object]"]
"""A check: called with the finished :class:`Conversation`; a truthy result passes. It may
be async, and may return a :class:`CheckResult` to say why."""


@dataclass(frozen=True, slots=True)
class ToolCheck:
    """``called``/``not_called``: whether the bot called ``tool`` with ``arguments``."""

    tool: str
    arguments: Mapping[str, Any]
    expect: bool

    @property
    def name(self) -> str:
        """The check as written: ``called('issue_refund', order_id=1042)``."""
        shown = "".join(f", {key}={value!r}" for key, value in self.arguments.items())
        return f"{'called' if self.expect else 'not_called'}({self.tool!r}{shown})"

    def __call__(self, conversation: Conversation) -> CheckResult:
        matches = [
            args
            for name, args in conversation.tool_calls
            if name == self.tool and _matches(args, self.arguments)
        ]
        if self.expect:
            seen = ", ".join(_shown(name, args) for name, args in conversation.tool_calls)
            detail = "" if matches else f"tool calls made: {seen or 'none'}"
            return CheckResult(self.name, bool(matches), detail)
        detail = f"called with {matches[0]}" if matches else ""
        return CheckResult(self.name, not matches, detail)


def _shown(name: str, arguments: Mapping[str, Any]) -> str:
    return f"{name}({', '.join(f'{key}={value!r}' for key, value in arguments.items())})"


def _matches(arguments: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(key in arguments and arguments[key] == value for key, value in expected.items())


def called(tool: str, /, **arguments: Any) -> ToolCheck:
    """Passes when the bot called ``tool`` at least once with (at least) these arguments.

    ``called("issue_refund", order_id=1042)`` matches a call whose JSON arguments have
    ``order_id`` equal to 1042, whatever else they hold. A suite naming a tool its agent
    does not have is refused before any request.
    """
    return ToolCheck(tool, dict(arguments), True)


def not_called(tool: str, /, **arguments: Any) -> ToolCheck:
    """Passes when the bot never called ``tool`` (with these arguments, when given)."""
    return ToolCheck(tool, dict(arguments), False)


@dataclass(frozen=True, slots=True)
class _OutputMatches:
    pattern: re.Pattern[str]

    @property
    def name(self) -> str:
        return f"output_matches({self.pattern.pattern!r})"

    def __call__(self, conversation: Conversation) -> CheckResult:
        found = self.pattern.search(conversation.text) is not None
        return CheckResult(self.name, found, "" if found else f"output: {conversation.text!r}")


def output_matches(pattern: str, flags: int = 0) -> Check:
    """Passes when the last answer contains a match of the regular expression ``pattern``."""
    return _OutputMatches(re.compile(pattern, flags))


@dataclass(frozen=True, slots=True)
class _OutputSchema:
    schema: Mapping[str, Any]
    name: str = field(default="output_schema")

    def __call__(self, conversation: Conversation) -> CheckResult:
        import jsonschema

        try:
            value = json.loads(conversation.text)
            jsonschema.validate(value, dict(self.schema))
        except ValueError as exc:
            return CheckResult(self.name, False, f"not JSON: {exc}")
        except jsonschema.ValidationError as exc:
            return CheckResult(self.name, False, exc.message)
        return CheckResult(self.name, True)


def output_schema(schema: Mapping[str, Any] | type[Any]) -> Check:
    """Passes when the last answer is JSON valid under ``schema`` (a JSON Schema dict, or a
    pydantic model class, whose JSON Schema is used)."""
    if isinstance(schema, type):
        schema = schema.model_json_schema()
    if not isinstance(schema, Mapping):
        raise TypeError("output_schema takes a JSON Schema dict or a pydantic model class")
    return _OutputSchema(dict(schema))


@dataclass(frozen=True, slots=True)
class Judge:
    """``judge(rubric)``: an LLM reads the transcript and gives a structured verdict.

    The judge's agent comes from ``agent`` or else from the suite's ``judge=`` factory; the
    conversation runner calls :meth:`verdict` (a check that needs an agent cannot be a plain
    callable).
    """

    rubric: str
    agent: Callable[..., Any] | None = None

    @property
    def name(self) -> str:
        """The check as written: ``judge('...')``."""
        return f"judge({self.rubric!r})"

    def prompt(self, conversation: Conversation) -> str:
        """What the judge is asked: the rubric and the transcript as plain lines."""
        return (
            "Judge the support conversation below against the rubric. Answer with JSON only: "
            '{"passed": true or false, "reason": "one sentence saying why"}.\n\n'
            f"Rubric: {self.rubric}\n\n"
            f"Conversation:\n{transcript_text(conversation.messages)}"
        )


def judge(rubric: str, *, agent: Callable[..., Any] | None = None) -> Judge:
    """An LLM judge: passes when the judge model, given ``rubric`` and the transcript,
    answers ``{"passed": true, "reason": "..."}``; the reason is kept in the report.

    ``agent`` is a factory of the judge's ``Agent`` (default: the suite's ``judge=``).
    """
    if not isinstance(rubric, str) or not rubric.strip():
        raise TypeError("judge() takes the rubric as a non-empty string")
    return Judge(rubric, agent)


def transcript_text(messages: list[dict[str, Any]]) -> str:
    """A transcript as lines a person (or a judge) reads: roles, text and tool calls."""
    lines: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            lines.append(f"{role}: {content}")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            lines.append(f"{role} calls {function.get('name')}({function.get('arguments')})")
    return "\n".join(lines)


def check_name(check: object, index: int) -> str:
    """The name a check is reported under."""
    name = getattr(check, "name", None)
    if isinstance(name, str):
        return name
    fn_name = getattr(check, "__name__", None)
    if isinstance(fn_name, str) and fn_name != "<lambda>":
        return fn_name
    return f"check {index + 1}"


async def evaluate(check: Check, index: int, conversation: Conversation) -> CheckResult:
    """Run one plain check; an exception fails it with its message, never the suite."""
    name = check_name(check, index)
    try:
        value = check(conversation)
        if inspect.isawaitable(value):
            value = await value
    except (Exception, SystemExit) as exc:  # sys.exit(0) in a check must not pass the gate
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")
    if isinstance(value, CheckResult):
        return value
    return CheckResult(name, bool(value), "" if value else f"returned {value!r}")
