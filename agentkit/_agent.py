"""``Agent``: a model, its tools and instructions, and the rules of a run; its entry points.

The agent is the public face of a run. What each piece does lives in its own module:
:mod:`agentkit._config` (the options, checked once; each run's setup),
:mod:`agentkit._runtime` (the clients, tool threads and tool sources it owns),
:mod:`agentkit._session_run` (a run on a stored session), :mod:`agentkit._drive` (the two
drivers that perform the run's effects) and :mod:`agentkit._steps` (the run's decisions,
written once)::

    from agentkit import Agent, tool

    @tool
    def get_current_time() -> str:
        \"\"\"The current time.\"\"\"
        ...

    agent = Agent("qwen-plus", [get_current_time], "You are a helpful assistant.")
    result = agent.run("What time is it?")
    print(result.output, result.usage.total_tokens)
    follow_up = agent.run([*result.messages, {"role": "user", "content": "And in Tokyo?"}])

Cancellation and Ctrl-C: see :mod:`agentkit._drive`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, Unpack, cast, overload

from ._calls import PlannedCall
from ._client import AsyncChatClient, ChatClient
from ._config import AgentConfig, AgentOptions, Instructions, Prompt, run_deps
from ._context import Principal
from ._delegate import AgentTool, agent_tool, check_agent_tools
from ._drive import Steps, consume, consume_async, drive, drive_async
from ._errors import ConfigurationError
from ._events import AgentEvent
from ._handoff import Handoff, TeamTools, team_of, team_tools
from ._hooks import Hooks, hooks_observer
from ._loop import RunLoop
from ._observe import (
    ObserverFactory,
    RunInfo,
    instrumentation,
    make_current,
    observer_for,
    observing,
)
from ._providers import Provider
from ._records import ModelSettings, RunLimits
from ._result import RunResult
from ._runtime import Runtime
from ._session import (
    Decision,
    ResumeError,
    Summarizer,
    check_settler,
    decisions_by,
    settle_open_round,
)
from ._session_run import session_steps
from ._sources import ToolSource
from ._steps import LIST_TOOLS, Approver, Begin, Effect, RunPlan, run_steps
from ._store import Store, open_calls
from ._tool import Tool

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Agent", "AgentOptions", "Approver", "Hooks", "Prompt"]

OutputT = TypeVar("OutputT")
EventsT = TypeVar("EventsT")
Driver: TypeAlias = Callable[[Runtime, Steps, RunPlan], EventsT]
"""``drive`` (``run``, ``stream``) or ``drive_async`` (``run_async``, ``stream_async``)."""
# A run's options as the entry points take them: deps, context, max_turns, limits, principal
Found: TypeAlias = "list[Sequence[Tool[..., Any]]] | TeamTools | None"
"""What a run's tool sources returned: the agent's sources' tool lists, or in a handoff
graph each agent's by name."""
_Options: TypeAlias = tuple[Any, Any, "int | None", "RunLimits | None", "Principal | None"]


