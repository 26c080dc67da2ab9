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
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from ._calls import Finished, PlannedCall, Round, RunTools, Step, ToolOutcome, repeated_key_text
from ._errors import (
    AgentKitError,
    ConfigurationError,
    HandoffLimitError,
    InvalidResponseError,
    MaxTurnsExceededError,
    OutputTruncatedError,
    OutputValidationError,
    RepeatedToolCallError,
    ToolArgumentsError,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
)
from ._events import (
    ReasoningDelta,
    StreamDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolResult,
)
from ._handoff_plan import made_transfer, plan_transfer
from ._loop_settings import FINAL_RESULT_TOOL, LoopSettings
from ._loop_text import (
    IN_DOUBT_TIMEOUT,
    cap,
    clean_text,
    describe_invalid,
    error_text,
    refusal_text,
    strip_code_fence,
    unknown_tool_text,
)
from ._records import check_count
from ._result import PendingCall, RunResult
from ._wire import ChatCompletion, ChatMessage, ToolCall, Usage, message_to_dict

if TYPE_CHECKING:
    from ._budget import Budget
    from ._context import Principal, RunContext
    from ._handoff import Team
    from ._observe import RunObserver

__all__ = ["RunLoop", "completion_deltas"]

# Calls that were not run for these reasons count against the tool's consecutive-failure
# bound; a repeated call and the per-run cap have bounds of their own.
_FAILURE_KINDS = frozenset({"unknown_tool", "invalid_arguments"})
_USAGE_LOCK = threading.Lock()  # parallel sub-agents add their usage from their threads


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
        "_start",
        "_state",
        "_streaks",
        "_usage",
        "_view",
        "agents",
        "budget",
        "call_key",
        "caller",
        "deadline",
        "deps",
        "forward",
        "given_up",
        "handoff",
        "handoffs",
        "in_doubt",
        "journal",
        "messages",
        "observer",
        "path",
        "principal",
        "session",
        "settings",
        "team",
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
        self._usage: Usage | None = None  # none until the first model call reports some
        self._calls_made = 0
        self._start = len(messages)  # what the run adds comes after the messages it was given
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
        # Side-effect calls that ran past their timeout: their outcome is unknown.
        self.in_doubt: list[PendingCall] = []
        # For agents used as tools (_delegate.py): the run's deadline (a perf_counter
        # value, set by the driver), where a sub-agent's events go while a round runs (set
        # by a streaming driver), and the agents above this run (ids, names; empty at the top).
        self.deadline: float | None = None
        self.forward: Callable[[Any], None] | None = None
        # a sub-run in a tool thread: what ends it once the caller gave up on its call
        # (``None`` while the caller waits); the sync driver then performs no more effects
        self.given_up: Callable[[], BaseException | None] | None = None
        self.agents: tuple[int, ...] = ()
        # the run tree's count limits, shared by its agents (_budget.py); None: this run
        # has called no agent tool, and counts against its own limits only
        self.budget: Budget | None = None
        # a sub-agent's run: the caller's observer and the id of the call running this one
        self.caller: tuple[RunObserver | None, str] | None = None
        self.path: tuple[str, ...] = ()
        # Handoffs (_handoff.py): the run's agents by name (None: no handoffs), the names
        # of the agents that had the conversation in this run, the target of a transfer
        # made in the open round (switched to once the round closes), and what the
        # active agent is sent: its first messages, then the transcript from an index on.
        self.team: Team | None = None
        self.handoffs: list[str] = []
        self.handoff: str | None = None
        self._view: tuple[list[dict[str, Any]], int] | None = None

    def add_usage(self, usage: Usage) -> None:
        """Add a sub-agent's tokens to this run's (from a tool thread or task)."""
        with _USAGE_LOCK:
            self._count_usage(usage)

    # -- reading the run ----------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Tokens used by the run's model calls so far."""
        return self._usage if self._usage is not None else Usage()

    def _count_usage(self, usage: Usage) -> None:
        # The first count is taken as it came: a Usage sum is a pydantic construction.
        self._usage = usage if self._usage is None else self._usage + usage

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
        budget = self.budget
        if budget is not None and not budget.take_turn():
            self._state = "done"
            raise MaxTurnsExceededError(budget.turns_text(), messages=self.messages)
        self.turns += 1
        request = dict(self.settings.base_request)
        view = self._view  # after a handoff: what the active agent is sent
        messages = self.messages if view is None else [*view[0], *self.messages[view[1] :]]
        request["messages"] = messages
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
            self._count_usage(usage)
        assistant = _assistant_turn(message)
        if self.settings.sign:  # an agent of a handoff graph: who wrote the turn
            assistant["name"] = self.settings.agent
        round_ = Round(self.turns, usage, choice.finish_reason, assistant)
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
            return self._plan(round_)
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
            text = error = outcome.text or error_text(call.name, outcome.error)
        elif outcome.status == "timeout":
            text = error = f"tool {call.name} timed out after {outcome.timeout or 0:g} s"
            if call.side_effects:
                # It may still take effect (a thread cannot be stopped): not a failure to
                # retry, but an outcome nobody knows yet.
                text = error = f"{text} and may still take effect: {IN_DOUBT_TIMEOUT}"
                if all(c.call_id != call.call_id for c in self.in_doubt):
                    self.in_doubt.append(call.pending(self.path))
        elif outcome.status == "refused":
            text = error = refusal_text(call.name, outcome.reason)
        elif outcome.status == "not_run":
            text = error = call.ready or f"tool {call.name} was not run: the run stopped"
            failed = call.kind in _FAILURE_KINDS
        else:
            text = error = f"tool {call.name} was cancelled before it finished"
        output = cap(clean_text(text), self.settings.max_tool_output_chars)
        result = ToolResult(call.call_id, call.name, output, error, outcome.duration)
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
        self,
        waiting: Sequence[PlannedCall],
        outcomes: Iterable[ToolOutcome] = (),
        nested: Mapping[str, RunResult[Any]] | None = None,
    ) -> RunResult[Any]:
        """End the run as paused: ``waiting`` calls need a person's decision, and the
        agent-tool calls in ``nested`` (by call id) ran a sub-run that paused for one.

        The other calls of the round have run; their tool messages are held back (in
        ``resume_state``) so that the round's messages stay in call order when it resumes.
        The transcript ends with the assistant message that made the calls. A paused
        sub-run's transcript and state go under ``resume_state["nested"]``, keyed by the
        call id, and its pending calls join ``pending`` with the call id before their ``via``.
        """
        self._expect("outcomes")
        by_index = self._settled
        for outcome in outcomes:
            by_index[outcome.call.index] = outcome
        nested = nested or {}
        waiting_ids = {call.call_id for call in waiting}
        settled: dict[str, str] = {}
        for call in self._round:
            if call.call_id in waiting_ids or call.call_id in nested:
                continue
            outcome = by_index.get(call.index) or ToolOutcome.cancelled(call)
            settled[call.call_id] = self.settle(outcome).output
        self._round = []
        self._settled = {}
        self._state = "done"
        own = tuple(call.pending(self.path) for call in waiting)
        state: dict[str, Any] = {"calls": [c.to_dict() for c in own], "settled": settled}
        pending = list(own)
        if nested:
            state["nested"] = {
                call_id: {
                    "messages": [m for m in sub.messages if m.get("role") != "system"],
                    "state": sub.resume_state,
                }
                for call_id, sub in nested.items()
            }
            for call_id, sub in nested.items():
                pending += [replace(p, via=(call_id, *p.via)) for p in sub.pending]
        return RunResult(
            output=None,
            messages=self.messages,
            usage=self.usage,
            turns=self.turns,
            status="paused",
            pending=tuple(pending),
            session=self.session,
            resume_state=state,
            agent=self.settings.agent,
            _start=self._start,
        )

    def resume_round(
        self,
        plan: Mapping[str, str | None],
        mark: Callable[[PlannedCall], PlannedCall] | None = None,
        nested: Mapping[str, Any] | None = None,
    ) -> list[PlannedCall]:
        """Reopen the last round of the transcript (an assistant message whose calls have
        no tool messages yet) and plan it again: ``plan`` maps each open call's id to
        ``None`` (run it: approved, or safe to run again) or to the text its tool message
        gets (a result recorded before, a refusal, an outcome that is unknown).

        The driver runs the returned calls and hands their outcomes to
        ``on_tool_outcomes`` as for any round. ``mark``, if given, is applied to each call
        (the session marks the calls a person decided now, for the observers).
        ``nested`` maps the id of an agent-tool call whose sub-run paused to what that
        sub-run resumes from (handed to the tool on its ``RunContext``).
        """
        self._expect("request")
        assistant = self.messages[-1]
        calls: list[PlannedCall] = []
        context: list[RunContext[Any]] = []
        self.handoff = None
        for index, wire in enumerate(assistant.get("tool_calls") or []):
            call_id, function = wire["id"], wire["function"]
            text = plan.get(call_id)
            if call_id in plan and text is None:
                function = ToolCall.model_validate(wire).function
                if self.settings.handoffs and function.name in self.settings.handoffs:
                    # a transfer a crash left unanswered: made now (nothing of it ran);
                    # a refusal past the limits is told to the model, as in a new round
                    calls.append(
                        plan_transfer(self, index, call_id, function.name, function.arguments, [])
                    )
                    continue
                call = self._plan_call(index, call_id, function.name, function.arguments, context)
                if nested and call_id in nested and call.context is not None:
                    call = replace(call, context=replace(call.context, _resume=nested[call_id]))
                calls.append(replace(call, approved=True))
            else:
                ready = text if text is not None else "not run: the run stopped"
                if self.settings.handoffs:  # a transfer made before the pause
                    self.handoff = self.handoff or made_transfer(self, function["name"], ready)
                calls.append(
                    PlannedCall(
                        index,
                        call_id,
                        function["name"],
                        function.get("arguments") or "",
                        ready=ready,
                        kind="settled",
                    )
                )
        if mark is not None:
            calls = [mark(call) for call in calls]
        self._round = calls
        self._settled = {}
        self._state = "outcomes"
        return calls

    # -- internals ------------------------------------------------------------------------

    def switch(self, settings: LoopSettings, head: list[dict[str, Any]], name: str) -> None:
        """Go on as agent ``name`` (a handoff, once its round closed): its ``settings``, and
        requests that send ``head`` (its system message and the history its policy keeps)
        and then what the transcript gains from now on."""
        self._expect("request")
        self.settings = settings
        self._view = (head, len(self.messages))
        self.handoffs.append(name)
        self.handoff = None
        if self.path:  # the calls it asks from now on are the target's
            self.path = (*self.path[:-1], name)
        self._streaks = {}  # another agent's tools: nothing repeats across the handoff
        self._failures = {}

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

    def _plan(self, round_: Round) -> Step:
        settings = self.settings
        calls: list[PlannedCall] = []
        context: list[RunContext[Any]] = []  # built once per round, only if a tool wants it
        output_problem: str | None = None
        # The calls as the transcript holds them (cleaned text, every call with an id), so
        # the tool messages and the calls' events name them as the transcript does.
        wire_calls: list[dict[str, Any]] = self.messages[-1]["tool_calls"]
        self.handoff = None
        refused: list[HandoffLimitError] = []
        for index, wire_call in enumerate(wire_calls):
            call_id, function = wire_call["id"], wire_call["function"]
            name, arguments = function["name"], function["arguments"]
            if settings.output_mode == "tool" and name == FINAL_RESULT_TOOL:
                final = self._final_call(index, wire_calls, round_)
                if isinstance(final, Finished):
                    return final
                if not self._output_retry_left():
                    output_problem = final.ready
                calls.append(final)
            elif settings.handoffs and name in settings.handoffs:
                calls.append(plan_transfer(self, index, call_id, name, arguments, refused))
            else:
                calls.append(self._plan_call(index, call_id, name, arguments, context))

        self._round = calls
        self._settled = {}
        self._state = "outcomes"
        if output_problem is not None:
            self.interrupt(ToolOutcome.not_run(call) for call in calls)
            raise self._output_error(output_problem)
        if refused:  # a handoff past the limit, or back and forth: the run stops
            self.interrupt(ToolOutcome.not_run(call) for call in calls)
            refused[0].messages = self.messages
            raise refused[0]
        unusual = [call for call in calls if call.kind != "run"]
        if unusual:
            self._check_unusual(calls, unusual)
        return RunTools(calls, round_)

    def _check_unusual(self, calls: list[PlannedCall], unusual: list[PlannedCall]) -> None:
        """Stop the run when a call repeats too often or the model keeps asking past the
        tool-call limit (the round's calls all get their tool message first)."""
        settings = self.settings
        for call in unusual:
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
        if any(call.kind == "limit" for call in unusual):
            if self._limit_told:
                self.interrupt(ToolOutcome.not_run(call) for call in calls)
                raise ToolCallLimitExceededError(
                    f"the model kept asking for tools after {self._tool_limit()}",
                    messages=self.messages,
                )
            self._limit_told = True

    def _plan_call(
        self,
        index: int,
        call_id: str,
        name: str,
        arguments: str,
        context: list[RunContext[Any]],
    ) -> PlannedCall:
        """Check one call: the cap, the name, a repeat, the arguments."""
        settings = self.settings
        tool_ = settings.tools.get(name)
        cap = settings.max_tool_calls
        self._calls_made += 1
        if cap is not None and self._calls_made > cap:
            text = (
                f"Not run: this run reached its limit of {cap} tool calls. "
                "Answer now with the information you have."
            )
            return PlannedCall(index, call_id, name, arguments, tool_, ready=text, kind="limit")
        budget = self.budget
        if budget is not None and not budget.take_call():
            text = budget.calls_text()
            return PlannedCall(index, call_id, name, arguments, tool_, ready=text, kind="limit")
        if tool_ is None:
            text = unknown_tool_text(name, settings.tools, settings.handoffs)
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
        twice = repeated_key_text(name, arguments) if tool_.requires_approval else None
        if twice is not None:  # a person would approve one value and the tool run another
            return PlannedCall(
                index, call_id, name, arguments, tool_, ready=twice, kind="invalid_arguments"
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

    def _tool_limit(self) -> str:
        """The tool-call limit this run reached: its own, or its tree's."""
        cap, budget = self.settings.max_tool_calls, self.budget
        if budget is not None and (cap is None or self._calls_made <= cap):
            return f"the run's limit of {budget.max_tool_calls} tool calls, across its agents"
        return f"the run's limit of {cap} tool calls"

    def _final_call(
        self, index: int, wire_calls: list[dict[str, Any]], round_: Round
    ) -> PlannedCall | Finished:
        output_type = self.settings.output_type
        assert output_type is not None
        call_id = wire_calls[index]["id"]
        arguments = wire_calls[index]["function"]["arguments"]
        try:
            output = output_type.model_validate_json(arguments or "{}")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            text = (
                f"Invalid final result:\n{describe_invalid(exc)}\n"
                f"Call {FINAL_RESULT_TOOL} again with corrected arguments."
            )
            return PlannedCall(
                index, call_id, FINAL_RESULT_TOOL, arguments, ready=text, kind="output"
            )
        # Close the turn so the transcript stays resendable: every call gets its message.
        for other_index, other in enumerate(wire_calls):
            self._append_tool_message(
                other["id"],
                other["function"]["name"],
                "Final result accepted."
                if other_index == index
                else "Not run: the final result was given.",
            )
        return self._finish(output, round_, truncated=False)

    def _final_text(self, content: str, round_: Round, truncated: bool) -> Step:
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
            output = settings.output_type.model_validate_json(strip_code_fence(content))
        except ValueError as exc:
            problem = describe_invalid(exc)
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

    def _correction_round(self, round_: Round) -> RunTools:
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

    def _finish(self, output: Any, round_: Round, truncated: bool) -> Finished:
        self._state = "done"
        result: RunResult[Any] = RunResult(
            output=output,
            messages=self.messages,
            usage=self.usage,
            turns=self.turns,
            truncated=truncated,
            in_doubt=tuple(self.in_doubt),
            agent=self.settings.agent,
            _start=self._start,
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
            _caller=self,
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
                    f"{cap(last_error.get(name, ''), 500)}",
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


def _assistant_turn(message: ChatMessage) -> dict[str, Any]:
    """The assistant turn as the transcript keeps it (:func:`message_to_dict`), each text
    it holds cleaned (:func:`clean_text`). Only those texts come from the server: the keys,
    the role and the call type are written here, so they are not walked (a generic walk
    over the dict cost about 8 us a round)."""
    turn = message_to_dict(message)
    turn["content"] = clean_text(turn["content"])
    for call in turn.get("tool_calls", ()):
        call["id"] = clean_text(call["id"])
        function = call["function"]
        function["name"] = clean_text(function["name"])
        function["arguments"] = clean_text(function["arguments"])
    return turn


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
