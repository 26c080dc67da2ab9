"""The bytes of the tool definitions every request carries, over the repo's tool corpus.

Each framework turns the corpus functions (``tests/test_tool_corpus.py``) into the
Chat Completions ``tools`` entries it sends, in its default mode and in strict mode; the
entries are written as compact UTF-8 JSON (what agentkit sends; the same writer for
everyone, so that only the content differs). Totals are taken over the functions every
measured framework accepts, so that a framework is not rewarded for refusing a hard one.

- agentkit: ``tool(fn).to_openai()``.
- openai-agents: ``function_tool(fn)`` (strict by default), its Chat Completions converter.
- pydantic-ai: ``Tool(fn)``, passed through its OpenAI model's request customisation and
  tool mapping (which makes a compatible schema strict, or applies the strict transform).

A peer that is not installed is skipped with a note.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .contenders import Skip, _require

Definition = dict[str, Any]
Maker = Callable[[Callable[..., Any], str, bool], Definition]


def corpus() -> dict[str, tuple[Callable[..., Any], str]]:
    """The corpus functions by entry id: (the function, the tool name agentkit gave it).

    Entries whose function takes agentkit's ``RunContext`` are left out: the peers have
    their own context types and would describe it as a parameter.
    """
    tests = str(Path(__file__).resolve().parent.parent)
    if tests not in sys.path:
        sys.path.insert(0, tests)  # the corpus imports its sibling test modules by name
    import test_tool_corpus

    return {
        entry_id: (e.tool.function, e.tool.name)
        for entry_id, e in test_tool_corpus.CORPUS.items()
        if e.tool.context_param is None
    }


def size(definition: Definition) -> int:
    """The bytes of one ``tools`` entry as compact UTF-8 JSON."""
    return len(json.dumps(definition, ensure_ascii=False, separators=(",", ":")).encode())


def _agentkit(function: Callable[..., Any], name: str, strict: bool) -> Definition:
    from agentkit import tool

    return tool(function, name=name, strict=strict).to_openai()


def _openai_agents(function: Callable[..., Any], name: str, strict: bool) -> Definition:
    _require("agents", "openai-agents")
    from agents import function_tool
    from agents.models.chatcmpl_converter import Converter

    made = function_tool(function, name_override=name, strict_mode=strict)
    return dict(Converter.tool_to_openai(made))


def _pydantic_ai(function: Callable[..., Any], name: str, strict: bool) -> Definition:
    _require("pydantic_ai", "pydantic-ai-slim[openai]")
    from pydantic_ai import Tool
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    made = Tool(function, name=name, strict=True if strict else None)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(api_key="unused"))
    parameters = model.customize_request_parameters(
        ModelRequestParameters(function_tools=[made.tool_def])
    )
    (definition,) = parameters.function_tools
    return dict(model._map_tool_definition(definition, {}))


FRAMEWORKS: tuple[tuple[str, Maker], ...] = (
    ("agentkit", _agentkit),
    ("openai-agents", _openai_agents),
    ("pydantic-ai", _pydantic_ai),
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def measure(strict: bool) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Per framework, the bytes of each corpus entry it accepts; and the skipped frameworks.

    A framework that refuses an entry (or cannot express it in strict mode) has no size
    for it.
    """
    functions = corpus()
    sizes: dict[str, dict[str, int]] = {}
    skipped: dict[str, str] = {}
    for label, make in FRAMEWORKS:
        own: dict[str, int] = {}
        try:
            for entry_id, (function, name) in functions.items():
                try:
                    with _quiet():
                        own[entry_id] = size(make(function, name, strict))
                except Skip:
                    raise
                except Exception:
                    continue  # this framework cannot make a tool of this function
        except Skip as reason:
            skipped[label] = str(reason)
            continue
        sizes[label] = own
    return sizes, skipped


def common(sizes: dict[str, dict[str, int]]) -> list[str]:
    """The entries every measured framework accepted, in corpus order."""
    if not sizes:
        return []
    first, *rest = sizes.values()
    return [entry_id for entry_id in first if all(entry_id in other for other in rest)]


def schedule(when: dt.datetime, day: dt.date | None = None) -> str:
    """Schedule a meeting.

    Args:
        when: When it starts.
        day: The day to keep free, if another.
    """
    return f"{when} {day}"


def schedule_sizes(strict: bool) -> dict[str, int]:
    """The bytes of ``schedule``'s definition per installed framework (the issue's example)."""
    out: dict[str, int] = {}
    for label, make in FRAMEWORKS:
        try:
            with _quiet():
                out[label] = size(make(schedule, "schedule", strict))
        except Exception:
            continue
    return out
