"""The agent run as a state machine with no I/O: what to send, what to run, what to append.

A driver (``_agent.py``) performs; this core decides. One run goes::

    loop = RunLoop(settings, messages)
    while True:
        request = loop.next_request()          # raises MaxTurnsExceededError when spent
        completion = client.create(**request)  # the driver's I/O
        step = loop.on_response(completion)
        if isinstance(step, Finished):
            return step.result
        outcomes = [...run step.calls...]      # the driver's I/O (threads, tasks)
        loop.on_tool_outcomes(outcomes)

The core never blocks, never awaits and never reads a clock, so the sync and async drivers
share every decision and it is tested without sockets. Its transcript (``messages``) is a
list of plain wire-format dicts that is valid to send again after any step: every assistant
turn with tool calls is followed by exactly one ``role: tool`` message per call, also when a
call failed, was refused or the run was interrupted (see :meth:`RunLoop.interrupt`).
"""

from __future__ import annotations

import contextlib
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ._errors import (
    AgentKitError,
    ConfigurationError,
    InvalidResponseError,
    MaxTurnsExceededError,
    OutputTruncatedError,
    OutputValidationError,
    RepeatedToolCallError,
    ToolArgumentsError,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
    ToolRetry,
)
from ._events import (
    ModelRoundFinished,
    ReasoningDelta,
    StreamDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolResult,
)
from ._providers import Provider
from ._records import RunLimits, check_count
from ._result import PendingCall, RunResult
from ._store import argument_digest
from ._tool import render_tool_output
from ._wire import ChatCompletion, ToolCall, Usage, message_to_dict

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._context import Principal, RunContext
    from ._observe import RunObserver
    from ._tool import Tool

__all__ = [
    "FINAL_RESULT_TOOL",
    "Finished",
    "LoopSettings",
    "OutputMode",
    "PlannedCall",
    "RunLoop",
    "RunTools",
    "Step",
    "ToolOutcome",
    "clean_data",
    "clean_text",
    "completion_deltas",
    "render_tool_output",
]

OutputMode: TypeAlias = Literal["text", "json_schema", "tool"]
"""How the final answer is obtained: plain text, ``response_format`` JSON Schema, or a
final-answer tool named :data:`FINAL_RESULT_TOOL`."""

FINAL_RESULT_TOOL = "final_result"
"""Name of the final-answer tool offered when structured output cannot use JSON Schema."""

_CallKind = Literal[
    "run", "unknown_tool", "invalid_arguments", "repeated", "limit", "output", "settled"
]

# Calls that were not run for these reasons count against the tool's consecutive-failure
# bound; a repeated call and the per-run cap have bounds of their own.
_FAILURE_KINDS = frozenset({"unknown_tool", "invalid_arguments"})


