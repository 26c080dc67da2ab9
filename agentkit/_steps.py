"""The run, written once: one generator takes every decision and yields *effects*.

:func:`run_steps` drives the no-I/O core (:class:`~agentkit._loop.RunLoop`) through a
whole run: the order observers (``Hooks`` among them) are called in, approval and pausing,
the stream fallback and what the agent remembers of it, which events the caller sees. It never does
I/O itself. It yields an effect, and the driver (sync or async, in ``_agent.py``) performs
it and sends back the answer::

    CallModel(request, stream)  -> the ChatCompletion (a failure is thrown in)
    Callback(fn, args)          -> what fn returned (awaited by the async driver)
    Emit(event)                 -> None; the driver hands the event to the caller
    StartCalls(calls)           -> None; the driver starts the tool calls
    NEXT_OUTCOME                -> the next started call's ToolOutcome, or an event of a
                                   sub-agent that call runs (streamed runs)

A run's start is effects too, yielded before these by the agent (``_agent.py``,
``_session_run.py``), so it is written once as well::

    LIST_TOOLS                  -> each tool source's tools (asked in the driver's way)
    ListTools(runtime)          -> the same for another agent of a handoff graph
    Callback(fn, args, blocking=True)
                                -> a store's answer (a session claimed, loaded, released)
    Begin(loop)                 -> None; the driver starts the run's clock and client

The generator returns the :class:`~agentkit.RunResult` (finished or paused). The drivers
are short loops that perform these effects; the sync and async runs can no longer drift
apart, because there is only one of each decision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._calls import PlannedCall, RunTools, ToolOutcome
from ._errors import (
    APIError,
    HandoffLimitError,
    MaxTurnsExceededError,
    OutputValidationError,
    RepeatedToolCallError,
    RunTimeoutError,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
)
from ._events import AgentEvent, RunFinished, ToolCallStarted
from ._loop import RunLoop, completion_deltas
from ._observe import RunObserver
from ._result import RunResult
from ._wire import ChatCompletion

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "LIST_TOOLS",
    "NEXT_OUTCOME",
    "Approver",
    "Begin",
    "CallModel",
    "Callback",
    "Effect",
    "Emit",
    "ListTools",
    "RunPlan",
    "StartCalls",
    "run_steps",
]

Approver: TypeAlias = Callable[[PlannedCall], "bool | Awaitable[bool]"]
"""Decides whether a ``requires_approval`` tool call may run; only ``True`` approves.
It sees the call's ``name``, validated ``kwargs`` and raw ``arguments``."""


# --- the effects ------------------------------------------------------------------------


@dataclass(slots=True)
class CallModel:
    """Effect: send ``request``; streamed when ``stream``. With ``emit`` the driver hands
    each delta to the caller as it arrives and sets ``yielded`` once it has."""

    request: dict[str, Any]
    stream: bool = False
    emit: bool = False
    yielded: bool = False


@dataclass(frozen=True, slots=True)
class Callback:
    """Effect: call ``fn(*args)``: user code (a hook, the approver, an observer), or with
    ``blocking`` a store's call (the session's claim, load and journal), which blocks: the
    async driver runs those in a thread, so the event loop never waits on the store.

    ``undo`` is given what ``fn`` returned when nobody waits for it any more: the async
    driver's waiter was cancelled while the thread ran on (a claim is given back). With
    ``through``, the async driver awaits the call to its end even when cancelled meanwhile
    (a release: dropped from the thread pool's queue, it would hold the session)."""

    fn: Callable[..., object]
    args: tuple[Any, ...]
    blocking: bool = False
    undo: Callable[[Any], object] | None = None
    through: bool = False


@dataclass(slots=True)
class Emit:
    """Effect: hand ``event`` to the caller of ``stream``/``stream_async``."""

    event: AgentEvent


@dataclass(slots=True)
class StartCalls:
    """Effect: start ``calls`` concurrently (sync tools in threads, async ones as tasks).

    ``late`` is told how a call ended that the run stopped waiting for (cancelled, timed
    out) while its thread ran on: the session records a side-effect call's late result.
    """

    calls: list[PlannedCall]
    late: Callable[[ToolOutcome], None] | None = None


class _NextOutcome:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEXT_OUTCOME"


NEXT_OUTCOME: Final = _NextOutcome()
"""Effect: wait for the next started call to end; answered with its ``ToolOutcome``."""


@dataclass(frozen=True, slots=True)
class ListTools:
    """Effect: ask each tool source of an agent for its tools (a run is starting): the
    run's own agent's (``runtime`` ``None``), or those of another agent of its handoff
    graph; answered with the list of their tool lists."""

    runtime: Runtime | None = None