class Agent(Generic[OutputT]):
    """A model, its tools and instructions, and the rules of a run. Reusable and safe to share
    between threads and tasks; every run has its own state.

    Args:
        model: the model name (``"qwen-plus"``, ``"gpt-4o-mini"``...).
        tools: ``Tool`` objects (or plain functions, wrapped with ``@tool``), and tool
            sources such as an MCP server (``agentkit.mcp.MCPStdio``), asked for their tools
            at the start of each run.
        instructions: the system message, sent first (not added again when a transcript
            passed to ``run`` already starts with a system message).
        output_type: a pydantic model; ``RunResult.output`` is then a validated instance.
        client: a ``ChatClient`` (for ``run``/``stream``) or ``AsyncChatClient`` (for
            ``run_async``/``stream_async``) to use instead of building one; the agent does
            not close a client it was given.
        base_url, api_key, provider: how to build the clients (see ``ChatClient``). A
            missing key for DashScope or OpenAI is reported at the first request, before
            anything is sent (``ConfigurationError`` naming the variable to set), so a
            module that builds an agent imports without a key.
        limits: a :class:`~agentkit.RunLimits` record of the limits below (``max_turns``
            to ``run_timeout``, and ``parallel_tool_calls_limit``). Each limit given as a
            flat keyword (``Agent(..., max_turns=5)``) still works and is deprecated
            (``DeprecationWarning``); not both ways.
        settings: a :class:`~agentkit.ModelSettings` of the model parameters below
            (``temperature`` to ``extra_body``). A key as a flat keyword
            (``Agent(..., temperature=0.2)``) still works and is deprecated; not both ways.
        max_turns: model calls per run before ``MaxTurnsExceededError`` (default 10).
        output_mode: ``"auto"`` (default) uses ``response_format`` JSON Schema when the
            provider supports it, else a ``final_result`` tool; or force one of them.
        max_output_retries: invalid structured answers fed back before
            ``OutputValidationError`` (default 2).
        max_tool_calls: tool calls per run (default 64; ``None``: no cap).
        tool_timeout: seconds a tool call may run (default 120; a tool's own ``timeout``
            wins; ``None``: no limit). Counted from when the call is queued.
        max_tool_output_chars: longest tool message sent back (default 32,000; cut with a
            note).
        max_repeated_calls: identical repeated calls told to the model before
            ``RepeatedToolCallError`` (default 2).
        max_tool_failures: rounds in a row one tool may fail before
            ``ToolFailureLimitExceededError`` (default 3).
        on_truncated: ``"raise"`` (default: ``OutputTruncatedError``) or ``"return"`` (the
            partial answer, ``RunResult.truncated`` set) when the model hits ``max_tokens``.
        parallel_tool_calls_limit: tool calls running at once (default 16): the size of the
            agent's thread pool for sync tools and the bound on async tool tasks per round.
            Threads left in calls that timed out do not count; at most as many again
            are kept for them, then ``ToolThreadsExhaustedError``.
        hooks: :class:`Hooks` around model and tool calls: the short form of an observer
            with four methods, called before the agent's ``observers``.
        approve: the :data:`Approver` asked before each call of a ``requires_approval``
            tool. Without one, such a call pauses the run (``RunResult.status ==
            "paused"``) and :meth:`resume` goes on with a person's decisions.
        run_timeout: seconds a whole run may take (default ``None``: no bound), then
            :class:`~agentkit.RunTimeoutError`. A sync tool still running is abandoned;
            a model call under way ends at the deadline too (in ``run``/``stream`` its
            request's timeouts are capped by it).
        temperature, top_p, max_tokens, seed, stop, presence_penalty, tool_choice,
            parallel_tool_calls, extra_body: model parameters sent with every request
            (``None``: not sent). ``extra_body`` carries vendor extras such as Qwen's
            ``enable_thinking``.
        params: any other wire fields to send with every request.
        name: the agent's name, shown in traces (``invoke_agent {name}``) and in
            ``RunResult.agent``; needed for handoffs (letters, digits, ``_``, ``-``).
        handoffs: agents (or :class:`~agentkit.Handoff` records, which set the history the
            target is sent) this agent may pass the conversation to: its model gets one
            ``transfer_to_<name>`` tool each, and the run goes on as the target. A list,
            ``agent.handoffs``, that may be appended to later (a specialist handing back to
            the agent that handed off to it). See ``docs/multi-agent.md``.
        context_cache: mark each request's stable prefix for DashScope's explicit context
            cache (``Provider.with_context_cache``; DashScope providers only).
        instrument: trace this agent's runs with OpenTelemetry (needs
            ``pip install 'agentkit[otel]'``; see ``docs/observability.md``).
            ``agentkit.tracing.instrument()`` turns tracing on for every agent.
        observers: :data:`~agentkit._observe.ObserverFactory` callables, each asked for
            a :class:`~agentkit._observe.RunObserver` of every run.
        store: where conversations are kept (``agentkit.sessions.SQLiteStore`` or
            ``PostgresStore``); runs given ``session=`` load and extend them.
        session_wait: seconds a run waits for its session while another run holds it,
            before ``SessionBusyError`` (default 0: at once).
        context_budget: a token budget for the history sent with a session run (``None``:
            all of it). Whole turns are left out, oldest first; what is stored is unchanged.
        summarize: called with the turns left out by ``context_budget``; the text it returns
            is sent after the instructions as a summary of them.

    ``instructions`` may also be a function of the :class:`~agentkit.RunContext` (its
    ``deps`` is the run's ``deps=``), for instructions per user; they are built at the
    start of every run, and a session run always sends the current ones.
    """

    @overload
    def __init__(
        self: Agent[str],
        model: str,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource] = (),
        instructions: Instructions = None,
        *,
        output_type: None = None,
        **options: Unpack[AgentOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: Agent[OutputT],
        model: str,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource] = (),
        instructions: Instructions = None,
        *,
        output_type: type[OutputT],
        **options: Unpack[AgentOptions],
    ) -> None: ...

    def __init__(
        self,
        model: str,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource] = (),
        instructions: Instructions = None,
        *,
        output_type: type[Any] | None = None,
        client: ChatClient | AsyncChatClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        provider: str | Provider | None = None,
        output_mode: Literal["auto", "json_schema", "tool"] = "auto",
        on_truncated: Literal["raise", "return"] = "raise",
        limits: RunLimits | None = None,
        settings: ModelSettings | None = None,
        hooks: Hooks | None = None,
        approve: Approver | None = None,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        instrument: bool = False,
        context_cache: bool = False,
        observers: Sequence[ObserverFactory] = (),
        store: Store | None = None,
        session_wait: float = 0.0,
        context_budget: int | None = None,
        summarize: Summarizer | None = None,
        handoffs: Sequence[Agent[Any] | Handoff] = (),
        **flat: Any,  # the fields of RunLimits and ModelSettings, one by one
    ) -> None:
        config = AgentConfig(
            model,
            tools,
            output_type=output_type,
            client=client,
            base_url=base_url,
            api_key=api_key,
            provider=provider,
            output_mode=output_mode,
            on_truncated=on_truncated,
            limits=limits,
            settings=settings,
            params=params,
            context_cache=context_cache,
            store=store,
            session_wait=session_wait,
            context_budget=context_budget,
            summarize=summarize,
            flat=flat,
            name=name,
        )
        self.model = model
        self.instructions = instructions
        self.output_type = output_type
        self.tools: list[Tool[..., Any]] = config.tools
        self.name = name
        self.store = store
        if isinstance(handoffs, Agent | Handoff) or not all(
            isinstance(item, Agent | Handoff) for item in handoffs
        ):
            raise ConfigurationError("handoffs is a list of agents or Handoff records")
        self.handoffs: list[Agent[Any] | Handoff] = list(handoffs)
        hooked = hooks_observer(hooks)  # Hooks are the first observer of each run
        found_observers = [*([hooked] if hooked is not None else []), *observers]
        if instrument:
            found_observers.append(instrumentation())
        self._observers = tuple(found_observers)
        # Agents used as tools: checked at each run's start for cycles (_delegate.py)
        self._delegates = any(isinstance(t, AgentTool) for t in config.tools)
        self._approve = approve
        self._config = config
        self._runtime = Runtime(
            provider=config.provider,
            api_key=config.api_key,
            client=client,
            sources=config.sources,
            parallel_limit=config.parallel_limit,
        )

    @property
    def limits(self) -> RunLimits:
        """The agent's :class:`~agentkit.RunLimits` (a run's ``limits=`` replaces them for
        that run: ``dataclasses.replace(agent.limits, max_turns=2)`` changes one)."""
        return self._config.limits

    @property
    def needs_deps(self) -> tuple[str, ...]:
        """The names of the agent's own tools that declare a ``RunContext[T]`` whose ``T``
        cannot be ``None``: a run of this agent needs ``deps=`` (tool sources' tools are
        known only when a run starts)."""
        return self._config.settings.needs_deps

    def scrub(self, text: str) -> str:
        """``text`` with this agent's API key masked (``***``) in every form it could take
        (quoted, escaped, percent-encoded): for a server that shows a run's errors."""
        return self._runtime.scrub(text)

    def as_tool(
        self,
        name: str | None = None,
        description: str | None = None,
        input_type: type[BaseModel] | None = None,
    ) -> Tool[..., Any]:
        """This agent as a tool another agent can call: each call is a run of this agent
        on one request, inside the caller's run.

        The tool's input is one ``request: str``, or the fields of ``input_type`` (a
        pydantic model; the request is then its JSON). Its output is this agent's answer.
        The sub-run shares the caller's ``deps``, principal, deadline and cancellation; its
        usage is added to the caller's ``usage``; its model calls and tool calls count
        against the top-level run's ``max_turns`` and ``max_tool_calls`` (one budget for
        every agent of the run, parallel and nested ones too) as well as its own agent's
        limits, whichever runs out first; in a streamed run its events reach the
        caller's stream as :class:`~agentkit.SubAgentEvent` while the call runs. Several
        calls in one round run in parallel, and a sub-agent may use agents as tools too;
        a cycle is a ``ConfigurationError`` before the caller's first request.

        Args:
            name: the tool's name (default: this agent's ``name``, which is then required).
            description: what the caller's model is told (default: from the agent's name
                and instructions).
            input_type: a pydantic model for structured input.

        A sub-agent's ``requires_approval`` call with no ``approve=`` of its own pauses
        the whole run: the caller's ``RunResult.pending`` lists it with its
        ``PendingCall.path`` (the agents' names from the top down) and ``via``, and
        :meth:`resume` (with the call's ``PendingCall.key`` or the ``PendingCall`` as its
        decision's key) settles it and goes on through every level to the final answer.
        """
        return agent_tool(self, name, description, input_type)

    def __repr__(self) -> str:
        names = [t.name for t in self.tools]
        return f"Agent(model={self.model!r}, tools={names!r})"

    # -- the entry points -----------------------------------------------------------------

    def run(
        self,
        prompt: Prompt,
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        session: str | None = None,
        principal: Principal | None = None,
    ) -> RunResult[OutputT]:
        """Run to the final answer and return the :class:`~agentkit.RunResult`.

        ``prompt`` is a user message, or a transcript to continue (``RunResult.messages``
        plus a new user message). ``deps`` is handed to tools as ``RunContext.deps``
        (``context=``, its older name, still works and warns); ``limits`` (a
        :class:`~agentkit.RunLimits`) replaces all of the agent's limits for this run
        (``max_turns=``, the older way to change one, still works and warns).
        ``principal`` (a :class:`~agentkit.Principal`) is who the run acts for, handed to
        tools as ``RunContext.principal``.

        With ``session`` (the agent needs a ``store``), the stored conversation is loaded,
        ``prompt`` (a user message, or new messages) is added to it, and what the run adds
        is stored as it goes. ``SessionBusyError`` if another run holds the session.

        A ``requires_approval`` call with no ``approve=`` callback pauses the run:
        ``status == "paused"``, ``pending`` lists the calls, and :meth:`resume` goes on.
        """
        options = (deps, context, max_turns, limits, principal)
        return self._result(consume(*self._start(drive, False, options, prompt, session)))

    def resume(
        self,
        paused: str | RunResult[Any],
        decisions: Mapping[Any, Decision],
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        principal: Principal | None = None,
        decided_by: str | None = None,
    ) -> RunResult[OutputT]:
        """Go on with a paused run, given a person's decisions, and return the result.

        ``paused`` is a session id (with a ``store``) or the paused ``RunResult`` itself (a
        session run's result resumes its session).
        ``decisions`` maps each pending call's id (or the ``PendingCall``, which also binds
        the decision to the arguments shown) to ``True`` (run it), ``False`` (refuse) or a
        refusal reason for the model. Decisions that do not match the pending calls raise
        ``ResumeError`` and change nothing. On a session whose last run crashed mid-round,
        ``resume(session, {})`` settles that round: recorded results are used, calls that
        never started run, and a side-effect call that started and never finished is in
        doubt (``RunResult.in_doubt``; the model is told) unless its tool is idempotent.
        ``decided_by`` names who decided (an id the deployment chose, never a key): each
        decided call's observer ``approval`` call (the tracing ring's ``agentkit.approval``
        span event) reports it, with the time of this resume, on ``PlannedCall.decided_by``
        and ``decided_at``.
        """
        options = (deps, context, max_turns, limits, principal)
        resumed = self._resume(drive, False, options, paused, decisions, decided_by)
        return self._result(consume(*resumed))

    def resume_stream(
        self,
        paused: str | RunResult[Any],
        decisions: Mapping[Any, Decision],
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        principal: Principal | None = None,
        decided_by: str | None = None,
    ) -> Generator[AgentEvent, None, None]:
        """:meth:`resume`, streamed: the events of the resumed run as they happen (the
        decided calls' ``ToolCallStarted`` and ``ToolResult``, then each round's deltas, as
        in :meth:`stream`); the last event is ``RunFinished`` with the result."""
        options = (deps, context, max_turns, limits, principal)
        return self._resume(drive, True, options, paused, decisions, decided_by)[0]

    def stream(
        self,
        prompt: Prompt,
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        session: str | None = None,
        principal: Principal | None = None,
    ) -> Generator[AgentEvent, None, None]:
        """Run with a streamed model call per round, yielding events as they happen.

        Text, reasoning and tool-argument deltas as they arrive, then per round
        ``ModelRoundFinished``, ``ToolCallStarted`` and ``ToolResult``; the last event is
        ``RunFinished`` with the result. Rounds the provider refuses to stream with tools
        are sent unstreamed and their text arrives as one delta. Stopping the iteration
        early (``break``, ``close()``) closes the response stream. ``session`` as in
        :meth:`run` (the session is claimed when the iteration starts).
        """
        options = (deps, context, max_turns, limits, principal)
        return self._start(drive, True, options, prompt, session)[0]

    async def run_async(
        self,
        prompt: Prompt,
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        session: str | None = None,
        principal: Principal | None = None,
    ) -> RunResult[OutputT]:
        """The asynchronous :meth:`run`: async tools run as tasks, sync tools in threads."""
        options = (deps, context, max_turns, limits, principal)
        events, plan = self._start(drive_async, False, options, prompt, session)
        return self._result(await consume_async(events, plan))

    async def resume_async(
        self,
        paused: str | RunResult[Any],
        decisions: Mapping[Any, Decision],
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        principal: Principal | None = None,
        decided_by: str | None = None,
    ) -> RunResult[OutputT]:
        """The asynchronous :meth:`resume`."""
        options = (deps, context, max_turns, limits, principal)
        events, plan = self._resume(drive_async, False, options, paused, decisions, decided_by)
        return self._result(await consume_async(events, plan))

    def resume_stream_async(
        self,
        paused: str | RunResult[Any],
        decisions: Mapping[Any, Decision],
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        principal: Principal | None = None,
        decided_by: str | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        """The asynchronous :meth:`resume_stream`. To stop early, close it:
        ``async with contextlib.aclosing(agent.resume_stream_async(...)) as events: ...``."""
        options = (deps, context, max_turns, limits, principal)
        return self._resume(drive_async, True, options, paused, decisions, decided_by)[0]

    def stream_async(
        self,
        prompt: Prompt,
        *,
        deps: Any = None,
        context: Any = None,
        max_turns: int | None = None,
        limits: RunLimits | None = None,
        session: str | None = None,
        principal: Principal | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        """The asynchronous :meth:`stream`. To stop early, close it:
        ``async with contextlib.aclosing(agent.stream_async(...)) as events: ...``."""
        options = (deps, context, max_turns, limits, principal)
        return self._start(drive_async, True, options, prompt, session)[0]

    # -- resources ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool and the tool threads this agent made, and its tool
        sources (idempotent).

        A client passed in is left open. An async client can only be closed from its event
        loop: use ``await agent.aclose()`` (or ``async with agent``) in async code.
        """
        self._runtime.close_own()
        for source in self._runtime.sources:
            source.close()

    async def aclose(self) -> None:
        """Close everything :meth:`close` does, and the async client made for this loop
        (those of other live loops close when their loop ends)."""
        await self._runtime.close_loop_client()
        self._runtime.close_own()
        for source in self._runtime.sources:
            await source.aclose()

    def __enter__(self) -> Agent[OutputT]:
        for source in self._runtime.sources:
            source.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Agent[OutputT]:
        for source in self._runtime.sources:
            await source.aopen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- a run, written once: the entry point only chooses its driver ---------------------

    def _result(self, result: RunResult[Any]) -> RunResult[OutputT]:
        return cast("RunResult[OutputT]", result)  # a string: no generic alias built per run

    def _start(
        self,
        driver: Driver[EventsT],
        stream: bool,
        options: _Options,
        prompt: Prompt,
        session: str | None,
    ) -> tuple[EventsT, RunPlan]:
        """A new run, driven by ``driver``: its events (nothing runs before the first is
        asked for) and its plan; the options are checked now."""
        deps, limits, principal = self._checked(options)
        plan = self._plan(stream)
        if session is not None:
            steps = session_steps(self, plan, session, prompt, deps, principal, limits)
        else:
            steps = self._fresh_steps(plan, prompt, deps, principal, limits)
        return driver(self._runtime, steps, plan), plan

    def _resume(
        self,
        driver: Driver[EventsT],
        stream: bool,
        options: _Options,
        paused: str | RunResult[Any],
        decisions: Mapping[Any, Decision],
        decided_by: str | None,
    ) -> tuple[EventsT, RunPlan]:
        """A resumed run, as :meth:`_start`; a session's result resumes its session."""
        decisions = decisions_by(decisions, decided_by)
        deps, limits, principal = self._checked(options)
        if isinstance(paused, RunResult) and paused.session is not None and self.store:
            paused = paused.session
        plan = self._plan(stream)
        if isinstance(paused, RunResult):
            _check_paused(paused)
            steps = self._resumed_steps(plan, paused, decisions, deps, principal, limits)
        else:
            steps = session_steps(self, plan, paused, None, deps, principal, limits, decisions)
        return driver(self._runtime, steps, plan), plan

    def _checked(self, options: _Options) -> tuple[Any, RunLimits | None, Principal | None]:
        """A run's deps, limits and principal, checked before anything runs."""
        deps, context, max_turns, limits, principal = options
        deps = run_deps(deps, context)
        limits = self._config.run_limits(max_turns, limits)
        _check_principal(principal)
        if self._delegates:
            check_agent_tools(self)
        return deps, limits, principal

    def _plan(self, stream: bool) -> RunPlan:
        plan = RunPlan(stream, self._approve, None, self._runtime.forget_stream)
        plan.observed = observing(self._observers)  # agentkit.instrument() may come later
        return plan

    def _fresh_steps(
        self,
        plan: RunPlan,
        prompt: Prompt,
        deps: Any,
        principal: Principal | None,
        limits: RunLimits | None,
    ) -> Steps:
        found = yield from self._listed()
        loop = self._new_loop(prompt, deps, principal, limits, found)
        return (yield from self._loop_steps(loop, plan, None))

    def _resumed_steps(
        self,
        plan: RunPlan,
        paused: RunResult[Any],
        decisions: Mapping[Any, Decision],
        deps: Any,
        principal: Principal | None,
        limits: RunLimits | None,
    ) -> Steps:
        found = yield from self._listed()
        loop, calls = self._resumed_loop(paused, decisions, deps, principal, limits, found)
        return (yield from self._loop_steps(loop, plan, calls))

    def _listed(self) -> Generator[Effect, Any, Found]:
        """Effects: the run's tool sources asked for their tools (in a handoff graph, every
        agent's)."""
        if self.handoffs:
            return (yield from team_tools(self))
        return (yield LIST_TOOLS) if self._runtime.sources else None

    def _loop_steps(self, loop: RunLoop, plan: RunPlan, first: list[PlannedCall] | None) -> Steps:
        """The run of ``loop`` as effects, once it is made: its observer (when anyone
        observes runs), the driver's start, then the run (``first``: a reopened round)."""
        plan.loop = loop
        if not loop.path:  # a top-level run (a sub-run's loop has its path already)
            loop.path = (loop.settings.agent or self.name or "agent",)  # who has it now
        if plan.observed:
            plan.observer = loop.observer = observer_for(
                self._observers, lambda: self._run_info(loop, plan.stream)
            )
            make_current(plan.observer)
        yield Begin(loop)
        return (yield from run_steps(loop, plan, first))

    def _loop_events(
        self, driver: Driver[EventsT], loop: RunLoop, stream: bool, first: list[PlannedCall] | None
    ) -> EventsT:
        """The driven events of ``loop``, made elsewhere (an agent used as a tool)."""
        plan = self._plan(stream)
        return driver(self._runtime, self._loop_steps(loop, plan, first), plan)

    def _events(
        self, loop: RunLoop, *, stream: bool, first: list[PlannedCall] | None = None
    ) -> Generator[AgentEvent, None, None]:
        return self._loop_events(drive, loop, stream, first)

    def _events_async(
        self, loop: RunLoop, *, stream: bool, first: list[PlannedCall] | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        return self._loop_events(drive_async, loop, stream, first)

    def _run_info(self, loop: RunLoop, streamed: bool) -> RunInfo:
        request = loop.settings.base_request
        tools = request.get("tools") or ()
        return RunInfo(
            agent_name=self.name,
            model=loop.settings.model,
            provider=self._runtime.provider_name,
            base_url=self._runtime.base_url,
            params={k: v for k, v in request.items() if k not in ("tools", "model")},
            tools=[t.get("function", {}).get("name", "") for t in tools],
            streamed=streamed,
            conversation_id=loop.session,
            caller=None if loop.caller is None else loop.caller[0],
            caller_call_id=None if loop.caller is None else loop.caller[1],
        )

    def _new_loop(
        self,
        prompt: Prompt,
        deps: Any,
        principal: Principal | None,
        limits: RunLimits | None,
        found: Found = None,
    ) -> RunLoop:
        config = self._config
        team = team_of(self, limits, deps, found)
        if team is not None:  # the agent that has a transcript goes on, sent what it was sent
            given = config.messages_for(None, prompt)
            agent, history, summary = team.view([m for m in given if m["role"] != "system"])
            return team.new_loop(
                agent,
                [*team.system(agent, summary, principal), *history],
                principal=principal,
                tools_with_stream=self._runtime.tools_with_stream,
            )
        own = found if isinstance(found, list) else None
        if own:  # a source may bring agent tools (a cycle through them is refused too)
            check_agent_tools(self, own)
        return config.new_loop(
            config.messages_for(self.instructions, prompt, deps, principal),
            config.settings_for(own),
            limits,
            deps=deps,
            principal=principal,
            tools_with_stream=self._runtime.tools_with_stream,
        )

    def _resumed_loop(
        self,
        paused: RunResult[Any],
        decisions: Mapping[Any, Decision],
        deps: Any,
        principal: Principal | None,
        limits: RunLimits | None,
        found: Found,
    ) -> tuple[RunLoop, list[PlannedCall]]:
        """A loop that goes on from a paused ``RunResult`` (no store)."""
        history = [m for m in paused.messages if m.get("role") != "system"]
        config = self._config
        team = team_of(self, limits, deps, found)
        if team is not None:  # the agent whose round paused goes on with it
            agent, history, summary = team.view(history)
            settings = team.settings(agent)
        else:
            settings = config.settings_for(found if isinstance(found, list) else None)
        check_settler(None, history, (agent if team is not None else self).name)
        round_ = settle_open_round(
            None, history, paused.resume_state, (), settings.tools, decisions
        )
        if team is not None:
            loop = team.new_loop(
                agent,
                [*team.system(agent, summary, principal), *history],
                principal=principal,
                tools_with_stream=self._runtime.tools_with_stream,
            )
        else:
            loop = config.new_loop(
                [*config.system_messages(self.instructions, deps, None, principal), *history],
                settings,
                limits,
                deps=deps,
                principal=principal,
                tools_with_stream=self._runtime.tools_with_stream,
            )
        return loop, loop.resume_round(round_.plan, round_.mark, round_.nested)


def _check_paused(paused: RunResult[Any]) -> None:
    if paused.status != "paused" or paused.resume_state is None:
        raise ResumeError("this result is not paused: there is nothing to resume")
    history = [m for m in paused.messages if m.get("role") != "system"]
    if not open_calls(history):
        raise ResumeError("this result's transcript has no open round to resume")


def _check_principal(principal: Principal | None) -> None:
    if principal is not None and not isinstance(principal, Principal):
        raise ConfigurationError(
            "principal must be an agentkit.Principal, e.g. Principal(id='dana', "
            "roles=frozenset({'patient'}))"
        )