# --- settings, derived once per agent ------------------------------------------------------


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

    ``provider`` is the profile whose quirks the run consults (which requests must be
    streamed, what a refusal of streaming looks like); ``stream_required`` is its answer
    for this agent's requests (Qwen's thinking mode answers only streamed requests).
    """

    __slots__ = (
        "_base_request",
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
        provider: Provider | None = None,
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


# --- what the core hands the driver -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One tool call of the current round, checked and ready for the driver.

    ``ready`` is set when the call must not run: the message for the model is already
    decided (unknown tool, arguments that are not JSON or do not validate, a repeated call,
    the per-run cap, an invalid final result). Otherwise ``tool`` and ``kwargs`` (validated,
    coerced) are set and the driver runs :meth:`invoke` — after asking for approval when
    :attr:`needs_approval` is true.

    Attributes:
        index: position of the call in the assistant message.
        call_id: the model's ``tool_call_id``.
        name: the tool name the model asked for (untrusted text).
        arguments: the raw argument JSON the model wrote.
        tool: the tool, or ``None`` for an unknown name.
        kwargs: the validated keyword arguments, or ``None`` when not run.
        context: the :class:`~agentkit.RunContext` passed to tools that declare one.
        ready: the model-facing message for a call that is not run, else ``None``.
        kind: why: ``"run"``, ``"unknown_tool"``, ``"invalid_arguments"``, ``"repeated"``,
            ``"limit"`` or ``"output"``.
        timeout: seconds the call may run, or ``None``.
        approved: a person already approved this call (a resumed pause): it runs without
            asking the approver again.
    """

    index: int
    call_id: str
    name: str
    arguments: str
    tool: Tool[..., Any] | None = None
    kwargs: dict[str, Any] | None = None
    context: RunContext[Any] | None = None
    ready: str | None = None
    kind: _CallKind = "run"
    timeout: float | None = None
    _key: str = field(default="", repr=False, compare=False)
    approved: bool = False

    @property
    def runs(self) -> bool:
        """Whether the driver should run this call (after approval, if needed)."""
        return self.ready is None

    @property
    def needs_approval(self) -> bool:
        """Whether the tool is marked ``requires_approval``: ask before running it."""
        return (
            self.ready is None
            and not self.approved
            and self.tool is not None
            and self.tool.requires_approval
        )

    @property
    def side_effects(self) -> bool:
        """Whether the call is written ahead on a session (its tool has side effects)."""
        return self.ready is None and self.tool is not None and self.tool.side_effects

    def pending(self) -> PendingCall:
        """The call as a :class:`~agentkit.PendingCall` (what a person reviews)."""
        return PendingCall(
            self.call_id,
            self.name,
            self.arguments,
            dict(self.kwargs or {}),
            argument_digest(self.name, self.arguments),
        )

    @property
    def is_async(self) -> bool:
        """Whether :meth:`invoke` returns an awaitable."""
        return self.tool is not None and self.tool.is_async

    def invoke(self) -> Any:
        """Call the tool with the validated arguments (an awaitable for async tools)."""
        if self.tool is None or self.kwargs is None:
            raise RuntimeError(f"tool call {self.call_id!r} is not to be run")
        return self.tool.call(self.kwargs, context=self.context)


OutcomeStatus: TypeAlias = Literal["ok", "error", "timeout", "refused", "not_run", "cancelled"]


@dataclass(slots=True)
class ToolOutcome:
    """How one planned call ended, as the driver observed it.

    Build with the class methods; the core turns it into text with
    :meth:`RunLoop.settle`. ``duration`` is in seconds.
    """

    call: PlannedCall
    status: OutcomeStatus
    text: str | None = None
    error: BaseException | None = None
    duration: float = 0.0
    timeout: float | None = None
    reason: str | None = None
    _result: ToolResult | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)

    @classmethod
    def ok(cls, call: PlannedCall, value: Any, duration: float = 0.0) -> ToolOutcome:
        """The tool returned ``value``, rendered to text here (call it where the tool ran,
        inside its time budget): a value that cannot be rendered is a failed call."""
        text, problem = render_tool_output(call.name, value)
        if problem is not None:
            return cls(call, "error", text=text, duration=duration)
        return cls(call, "ok", text=text, duration=duration)

    @classmethod
    def failed(cls, call: PlannedCall, error: BaseException, duration: float = 0.0) -> ToolOutcome:
        """The tool raised ``error`` (including :class:`~agentkit.ToolRetry`)."""
        return cls(call, "error", error=error, duration=duration)

    @classmethod
    def timed_out(cls, call: PlannedCall, timeout: float) -> ToolOutcome:
        """The tool ran past ``timeout`` seconds and its result is abandoned."""
        return cls(call, "timeout", duration=timeout, timeout=timeout)

    @classmethod
    def refused(cls, call: PlannedCall, reason: str | None = None) -> ToolOutcome:
        """Approval was refused (``reason``: the person's words, if any): not run."""
        return cls(call, "refused", reason=reason)

    @classmethod
    def not_run(cls, call: PlannedCall) -> ToolOutcome:
        """A call the core already answered (``call.ready``)."""
        return cls(call, "not_run")

    @classmethod
    def cancelled(cls, call: PlannedCall) -> ToolOutcome:
        """The run was cancelled before this call finished."""
        return cls(call, "cancelled")


@dataclass(frozen=True, slots=True)
class RunTools:
    """Step: run ``calls`` (possibly none), then hand the outcomes to ``on_tool_outcomes``.

    An empty ``calls`` means the core fed a correction back to the model (an invalid
    structured answer) and the driver simply goes on to the next request.
    """

    calls: list[PlannedCall]
    round: ModelRoundFinished