LIST_TOOLS: Final = ListTools()
"""Effect: ask each of the run's agent's tool sources for its tools."""


@dataclass(slots=True)
class Begin:
    """Effect: the run's loop is made (its session loaded, its observer made); the driver
    starts the run's deadline and gets its client."""

    loop: RunLoop


Effect: TypeAlias = CallModel | Callback | Emit | StartCalls | _NextOutcome | ListTools | Begin


@dataclass(slots=True)
class RunPlan:
    """What one run needs besides its loop: how the caller consumes it and its callbacks.

    ``remember_refusal`` is called once a round the provider refused to stream with tools
    went through unstreamed, so later runs of the agent skip the try.
    """

    stream: bool = False
    approve: Approver | None = None
    observer: RunObserver | None = None
    remember_refusal: Callable[[], None] | None = None
    # Blocking calls left for the driver when the caller closed the run early (a closed
    # generator yields no more effects): the sync driver calls them, the async one runs
    # them in a thread once the run's generator is closed.
    closing: list[Callable[[], object]] = field(default_factory=list)
    # Whether anyone observes runs (decided once, when the run is asked for): its observer
    # is then made once its loop is, and is current while the run's code runs.
    observed: bool = False
    # Set as the run starts: its loop (for an interrupt between two events) and what a
    # session adds to its result (the session, the calls found in doubt at its start).
    loop: RunLoop | None = None
    finish: Callable[[RunResult[Any]], None] | None = None


_LIMITS: tuple[tuple[type[BaseException], str], ...] = (
    (MaxTurnsExceededError, "max_turns"),
    (ToolCallLimitExceededError, "max_tool_calls"),
    (ToolFailureLimitExceededError, "max_tool_failures"),
    (RepeatedToolCallError, "max_repeated_calls"),
    (OutputValidationError, "max_output_retries"),
    (RunTimeoutError, "run_timeout"),
    (HandoffLimitError, "max_handoffs"),
)


# --- the run ----------------------------------------------------------------------------


def run_steps(
    loop: RunLoop, plan: RunPlan, first: list[PlannedCall] | None = None
) -> Generator[Effect, Any, RunResult[Any]]:
    """The whole run as effects; returns its result. ``first`` is a reopened round to
    finish before any model call (from :meth:`RunLoop.resume_round`)."""
    observer = plan.observer
    journal = loop.journal
    try:
        result: RunResult[Any] | None = None
        if loop.team is not None:  # a run of a handoff graph: the active agent's approver
            from ._handoff import start

            start(loop, plan)
        if first is not None:
            result = yield from _tool_round(loop, plan, first)
        while result is None:
            result = yield from _model_round(loop, plan)
        if plan.finish is not None:
            plan.finish(result)
        if observer is not None:
            yield Callback(observer.run_finished, (result,))
    except GeneratorExit as exc:  # the caller stopped iterating: no more effects
        loop.interrupt()
        if journal is not None:
            plan.closing.append(partial(journal.failed, loop))
        if observer is not None:
            observer.run_failed(exc)
        raise
    except BaseException as exc:
        loop.fail(exc)
        if journal is not None:
            with contextlib.suppress(Exception):  # the run's own error is what counts
                yield Callback(journal.failed, (loop,), blocking=True)
        if observer is not None:
            for limit_type, name in _LIMITS:
                if isinstance(exc, limit_type):
                    yield Callback(observer.limit_reached, (name, exc))
            yield Callback(observer.run_failed, (exc,))
        raise
    # Outside the handlers: a caller that stops at the final event leaves a finished run.
    yield Emit(RunFinished(result))
    return result


def _model_round(loop: RunLoop, plan: RunPlan) -> Generator[Effect, Any, RunResult[Any] | None]:
    """One model call and what follows from it: a result, or a tool round (``None``)."""
    observer = plan.observer
    request = loop.next_request()
    turn = loop.turns
    if observer is not None:
        yield Callback(observer.model_call_started, (turn, request))
    completion: ChatCompletion = yield from _call_model(loop, plan, request)
    if observer is not None:
        yield Callback(observer.model_call_finished, (turn, completion))
    step = loop.on_response(completion)
    journal = loop.journal
    if journal is not None:
        closed = not isinstance(step, RunTools)
        yield Callback(partial(journal.step, closed=closed), (loop,), blocking=True)
    if plan.stream:
        yield Emit(step.made.event())
    if isinstance(step, RunTools):
        return (yield from _tool_round(loop, plan, step.calls))
    return step.result


