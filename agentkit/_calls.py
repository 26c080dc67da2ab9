"""What the loop core hands a driver and gets back: a round's calls, checked and ready
(:class:`PlannedCall`), how each ended (:class:`ToolOutcome`), and the core's decision
after a model response (:data:`Step`: run tools, or finished)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ._events import ModelRoundFinished, ToolResult
from ._result import PendingCall, RunResult
from ._store import argument_digest
from ._tool import render_tool_output
from ._wire import Usage

if TYPE_CHECKING:
    from ._context import RunContext
    from ._tool import Tool

__all__ = [
    "CallKind",
    "Finished",
    "OutcomeStatus",
    "PlannedCall",
    "Round",
    "RunTools",
    "Step",
    "SubRunPaused",
    "ToolOutcome",
]

CallKind = Literal[
    "run", "unknown_tool", "invalid_arguments", "repeated", "limit", "output", "settled", "handoff"
]

# Calls that were not run for these reasons count against the tool's consecutive-failure
# bound; a repeated call and the per-run cap have bounds of their own.
"""Why a planned call is what it is (see :attr:`PlannedCall.kind`)."""


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
            ``"limit"``, ``"output"``, ``"settled"`` or ``"handoff"`` (a
            ``transfer_to_<name>`` call: never run, its text says whether it was made).
        timeout: seconds the call may run, or ``None``.
        approved: a person already approved this call (a resumed pause): it runs without
            asking the approver again.
        decided: on a resume, the person's decision on this paused call (``True``: run it),
            else ``None``.
        decided_by: who made that decision (the resume's ``decided_by=``), or ``None``.
        decided_at: when (ISO 8601, UTC), or ``None``.
    """

    index: int
    call_id: str
    name: str
    arguments: str
    tool: Tool[..., Any] | None = None
    kwargs: dict[str, Any] | None = None
    context: RunContext[Any] | None = None
    ready: str | None = None
    kind: CallKind = "run"
    timeout: float | None = None
    _key: str = field(default="", repr=False, compare=False)
    approved: bool = False
    decided: bool | None = None
    decided_by: str | None = None
    decided_at: str | None = None

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

    def pending(self, path: tuple[str, ...] = ()) -> PendingCall:
        """The call as a :class:`~agentkit.PendingCall` (what a person reviews), asked by
        the agent at ``path``."""
        return PendingCall(
            self.call_id,
            self.name,
            self.arguments,
            dict(self.kwargs or {}),
            argument_digest(self.name, self.arguments),
            path,
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


OutcomeStatus: TypeAlias = Literal[
    "ok", "error", "timeout", "refused", "not_run", "cancelled", "paused"
]


@dataclass(frozen=True, slots=True)
class SubRunPaused:
    """What an agent tool returns when its sub-run paused for a person's decision: the
    call stays open, and the caller's run pauses with it (``RunResult.pending`` holds the
    sub-run's calls). ``result`` is the sub-run's paused ``RunResult``."""

    result: RunResult[Any]


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
    paused: RunResult[Any] | None = None

    @classmethod
    def ok(cls, call: PlannedCall, value: Any, duration: float = 0.0) -> ToolOutcome:
        """The tool returned ``value``, rendered to text here (call it where the tool ran,
        inside its time budget): a value that cannot be rendered is a failed call. An
        agent tool's :class:`SubRunPaused` is a ``"paused"`` outcome: the call stays open."""
        if type(value) is SubRunPaused:
            return cls(call, "paused", duration=duration, paused=value.result)
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


@dataclass(slots=True)
class Round:
    """What one model call gave the run: its turn, usage, finish reason and assistant
    message. The :class:`~agentkit.ModelRoundFinished` event is built from it only when
    someone reads it (a streamed run): a run that is not streamed never needs it."""

    turn: int
    usage: Usage | None
    finish_reason: str | None
    message: dict[str, Any]

    def event(self) -> ModelRoundFinished:
        """The round as the event a stream yields."""
        usage = self.usage if self.usage is not None else Usage()
        return ModelRoundFinished(self.turn, usage, self.finish_reason, self.message)


@dataclass(slots=True)
class RunTools:
    """Step: run ``calls`` (possibly none), then hand the outcomes to ``on_tool_outcomes``.

    An empty ``calls`` means the core fed a correction back to the model (an invalid
    structured answer) and the driver simply goes on to the next request.
    """

    calls: list[PlannedCall]
    made: Round

    @property
    def round(self) -> ModelRoundFinished:
        """The model round that asked for the calls, as its event."""
        return self.made.event()


@dataclass(slots=True)
class Finished:
    """Step: the run is over; ``result`` is the :class:`~agentkit.RunResult`."""

    result: RunResult[Any]
    made: Round

    @property
    def round(self) -> ModelRoundFinished:
        """The model round that ended the run, as its event."""
        return self.made.event()


Step: TypeAlias = RunTools | Finished
"""What :meth:`RunLoop.on_response` decides."""


def repeated_key_text(name: str, arguments: str) -> str | None:
    """What the model is told when the arguments of a call a person must approve give one
    key twice (``{"slot": 1, "slot": 4}``), else ``None``.

    The person reads the arguments as the model wrote them, and the tool runs with the last
    value of a repeated key: an approval shown for one value would run the other.
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        repeated.extend(key for index, key in enumerate(keys) if key in keys[:index])
        return dict(items)

    try:
        json.loads(arguments or "{}", object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # the tool's own validation reports it
        return None
    if not repeated:
        return None
    return (
        f"Invalid arguments for tool `{name}`: the key {repeated[0][:100]!r} is given twice. "
        "A person reviews this call before it runs: give each argument once and call the "
        "tool again."
    )