@dataclass(frozen=True, slots=True)
class Finished:
    """Step: the run is over; ``result`` is the :class:`~agentkit.RunResult`."""

    result: RunResult[Any]
    round: ModelRoundFinished


Step: TypeAlias = RunTools | Finished
"""What :meth:`RunLoop.on_response` decides."""


# --- the state machine ------------------------------------------------------------------

_State = Literal["request", "response", "outcomes", "done"]


class RunLoop:
    """One agent run, as a state machine: ``next_request`` → ``on_response`` →
    (``on_tool_outcomes`` → ``next_request`` …) → ``Finished``.

    ``messages`` is adopted as the transcript and appended to in place (pass a copy if the
    caller's list must stay as it was). ``deps`` is handed to tools as ``RunContext.deps``.
    ``tools_with_stream`` says whether the provider accepts tools on a streamed request
    (what the agent learnt from earlier runs). A round whose ``requires_approval`` calls
    wait for a person ends in :meth:`pause`; :meth:`resumed` picks such a round up again.
    Misuse of the sequence raises ``RuntimeError``: that is a driver bug, not model input.
    """

    __slots__ = (
        "_calls_made",
        "_failures",
        "_limit_told",
        "_max_turns",
        "_output_retries",
        "_round",
        "_settled",
        "_state",
        "_streaks",
        "_usage",
        "call_key",
        "deps",
        "journal",
        "messages",
        "observer",
        "principal",
        "session",
        "settings",
        "tools_with_stream",
        "turns",
    )

    def __init__(
        self,
        settings: LoopSettings,
        messages: list[dict[str, Any]],
        *,
        deps: Any = None,
        max_turns: int | None = None,
        tools_with_stream: bool = True,
        principal: Principal | None = None,
    ) -> None:
        if max_turns is not None:
            check_count("max_turns", max_turns)
        if deps is None and settings.needs_deps:
            raise ConfigurationError(
                f"the tools {list(settings.needs_deps)} declare a RunContext[T] whose T is not "
                "optional, and this run has none: pass it, e.g. agent.run(prompt, deps=...)"
            )
        self.settings = settings
        self.messages = messages
        self.deps = deps
        self.principal = principal
        # the run's observer (tracing, progress), set by the driver; None: unobserved
        self.observer: RunObserver | None = None
        self.turns = 0
        self.tools_with_stream = tools_with_stream
        self._max_turns = settings.max_turns if max_turns is None else max_turns
        self._state: _State = "request"
        self._round: list[PlannedCall] = []  # the open round's calls
        self._settled: dict[int, ToolOutcome] = {}  # how they ended, by index, so far
        self._usage = Usage()
        self._calls_made = 0
        self._limit_told = False
        self._output_retries = 0
        self._failures: dict[str, int] = {}
        # tool name -> {its arguments as the model wrote them: rounds in a row the call ran
        # (or was told it repeats)}; only the previous round's calls are kept
        self._streaks: dict[str, dict[str, int]] = {}
        # Set by a session run: the idempotency key of a call, from the index of its
        # assistant message in ``messages`` and its id; and the object told of each step.
        self.call_key: Callable[[int, str], str] | None = None
        self.journal: Any = None
        self.session: str | None = None

    # -- reading the run ----------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Tokens used by the run's model calls so far."""
        return self._usage

    @property
    def done(self) -> bool:
        """Whether the run has finished or was interrupted."""
        return self._state == "done"

    # -- the steps ------------------------------------------------------------------------

    def next_request(self) -> dict[str, Any]:
        """The keyword arguments for the next model call (``client.create(**request)``).

        Counts the turn. Raises :class:`~agentkit.MaxTurnsExceededError` (with the transcript)
        when ``max_turns`` model calls were already made. ``messages`` in the request is the
        live transcript: send it before calling the core again.
        """
        self._expect("request")
        if self.turns >= self._max_turns:
            self._state = "done"
            raise MaxTurnsExceededError(
                f"the run made {self.turns} model calls (max_turns={self._max_turns}) "
                "without a final answer",
                messages=self.messages,
            )
        self.turns += 1
        request = dict(self.settings.base_request)
        request["messages"] = self.messages
        if self._limit_told and self.settings.output_mode != "tool" and "tools" in request:
            request["tool_choice"] = "none"
        self._state = "response"
        return request

    def wants_stream(self, request: Mapping[str, Any]) -> bool:
        """Whether to stream this request, given what the provider accepts."""
        return self.tools_with_stream or "tools" not in request

    def stream_refused(
        self, request: Mapping[str, Any], error: BaseException, yielded_any: bool
    ) -> bool:
        """Whether a failed streamed request should be redone without streaming.

        True (and streaming with tools is off for the rest of the run) when the request had
        tools, nothing was yielded to the caller yet, and the provider's profile calls
        ``error`` a refusal of tools with streaming (:meth:`Provider.refuses_stream`).
        Whether the agent remembers it for later runs is decided once the plain request
        has succeeded: a request that fails either way proves nothing.
        """
        if yielded_any or "tools" not in request:
            return False
        refused = self.settings.provider.refuses_stream(error)
        if refused:
            self.tools_with_stream = False
        return refused

    def on_response(self, completion: ChatCompletion) -> Step:
        """Take the model's answer for the current round and decide what happens next."""
        self._expect("response")
        if not completion.choices:
            self._state = "done"
            raise InvalidResponseError("the completion has no choices", messages=self.messages)
        choice = completion.choices[0]
        message = choice.message
        usage = completion.usage
        if usage is not None:
            self._usage = self._usage + usage
        assistant = clean_data(message_to_dict(message))
        round_ = ModelRoundFinished(
            turn=self.turns,
            usage=usage if usage is not None else Usage(),
            finish_reason=choice.finish_reason,
            message=assistant,
        )
        truncated = choice.finish_reason == "length"
        if truncated and (message.tool_calls or self.settings.on_truncated == "raise"):
            self._state = "done"
            raise OutputTruncatedError(
                f"the model stopped at the token limit (finish_reason 'length') after "
                f"{len(message.content or '')} characters; raise max_tokens, or pass "
                "on_truncated='return' to accept a partial answer",
                messages=self.messages,
            )

        self.messages.append(assistant)
        if message.tool_calls:
            # A server that sends no call ids still gets a transcript it can take back:
            # one id per call, the same in the assistant turn and in its tool message.
            for index, wire_call in enumerate(assistant["tool_calls"]):
                if not wire_call["id"]:
                    wire_call["id"] = f"call_{self.turns}_{index}"
            return self._plan(message.tool_calls, round_)
        return self._final_text(assistant.get("content") or "", round_, truncated)

    def settle(self, outcome: ToolOutcome) -> ToolResult:
        """The text the model will get for ``outcome``, as a ``ToolResult`` event.

        Pure and cached on the outcome: drivers call it as each call ends (for hooks and
        events); ``on_tool_outcomes`` reuses it.
        """
        if outcome._result is not None:
            return outcome._result
        call = outcome.call
        failed = True
        error: str | None
        if outcome.status == "ok":
            text, error = outcome.text or "", None
            failed = False
        elif outcome.status == "error":
            text = error = outcome.text or _error_text(call.name, outcome.error)
        elif outcome.status == "timeout":
            text = error = f"tool {call.name} timed out after {outcome.timeout or 0:g} s"
        elif outcome.status == "refused":
            text = error = _refusal_text(call.name, outcome.reason)
        elif outcome.status == "not_run":
            text = error = call.ready or f"tool {call.name} was not run: the run stopped"
            failed = call.kind in _FAILURE_KINDS
        else:
            text = error = f"tool {call.name} was cancelled before it finished"
        result = ToolResult(
            call_id=call.call_id,
            name=call.name,
            output=_cap(clean_text(text), self.settings.max_tool_output_chars),
            error=error,
            duration=outcome.duration,
        )
        outcome._result = result
        outcome._failed = failed
        round_ = self._round
        if self._state == "outcomes" and call.index < len(round_) and round_[call.index] is call:
            self._settled[call.index] = outcome
        return result

    def on_tool_outcomes(self, outcomes: Iterable[ToolOutcome] = ()) -> None:
        """Append one ``role: tool`` message per call of the round, in call order.

        The outcomes are those given here and those already passed to :meth:`settle`, in
        any order; a call with none is recorded as cancelled. Raises
        :class:`~agentkit.ToolFailureLimitExceededError` (after appending, so the transcript
        stays whole) when a tool failed too many rounds in a row.
        """
        self._expect("outcomes")
        settled = self._close_round(outcomes)
        self._state = "request"
        self._track(settled)

    def interrupt(self, outcomes: Iterable[ToolOutcome] = ()) -> list[dict[str, Any]]:
        """End the run early (cancellation, an error) and return a resendable transcript.

        Calls of the current round get their known outcome, or a "cancelled" message.
        Safe to call in any state, more than once.
        """
        if self._state == "outcomes":
            self._close_round(outcomes)
        self._state = "done"
        return self.messages

    def fail(self, error: BaseException, outcomes: Iterable[ToolOutcome] = ()) -> BaseException:
        """Interrupt the run and attach the transcript to ``error``; returns ``error``.

        agentkit errors get ``.messages`` if they have none yet; other exceptions
        (``KeyboardInterrupt``, ``asyncio.CancelledError``, a hook's own error) get a
        ``messages`` attribute where Python allows it, so nothing the run produced is lost.
        """
        messages = self.interrupt(outcomes)
        if isinstance(error, AgentKitError):
            if error.messages is None:
                error.messages = messages
        elif getattr(error, "messages", None) is None:
            # an exception type with __slots__ cannot take the attribute
            with contextlib.suppress(AttributeError):
                error.messages = messages  # type: ignore[attr-defined]
        return error

    def pause(
        self, waiting: Sequence[PlannedCall], outcomes: Iterable[ToolOutcome] = ()
    ) -> RunResult[Any]:
        """End the run as paused: ``waiting`` calls need a person's decision.

        The other calls of the round have run; their tool messages are held back (in
        ``resume_state``) so that the round's messages stay in call order when it resumes.
        The transcript ends with the assistant message that made the calls.
        """
        self._expect("outcomes")
        by_index = self._settled
        for outcome in outcomes:
            by_index[outcome.call.index] = outcome
        waiting_ids = {call.call_id for call in waiting}
        settled: dict[str, str] = {}
        for call in self._round:
            if call.call_id in waiting_ids:
                continue
            outcome = by_index.get(call.index) or ToolOutcome.cancelled(call)
            settled[call.call_id] = self.settle(outcome).output
        self._round = []
        self._settled = {}
        self._state = "done"
        pending = tuple(call.pending() for call in waiting)
        return RunResult(
            output=None,
            messages=self.messages,
            usage=self.usage,
            turns=self.turns,
            status="paused",
            pending=pending,
            session=self.session,
            resume_state={"calls": [c.to_dict() for c in pending], "settled": settled},
        )

    def resume_round(self, plan: Mapping[str, str | None]) -> list[PlannedCall]:
        """Reopen the last round of the transcript (an assistant message whose calls have
        no tool messages yet) and plan it again: ``plan`` maps each open call's id to
        ``None`` (run it: approved, or safe to run again) or to the text its tool message
        gets (a result recorded before, a refusal, an outcome that is unknown).

        The driver runs the returned calls and hands their outcomes to
        ``on_tool_outcomes`` as for any round.
        """
        self._expect("request")
        assistant = self.messages[-1]
        calls: list[PlannedCall] = []
        context: list[RunContext[Any]] = []
        for index, wire in enumerate(assistant.get("tool_calls") or []):
            call_id, function = wire["id"], wire["function"]
            text = plan.get(call_id)
            if call_id in plan and text is None:
                tool_call = ToolCall.model_validate(wire)
                call = self._plan_call(index, call_id, tool_call, context)
                calls.append(replace(call, approved=True))
            else:
                calls.append(
                    PlannedCall(
                        index,
                        call_id,
                        function["name"],
                        function.get("arguments") or "",
                        ready=text if text is not None else "not run: the run stopped",
                        kind="settled",
                    )
                )
        self._round = calls
        self._settled = {}
        self._state = "outcomes"
        return calls

    # -- internals ------------------------------------------------------------------------

    def _expect(self, state: _State) -> None:
        if self._state != state:
            raise RuntimeError(f"RunLoop: expected the {state!r} step, not {self._state!r}")

    def _close_round(self, outcomes: Iterable[ToolOutcome]) -> list[ToolOutcome]:
        """Append the round's tool messages in call order ("cancelled" if missing)."""
        by_index = self._settled
        for outcome in outcomes:
            by_index[outcome.call.index] = outcome
        settled = []
        for call in self._round:
            outcome = by_index.get(call.index) or ToolOutcome.cancelled(call)
            self._append_tool_message(call.call_id, call.name, self.settle(outcome).output)
            settled.append(outcome)
        self._round = []
        self._settled = {}
        return settled

    def _append_tool_message(self, call_id: str, name: str, content: str) -> None:
        self.messages.append(
            {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}
        )

    def _plan(self, tool_calls: list[ToolCall], round_: ModelRoundFinished) -> Step:
        settings = self.settings
        calls: list[PlannedCall] = []
        context: list[RunContext[Any]] = []  # built once per round, only if a tool wants it
        output_problem: str | None = None
        call_ids = [wire_call["id"] for wire_call in self.messages[-1]["tool_calls"]]
        for index, tool_call in enumerate(tool_calls):
            call_id = call_ids[index]
            if settings.output_mode == "tool" and tool_call.function.name == FINAL_RESULT_TOOL:
                final = self._final_call(index, call_ids, tool_calls, round_)
                if isinstance(final, Finished):
                    return final
                if not self._output_retry_left():
                    output_problem = final.ready
                calls.append(final)
            else:
                calls.append(self._plan_call(index, call_id, tool_call, context))

        self._round = calls
        self._settled = {}
        self._state = "outcomes"
        if output_problem is not None:
            self.interrupt(ToolOutcome.not_run(call) for call in calls)
            raise self._output_error(output_problem)
        for call in calls:
            if call.kind != "repeated":
                continue
            streak = self._streaks[call.name][call._key]
            if streak > settings.max_repeated_calls:
                self.interrupt(ToolOutcome.not_run(call) for call in calls)
                raise RepeatedToolCallError(
                    f"the model called {call.name} with the same arguments "
                    f"{streak + 1} rounds in a row "
                    f"(max_repeated_calls={settings.max_repeated_calls})",
                    messages=self.messages,
                )
        if any(call.kind == "limit" for call in calls):
            if self._limit_told:
                self.interrupt(ToolOutcome.not_run(call) for call in calls)
                raise ToolCallLimitExceededError(
                    f"the model kept asking for tools after the run's limit of "
                    f"{settings.max_tool_calls} tool calls",
                    messages=self.messages,
                )
            self._limit_told = True
        return RunTools(calls, round_)

    def _plan_call(
        self, index: int, call_id: str, tool_call: ToolCall, context: list[RunContext[Any]]
    ) -> PlannedCall:
        """Check one call: the cap, the name, a repeat, the arguments."""
        settings = self.settings
        name = tool_call.function.name
        arguments = tool_call.function.arguments
        tool_ = settings.tools.get(name)
        cap = settings.max_tool_calls
        self._calls_made += 1
        if cap is not None and self._calls_made > cap:
            text = (
                f"Not run: this run reached its limit of {cap} tool calls. "
                "Answer now with the information you have."
            )
            return PlannedCall(index, call_id, name, arguments, tool_, ready=text, kind="limit")
        if tool_ is None:
            text = _unknown_tool_text(name, settings.tools)
            return PlannedCall(index, call_id, name, arguments, ready=text, kind="unknown_tool")
        key, repeats = _repeat_of(arguments, self._streaks.get(name))
        if repeats:
            text = (
                f"Not run again: you already called {name} with these exact arguments in the "
                f"previous round{'s' if repeats > 1 else ''} and its result is above. Use that "
                "result, change the arguments, or answer."
            )
            return PlannedCall(
                index, call_id, name, arguments, tool_, ready=text, kind="repeated", _key=key
            )
        try:
            kwargs = tool_.validate_json(arguments)
        except ToolArgumentsError as exc:
            return PlannedCall(
                index, call_id, name, arguments, tool_, ready=str(exc), kind="invalid_arguments"
            )
        run_context = None
        if tool_.context_param is not None:
            if not context:
                context.append(self._context())
            key = call_id
            if self.call_key is not None:
                key = self.call_key(len(self.messages) - 1, call_id)
            run_context = replace(context[0], call_id=call_id, idempotency_key=key)
        timeout = tool_.timeout if tool_.timeout is not None else settings.tool_timeout
        return PlannedCall(
            index, call_id, name, arguments, tool_, kwargs, run_context, timeout=timeout, _key=key
        )

    def _final_call(
        self,
        index: int,
        call_ids: list[str],
        tool_calls: list[ToolCall],
        round_: ModelRoundFinished,
    ) -> PlannedCall | Finished:
        output_type = self.settings.output_type
        assert output_type is not None
        arguments = tool_calls[index].function.arguments
        try:
            output = output_type.model_validate_json(arguments or "{}")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            text = (
                f"Invalid final result:\n{_describe_invalid(exc)}\n"
                f"Call {FINAL_RESULT_TOOL} again with corrected arguments."
            )
            return PlannedCall(
                index, call_ids[index], FINAL_RESULT_TOOL, arguments, ready=text, kind="output"
            )
        # Close the turn so the transcript stays resendable: every call gets its message.
        for other_index, other in enumerate(tool_calls):
            self._append_tool_message(
                call_ids[other_index],
                other.function.name,
                "Final result accepted."
                if other_index == index
                else "Not run: the final result was given.",
            )
        return self._finish(output, round_, truncated=False)

    def _final_text(self, content: str, round_: ModelRoundFinished, truncated: bool) -> Step:
        settings = self.settings
        if settings.output_type is None:
            return self._finish(content, round_, truncated)
        if settings.output_mode == "tool":
            if not self._output_retry_left():
                raise self._output_error(f"the answer was text, not a {FINAL_RESULT_TOOL} call")
            self.messages.append(
                {
                    "role": "user",
                    "content": (
                        f"Give your final answer by calling the {FINAL_RESULT_TOOL} tool, "
                        "not as text."
                    ),
                }
            )
            return self._correction_round(round_)
        try:
            output = settings.output_type.model_validate_json(_strip_code_fence(content))
        except ValueError as exc:
            problem = _describe_invalid(exc)
            if not self._output_retry_left():
                raise self._output_error(problem) from exc
            self.messages.append(
                {
                    "role": "user",
                    "content": (
                        f"Your answer does not match the required JSON schema:\n{problem}\n"
                        "Answer again with only the corrected JSON."
                    ),
                }
            )
            return self._correction_round(round_)
        return self._finish(output, round_, truncated)

    def _correction_round(self, round_: ModelRoundFinished) -> RunTools:
        """A round with nothing to run: a correction was appended for the model."""
        self._round = []
        self._settled = {}
        self._state = "outcomes"
        return RunTools([], round_)

    def _output_retry_left(self) -> bool:
        """Count one invalid structured answer; whether it may still be fed back."""
        self._output_retries += 1
        return self._output_retries <= self.settings.max_output_retries

    def _output_error(self, problem: str) -> OutputValidationError:
        self._state = "done"
        return OutputValidationError(
            f"the final answer did not match the output type after "
            f"{self.settings.max_output_retries} retries: {problem}",
            messages=self.messages,
        )

    def _finish(self, output: Any, round_: ModelRoundFinished, truncated: bool) -> Finished:
        self._state = "done"
        result: RunResult[Any] = RunResult(
            output=output,
            messages=self.messages,
            usage=self.usage,
            turns=self.turns,
            truncated=truncated,
        )
        return Finished(result, round_)

    def _context(self) -> RunContext[Any]:
        from ._context import RunContext

        return RunContext(
            deps=self.deps,
            usage=self.usage,
            messages=self.messages,
            turn=self.turns,
            session=self.session,
            principal=self.principal,
        )

    def _track(self, settled: list[ToolOutcome]) -> None:
        """Update the repeat streaks and the failure counts after a round."""
        streaks: dict[str, dict[str, int]] = {}
        round_failures: dict[str, bool] = {}  # tool name -> every call of it failed
        last_error: dict[str, str] = {}
        for outcome in settled:
            call = outcome.call
            if call.kind in ("limit", "output"):
                continue
            if call.kind == "repeated" or (outcome.status == "ok" and not outcome._failed):
                before = self._streaks.get(call.name)
                count = before.get(call._key, 0) if before else 0
                streaks.setdefault(call.name, {})[call._key] = count + 1
            if call.kind == "repeated":
                continue
            failed = outcome._failed
            round_failures[call.name] = round_failures.get(call.name, True) and failed
            if failed and outcome._result is not None:
                last_error[call.name] = outcome._result.error or ""
        self._streaks = streaks
        for name, all_failed in round_failures.items():
            if not all_failed:
                self._failures.pop(name, None)
                continue
            count = self._failures.get(name, 0) + 1
            self._failures[name] = count
            if count >= self.settings.max_tool_failures:
                self._state = "done"
                raise ToolFailureLimitExceededError(
                    f"tool {name!r} failed {count} rounds in a row "
                    f"(max_tool_failures={self.settings.max_tool_failures}); last error: "
                    f"{_cap(last_error.get(name, ''), 500)}",
                    tool_name=name,
                    messages=self.messages,
                )