def _call_model(
    loop: RunLoop, plan: RunPlan, request: dict[str, Any]
) -> Generator[Effect, Any, ChatCompletion]:
    """Send the request, streamed when the caller streams (or the provider requires it)
    and the provider takes tools with streaming; redo it unstreamed when refused."""
    streamed = (plan.stream or loop.settings.stream_required) and loop.wants_stream(request)
    if streamed:
        effect = CallModel(request, stream=True, emit=plan.stream)
        try:
            completion: ChatCompletion = yield effect
            return completion
        except APIError as exc:
            if not loop.stream_refused(request, exc, effect.yielded):
                raise
            if plan.observer is not None:
                yield Callback(plan.observer.stream_fallback, (loop.turns, exc))
        completion = yield CallModel(request)
        # Only now is the refusal certain: a request that fails unstreamed as well
        # proves nothing about streaming, and is not remembered.
        if plan.remember_refusal is not None:
            plan.remember_refusal()
    else:
        completion = yield CallModel(request)
    if plan.stream:
        for delta in completion_deltas(completion):
            yield Emit(delta)
    return completion


def _tool_round(
    loop: RunLoop, plan: RunPlan, calls: list[PlannedCall]
) -> Generator[Effect, Any, RunResult[Any] | None]:
    """Settle, approve and run one round's calls; a paused result when calls wait for a
    person, else ``None`` (the round is closed and the run goes on)."""
    observer = plan.observer
    journal = loop.journal
    runnable: list[PlannedCall] = []
    waiting: list[PlannedCall] = []
    for call in calls:
        if call.decided is not None and observer is not None:  # a person decided it: a resume
            yield Callback(observer.approval, (call, call.decided))
        if not call.runs:
            yield from _finished(loop, plan, ToolOutcome.not_run(call), ran=False)
            continue
        if call.needs_approval:
            if plan.approve is None:  # nobody to ask now: the run pauses (Agent.resume)
                if observer is not None:
                    yield Callback(observer.approval_pending, (call,))
                waiting.append(call)
                continue
            granted = (yield Callback(plan.approve, (call,))) is True
            if observer is not None:
                yield Callback(observer.approval, (call, granted))
            if not granted:
                yield from _finished(loop, plan, ToolOutcome.refused(call), ran=False)
                continue
        runnable.append(call)
    for call in runnable:
        if observer is not None:  # hooks included: they may still stop the run here
            yield Callback(observer.tool_call_started, (call,))
        if journal is not None:  # committed before the call can start
            yield Callback(journal.before_call, (call,), blocking=True)
        if observer is not None and call.side_effects:
            yield Callback(observer.before_side_effect, (call,))
        if plan.stream:
            yield Emit(ToolCallStarted(call.call_id, call.name, call.arguments))
    nested: dict[str, RunResult[Any]] = {}  # agent-tool calls whose sub-run paused
    if runnable:
        if journal is not None:
            journal.started(runnable)  # from here each may run on, whatever the run does
        yield StartCalls(runnable, None if journal is None else journal.late_result)
        for _ in runnable:
            outcome = yield NEXT_OUTCOME
            while not isinstance(outcome, ToolOutcome):  # a sub-agent's event, while it runs
                yield Emit(outcome)
                outcome = yield NEXT_OUTCOME
            if outcome.paused is not None:  # stays open: the whole run pauses with it
                nested[outcome.call.call_id] = outcome.paused
                continue
            yield from _finished(loop, plan, outcome, ran=True)
    if waiting or nested:
        result = loop.pause(waiting, nested=nested)
        if journal is not None:
            state = result.resume_state or {}
            yield Callback(journal.paused, (loop, state), blocking=True)
        return result
    loop.on_tool_outcomes()
    if journal is not None:
        yield Callback(partial(journal.step, closed=True), (loop,), blocking=True)
    if loop.handoff is not None:  # the round made a transfer: go on as its target
        from ._handoff import switch

        yield from switch(loop, plan)
    return None


def _finished(
    loop: RunLoop, plan: RunPlan, outcome: ToolOutcome, *, ran: bool
) -> Generator[Effect, Any, None]:
    call = outcome.call
    result = loop.settle(outcome)
    observer = plan.observer
    journal = loop.journal
    if ran and journal is not None:
        ended = outcome.status != "timeout"  # a call past its timeout may still run on
        yield Callback(journal.after_call, (call, result.output, ended), blocking=True)
    if observer is not None:
        if ran and call.side_effects:
            yield Callback(observer.after_side_effect, (call, result))
        yield Callback(observer.tool_call_finished, (call, result))
    if plan.stream:
        yield Emit(result)
