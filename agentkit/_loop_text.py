"""The text the model is told about tool calls (failures, refusals, unknown tools, a cut
output, an invalid answer) and the cleaning of text before it is sent again."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import ToolRetry

if TYPE_CHECKING:
    from ._tool import Tool

__all__ = [
    "IN_DOUBT_TIMEOUT",
    "cap",
    "clean_data",
    "clean_text",
    "describe_invalid",
    "error_text",
    "refusal_text",
    "strip_code_fence",
    "unknown_tool_text",
]


_SURROGATE = re.compile("[\ud800-\udfff]")


IN_DOUBT_TIMEOUT = (
    "its outcome is unknown. Do not assume it succeeded or failed, and do not call it again "
    "on your own: tell the user, who can check."
)
"""Told after "tool X timed out after N s and may still take effect": a side-effect call's
thread cannot be stopped."""


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate (``os.fsdecode`` of a name that is not UTF-8, a
    ``\\udcff`` escape in JSON) replaced by U+FFFD, so it can be encoded and sent again."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def clean_data(value: Any) -> Any:
    """A wire message (dicts, lists, strings) with :func:`clean_text` applied to every
    string, keys included; ``value`` itself when nothing needed a change."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        pairs = [(clean_data(key), clean_data(item)) for key, item in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list):
        items = [clean_data(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def cap(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[output cut: showing the first {limit} of {len(text)} characters]"


def error_text(name: str, error: BaseException | None) -> str:
    if isinstance(error, ToolRetry):
        return str(error)
    if error is None:
        return f"tool {name} failed"
    detail = str(error)
    kind = type(error).__name__
    return f"tool {name} failed: {kind}: {detail}" if detail else f"tool {name} failed: {kind}"


def refusal_text(name: str, reason: str | None) -> str:
    why = "the user did not approve it"
    if reason:
        why = f"the user did not approve it: {cap(reason, 1000)}"
    return (
        f"The call to {name} was refused: {why}. It was not run. Do not call it again "
        "unless the user asks you to."
    )


def unknown_tool_text(
    name: str, tools: Mapping[str, Tool[..., Any]], transfers: Mapping[str, object] = {}
) -> str:
    shown = name if len(name) <= 100 else name[:100] + "..."
    available = ", ".join([*tools, *transfers]) or "none"
    return f"Unknown tool {shown!r}. Available tools: {available}."


def describe_invalid(error: ValueError) -> str:
    """A pydantic validation error as one line per bad field, for the model to fix."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return _first_line(str(error))
    lines = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(the answer)"
        lines.append(f"- {location}: {item['msg']}")
    return "\n".join(lines) or _first_line(str(error))


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def strip_code_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown fence; the JSON inside is the answer."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        newline = inner.find("\n")
        return inner[newline + 1 :] if newline != -1 else inner
    return stripped