# --- pure helpers -------------------------------------------------------------------------


def completion_deltas(completion: ChatCompletion) -> list[StreamDelta]:
    """The deltas a streamed answer would have yielded, for a round that was not streamed."""
    if not completion.choices:
        return []
    message = completion.choices[0].message
    deltas: list[StreamDelta] = []
    if message.reasoning_content:
        deltas.append(ReasoningDelta(message.reasoning_content))
    if message.content:
        deltas.append(TextDelta(message.content))
    for index, call in enumerate(message.tool_calls or ()):
        deltas.append(
            ToolCallArgumentsDelta(index, call.id, call.function.name, call.function.arguments)
        )
    return deltas


_SURROGATE = re.compile("[\ud800-\udfff]")


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


def _cap(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[output cut: showing the first {limit} of {len(text)} characters]"


def _error_text(name: str, error: BaseException | None) -> str:
    if isinstance(error, ToolRetry):
        return str(error)
    if error is None:
        return f"tool {name} failed"
    detail = str(error)
    kind = type(error).__name__
    return f"tool {name} failed: {kind}: {detail}" if detail else f"tool {name} failed: {kind}"


def _refusal_text(name: str, reason: str | None) -> str:
    why = "the user did not approve it"
    if reason:
        why = f"the user did not approve it: {_cap(reason, 1000)}"
    return (
        f"The call to {name} was refused: {why}. It was not run. Do not call it again "
        "unless the user asks you to."
    )


def _unknown_tool_text(name: str, tools: Mapping[str, Tool[..., Any]]) -> str:
    shown = name if len(name) <= 100 else name[:100] + "..."
    available = ", ".join(tools) or "none"
    return f"Unknown tool {shown!r}. Available tools: {available}."


def _repeat_of(arguments: str, previous: Mapping[str, int] | None) -> tuple[str, int]:
    """Whether a call repeats one of the previous round's calls of the same tool:
    ``(key, rounds in a row)``, or ``(arguments, 0)`` for a new call.

    The same text is a repeat at once; other text is compared as canonical JSON (keys
    sorted, spacing dropped), so the arguments are parsed a second time only when the tool
    was called in the previous round.
    """
    if not previous:
        return arguments, 0
    count = previous.get(arguments)
    if count:
        return arguments, count
    canonical = _canonical(arguments)
    for earlier, count in previous.items():
        if _canonical(earlier) == canonical:
            return earlier, count
    return arguments, 0


def _canonical(arguments: str) -> str:
    """Argument JSON with sorted keys and no spacing (the text as is when it is not JSON)."""
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        return arguments


def _describe_invalid(error: ValueError) -> str:
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


def _strip_code_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown fence; the JSON inside is the answer."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        newline = inner.find("\n")
        return inner[newline + 1 :] if newline != -1 else inner
    return stripped
