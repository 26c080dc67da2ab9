"""What a run needs that does not change between runs (:class:`LoopSettings`), derived once
per agent: the tools by name, the request fields every round shares, the limits, the output
mode and the provider's quirks."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ._errors import ConfigurationError
from ._providers import Provider
from ._records import RunLimits

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._tool import Tool

__all__ = ["FINAL_RESULT_TOOL", "LoopSettings", "OutputMode"]

OutputMode: TypeAlias = Literal["text", "json_schema", "tool"]
"""How the final answer is obtained: plain text, ``response_format`` JSON Schema, or a
final-answer tool named :data:`FINAL_RESULT_TOOL`."""

FINAL_RESULT_TOOL = "final_result"
"""Name of the final-answer tool offered when structured output cannot use JSON Schema."""


class LoopSettings:
    """Everything a run needs that does not change between runs, derived once per agent.

    Building this derives each tool's wire definition once; every round then sends the same
    ``tools`` list object. ``params`` are wire fields sent on every request (``temperature``,
    ``tool_choice``, ``extra_body``...).

    Limits (``None`` switches a limit off where noted):
        max_turns: model calls per run, then :class:`~agentkit.MaxTurnsExceededError`.
        max_tool_calls: tool calls per run (``None``: no cap). Calls past the cap are not run
            and the model is told to answer; a model that still asks for more ends the run
            with :class:`~agentkit.ToolCallLimitExceededError`.
        max_tool_output_chars: longest tool message sent to the model (``None``: no cap);
            longer output is cut, with a note saying so.
        max_repeated_calls: how many rounds in a row the model is told that it repeated a
            call (same tool, same arguments, previous result stands, the call is not run
            again); the next repeat ends the run with :class:`~agentkit.RepeatedToolCallError`.
        max_tool_failures: consecutive rounds in which every call of one tool failed
            (exception, timeout, invalid arguments, refused approval) before the run ends
            with :class:`~agentkit.ToolFailureLimitExceededError`. Parallel calls of one tool in
            one round count once, so they never use up each other's budget.
        max_output_retries: how many invalid structured answers are fed back for correction
            before :class:`~agentkit.OutputValidationError`.
        on_truncated: ``"raise"`` (default) turns ``finish_reason == "length"`` into
            :class:`~agentkit.OutputTruncatedError`; ``"return"`` accepts the partial text as
            the answer, with ``RunResult.truncated`` set.
        tool_timeout: seconds a tool may run (a tool's own ``timeout`` wins; ``None``: none).

    ``agent`` is the name of the agent these settings are for (``RunResult.agent``).
    ``handoffs`` maps each ``transfer_to_<name>`` tool of an agent with handoffs to the
    target's name and the tool's description; with ``sign`` (an agent of a handoff
    graph) the agent's name is written on each of its assistant messages.
    ``max_handoffs`` bounds the handoffs of one run (see ``RunLimits``).

    ``provider`` is the profile whose quirks the run consults (which requests must be
    streamed, what a refusal of streaming looks like); ``stream_required`` is its answer
    for this agent's requests (Qwen's thinking mode answers only streamed requests).
    """

    __slots__ = (
        "_base_request",
        "agent",
        "handoffs",
        "max_handoffs",
        "max_output_retries",
        "max_repeated_calls",
        "max_tool_calls",
        "max_tool_failures",
        "max_tool_output_chars",
        "max_turns",
        "model",
        "needs_deps",
        "on_truncated",
        "output_mode",
        "output_type",
        "provider",
        "run_timeout",
        "sign",
        "stream_required",
        "tool_timeout",
        "tools",
    )

    def __init__(
        self,
        model: str,
        tools: Sequence[Tool[..., Any]] = (),
        *,
        params: Mapping[str, Any] | None = None,
        max_turns: int = RunLimits.max_turns,
        max_tool_calls: int | None = RunLimits.max_tool_calls,
        max_tool_output_chars: int | None = RunLimits.max_tool_output_chars,
        max_repeated_calls: int = RunLimits.max_repeated_calls,
        max_tool_failures: int = RunLimits.max_tool_failures,
        output_type: type[BaseModel] | None = None,
        output_mode: OutputMode = "text",
        max_output_retries: int = RunLimits.max_output_retries,
        on_truncated: Literal["raise", "return"] = "raise",
        tool_timeout: float | None = RunLimits.tool_timeout,
        run_timeout: float | None = RunLimits.run_timeout,
        max_handoffs: int = RunLimits.max_handoffs,
        provider: Provider | None = None,
        agent: str | None = None,
        handoffs: Mapping[str, tuple[str, str]] | None = None,
        sign: bool = False,
    ) -> None:
        # the limits' defaults and checks are RunLimits' (written once, in _records.py)
        RunLimits(
            max_turns=max_turns,
            max_tool_calls=max_tool_calls,
            tool_timeout=tool_timeout,
            max_tool_output_chars=max_tool_output_chars,
            max_repeated_calls=max_repeated_calls,
            max_tool_failures=max_tool_failures,
            max_output_retries=max_output_retries,
            run_timeout=run_timeout,
            max_handoffs=max_handoffs,
        )
        if on_truncated not in ("raise", "return"):
            raise ConfigurationError('on_truncated must be "raise" or "return"')
        if output_type is None:
            output_mode = "text"
        elif output_mode == "text":
            raise ConfigurationError("an output_type needs output_mode 'json_schema' or 'tool'")

        self.model = model
        self.tools: dict[str, Tool[..., Any]] = {}
        for tool_ in tools:
            if tool_.name in self.tools:
                raise ConfigurationError(f"two tools are named {tool_.name!r}")
            if output_mode == "tool" and tool_.name == FINAL_RESULT_TOOL:
                raise ConfigurationError(f"the tool name {FINAL_RESULT_TOOL!r} is reserved")
            self.tools[tool_.name] = tool_
        definitions = [tool_.to_openai() for tool_ in self.tools.values()]
        self.handoffs: Mapping[str, tuple[str, str]] = handoffs or {}
        for name, (_, description) in self.handoffs.items():
            if name in self.tools:
                raise ConfigurationError(
                    f"the tool {name!r} has the name of a handoff's transfer tool; rename it"
                )
            definitions.append(_transfer_definition(name, description))
        # Tools declaring RunContext[T] with a T that cannot be None: a run without
        # deps is refused before its first request, not by the tool's AttributeError.
        self.needs_deps = tuple(name for name, tool_ in self.tools.items() if _needs_deps(tool_))

        request: dict[str, Any] = {"model": model, **(params or {})}
        if output_type is not None and output_mode == "tool":
            definitions.append(_final_result_definition(output_type))
        elif output_type is not None:
            request["response_format"] = _response_format(output_type)
        if definitions:
            request["tools"] = definitions
        self._base_request = request

        self.max_turns = max_turns
        self.max_tool_calls = max_tool_calls
        self.max_tool_output_chars = max_tool_output_chars
        self.max_repeated_calls = max_repeated_calls
        self.max_tool_failures = max_tool_failures
        self.output_type = output_type
        self.output_mode: OutputMode = output_mode
        self.max_output_retries = max_output_retries
        self.on_truncated = on_truncated
        self.tool_timeout = tool_timeout
        self.run_timeout = run_timeout
        self.max_handoffs = max_handoffs
        self.agent = agent
        self.sign = sign
        self.provider = provider if provider is not None else Provider("custom", "")
        self.stream_required = self.provider.requires_stream(request)

    @property
    def base_request(self) -> Mapping[str, Any]:
        """The request fields every round shares (model, params, tools, response_format)."""
        return self._base_request


def _needs_deps(tool_: Tool[..., Any]) -> bool:
    """Whether ``tool_`` declares ``RunContext[T]`` with a ``T`` that excludes ``None``."""
    name = getattr(tool_, "context_param", None)
    function = getattr(tool_, "function", None)
    if name is None or function is None:
        return False
    try:
        annotation = typing.get_type_hints(function, include_extras=False).get(name)
    except Exception:  # an annotation that does not resolve here: the tool decides
        return False
    arguments = typing.get_args(annotation)
    if not arguments:
        return False
    deps_type = arguments[0]
    if deps_type in (Any, object, type(None), None) or isinstance(deps_type, typing.TypeVar):
        return False
    members = typing.get_args(deps_type)
    return not (members and type(None) in members)


def _transfer_definition(name: str, description: str) -> dict[str, Any]:
    """A ``transfer_to_<name>`` tool: no parameters, a short description (it is sent with
    every request of the agent that may hand off)."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {}},
        },
    }


def _final_result_definition(output_type: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": FINAL_RESULT_TOOL,
            "description": (
                "Give the final answer. Call this once, when you have the answer; its "
                "arguments are the answer."
            ),
            "parameters": output_type.model_json_schema(),
        },
    }


def _response_format(output_type: type[BaseModel]) -> dict[str, Any]:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", output_type.__name__)[:64] or "output"
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": output_type.model_json_schema()},
    }
