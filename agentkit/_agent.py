"""``Agent``: multi-round function calling, as thin sync and async drivers around the loop core.

The core (:mod:`agentkit._loop`) decides everything: the request, which calls run, what is
appended, when the run ends. The drivers here only perform: call the client (plain or
streamed), run the planned tool calls concurrently (sync tools in a shared bounded thread
pool, async tools as tasks), apply timeouts, time the calls, call hooks and yield events::

    from agentkit import Agent, tool

    @tool
    def get_current_time() -> str:
        \"\"\"The current time.\"\"\"
        ...

    agent = Agent("qwen-plus", [get_current_time], "You are a helpful assistant.")
    result = agent.run("What time is it?")
    print(result.output, result.usage.total_tokens)
    follow_up = agent.run([*result.messages, {"role": "user", "content": "And in Tokyo?"}])

Cancellation: cancelling a task running :meth:`Agent.run_async` (``task.cancel()``, a
timeout) stops the run at its next await, cancels the tool tasks in flight, closes the
response stream and re-raises ``asyncio.CancelledError`` unchanged (so ``asyncio.timeout``,
``TaskGroup`` and friends keep working); the exception carries ``.messages``, a resendable
transcript. Ctrl-C during :meth:`Agent.run` does the same with ``KeyboardInterrupt``. A sync
tool already running in a thread cannot be stopped: it finishes in the background and its
result is dropped. Every other exception that escapes a run carries ``.messages`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Generic, Literal, TypeAlias, TypedDict, TypeVar, Unpack, cast, overload

from ._calls import PlannedCall
from ._client import AsyncChatClient, ChatClient
from ._context import Principal, RunContext
from ._errors import ConfigurationError
from ._events import AgentEvent, RunFinished, StreamDelta
from ._loop import RunLoop
from ._loop_settings import LoopSettings, OutputMode
from ._loop_text import clean_data, clean_text
from ._observe import (
    ObserverFactory,
    RunInfo,
    RunObserver,
    observer_for,
    observing,
    scoped,
    scoped_async,
)
from ._providers import Provider, resolve_api_key, resolve_provider
from ._records import ModelSettings, RunLimits, loop_limits, split_options
from ._result import PendingCall, RunResult
from ._session import (
    Decision,
    ResumeError,
    SessionJournal,
    Summarizer,
    fit_budget,
    settle_open_round,
    tool_messages,
)
from ._sources import ToolSource
from ._steps import (
    Approver,
    Callback,
    CallModel,
    Effect,
    Emit,
    Hooks,
    RunPlan,
    StartCalls,
    run_steps,
)
from ._store import Claim, SessionRecord, Store, check_session_id, open_calls
from ._threads import AsyncBatch, SyncBatch, ToolThreads, run_timed_out
from ._tool import Tool, tool
from ._wire import ChatCompletion

__all__ = ["Agent", "AgentOptions", "Approver", "Hooks", "Prompt"]

OutputT = TypeVar("OutputT")

Prompt: TypeAlias = str | Sequence[Mapping[str, Any]]
"""A user prompt, or a whole transcript of wire-format messages (e.g. ``RunResult.messages``
with a new user message appended)."""

Instructions: TypeAlias = "str | Callable[[RunContext[Any]], str] | None"
"""The system message: a text, or a function of the run's context that returns one."""


class AgentOptions(TypedDict, total=False):
    """The keyword options of :class:`Agent` (see its docstring for each one)."""

    client: ChatClient | AsyncChatClient | None
    base_url: str | None
    api_key: str | None
    provider: str | Provider | None
    max_turns: int
    output_mode: Literal["auto", "json_schema", "tool"]
    max_output_retries: int
    max_tool_calls: int | None
    tool_timeout: float | None
    max_tool_output_chars: int | None
    max_repeated_calls: int
    max_tool_failures: int
    on_truncated: Literal["raise", "return"]
    parallel_tool_calls_limit: int
    limits: RunLimits | None
    settings: ModelSettings | None
    hooks: Hooks | None
    approve: Approver | None
    run_timeout: float | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    stop: str | list[str] | list[int] | list[list[int]] | None
    presence_penalty: float | None
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool | None
    extra_body: Mapping[str, Any] | None
    params: Mapping[str, Any] | None
    name: str | None
    instrument: bool
    context_cache: bool
    observers: Sequence[ObserverFactory]
    store: Store | None
    session_wait: float
    context_budget: int | None
    summarize: Summarizer | None


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
            missing key for DashScope or OpenAI is reported here, before any request.
        limits: a :class:`~agentkit.RunLimits` record of the limits below (``max_turns``
            to ``run_timeout``); each limit may instead be given as a flat keyword, not both.
        settings: a :class:`~agentkit.ModelSettings` of the model parameters below
            (``temperature`` to ``extra_body``); a key may instead be a flat keyword, not both.
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
        hooks: :class:`Hooks` around model and tool calls.
        approve: the :data:`Approver` asked before each call of a ``requires_approval``
            tool. Without one, such a call pauses the run (``RunResult.status ==
            "paused"``) and :meth:`resume` goes on with a person's decisions.
        run_timeout: seconds a whole run may take (default ``None``: no bound), then
            :class:`~agentkit.RunTimeoutError`. A sync tool still running is abandoned;
            in ``run``/``stream`` a model call under way ends within the client's own
            request deadline, and the run ends right after it.
        temperature, top_p, max_tokens, seed, stop, presence_penalty, tool_choice,
            parallel_tool_calls, extra_body: model parameters sent with every request
            (``None``: not sent). ``extra_body`` carries vendor extras such as Qwen's
            ``enable_thinking``.
        params: any other wire fields to send with every request.
        name: the agent's name, shown in traces (``invoke_agent {name}``).
        context_cache: mark each request's stable prefix for DashScope's explicit context
            cache (``Provider.with_context_cache``; DashScope providers only).
        instrument: trace this agent's runs with OpenTelemetry (needs
            ``pip install 'agentkit[otel]'``; see ``docs/observability.md``).
            ``agentkit.instrument()`` turns tracing on for every agent.
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
        **flat: Any,  # the fields of RunLimits and ModelSettings, one by one
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string, e.g. 'qwen-plus'")
        limits, wire = split_options(flat, limits, settings)
        if output_type is not None and not (
            isinstance(output_type, type) and hasattr(output_type, "model_validate_json")
        ):
            raise ConfigurationError("output_type must be a pydantic model class")
        if isinstance(tools, Tool | ToolSource) or callable(tools):
            raise ConfigurationError("tools must be a list of tools, e.g. tools=[get_weather]")
        if client is not None and not isinstance(client, ChatClient | AsyncChatClient):
            raise ConfigurationError("client must be a ChatClient or an AsyncChatClient")

        if client is not None:
            chosen = client.provider
            key = None
            if context_cache and not chosen.context_cache:
                raise ConfigurationError(
                    "context_cache=True needs a client built with it: "
                    "ChatClient(provider=PROVIDERS['dashscope'].with_context_cache(), ...)"
                )
        else:
            chosen = resolve_provider(provider, base_url)
            if context_cache:
                chosen = chosen.with_context_cache()  # refused for a provider without one
            key = resolve_api_key(chosen, api_key)  # a missing key is reported now
        mode: OutputMode = "text"
        if output_type is not None:
            if output_mode == "auto":
                mode = "json_schema" if chosen.json_schema_output else "tool"
            elif output_mode in ("json_schema", "tool"):
                mode = output_mode
            else:
                raise ConfigurationError("output_mode must be 'auto', 'json_schema' or 'tool'")

        wire.update(params or {})
        for reserved in ("model", "messages", "stream", "tools"):
            if reserved in wire:
                raise ConfigurationError(f"{reserved!r} is set by the agent, not by params")

        self.model = model
        self.instructions = instructions
        self.output_type = output_type
        items = list(tools)
        self._sources = [item for item in items if isinstance(item, ToolSource)]
        self.tools: list[Tool[..., Any]] = [
            item if isinstance(item, Tool) else tool(item)
            for item in items
            if not isinstance(item, ToolSource)
        ]
        self._settings_options: dict[str, Any] = dict(
            params=wire,
            **loop_limits(limits),
            output_type=output_type,
            output_mode=mode,
            on_truncated=on_truncated,
            provider=chosen,
        )
        self._settings = LoopSettings(model, self.tools, **self._settings_options)
        # the sources' tool lists of the last run and the settings derived from them
        self._sourced: tuple[list[Sequence[Tool[..., Any]]], LoopSettings] | None = None
        self._hooks = hooks or Hooks()
        self.name = name
        found_observers = list(observers)
        if instrument:
            found_observers.append(_tracing_factory())
        self._observers = tuple(found_observers)
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError("store must be a session store, e.g. SQLiteStore('bot.db')")
        if context_budget is not None and context_budget < 1:
            raise ConfigurationError("context_budget must be a positive number of tokens")
        self.store = store
        self._session_wait = session_wait
        self._context_budget = context_budget
        self._summarize = summarize
        self._approve = approve
        self._limits = limits
        self._parallel_limit = limits.parallel_tool_calls_limit
        self._tools_with_stream = chosen.tools_with_stream
        self._client_config: dict[str, Any] = {"provider": chosen, "api_key": key}
        self._given_client = client
        self._sync_client: ChatClient | None = client if isinstance(client, ChatClient) else None
        self._async_client: AsyncChatClient | None = (
            client if isinstance(client, AsyncChatClient) else None
        )
        # One async client (one connection pool) per live event loop, with the async
        # generator that closes it when that loop shuts down.
        self._loop_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncChatClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._threads: ToolThreads | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        names = [t.name for t in self.tools]
        return f"Agent(model={self.model!r}, tools={names!r})"

    # -- public drivers -----------------------------------------------------------------

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
        (``context=`` is its older name and still works);
        ``max_turns`` overrides the agent's for this run; ``limits`` (a
        :class:`~agentkit.RunLimits`) replaces all of the agent's limits for this run.
        ``principal`` (a :class:`~agentkit.Principal`) names who the run is for; tools and
        an instructions function read it as ``ctx.principal``.

        With ``session`` (the agent needs a ``store``), the stored conversation is loaded,
        ``prompt`` (a user message, or new messages) is added to it, and what the run adds
        is stored as it goes. ``SessionBusyError`` if another run holds the session.

        A ``requires_approval`` call with no ``approve=`` callback pauses the run:
        ``status == "paused"``, ``pending`` lists the calls, and :meth:`resume` goes on.
        """
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if session is not None:
            return self._consume(
                self._session_events(prompt, session, context, limits, principal=principal)
            )
        loop = self._new_loop(prompt, context, limits, self._source_tools(), principal)
        return self._consume(self._observed(loop, self._drive(loop, stream=False)), loop)

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
        """
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if isinstance(paused, RunResult) and paused.session is not None and self.store:
            paused = paused.session  # a session's pause lives in the store: resume it there
        if isinstance(paused, RunResult):
            loop, calls = self._resumed_loop(paused, decisions, context, limits, principal)
            events = self._observed(loop, self._drive(loop, stream=False, first=calls))
            return self._consume(events, loop)
        return self._consume(
            self._session_events(
                None, paused, context, limits, decisions=decisions, principal=principal
            )
        )

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
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if session is not None:
            return self._session_events(
                prompt, session, context, limits, stream=True, principal=principal
            )
        loop = self._new_loop(prompt, context, limits, self._source_tools(), principal)
        return self._observed(loop, self._drive(loop, stream=True), streamed=True)

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
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if session is not None:
            events = self._session_events_async(
                prompt, session, context, limits, principal=principal
            )
            return await self._consume_async(events)
        loop = self._new_loop(prompt, context, limits, await self._source_tools_async(), principal)
        driven = self._observed_async(loop, self._drive_async(loop, stream=False))
        return await self._consume_async(driven, loop)

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
    ) -> RunResult[OutputT]:
        """The asynchronous :meth:`resume`."""
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if isinstance(paused, RunResult) and paused.session is not None and self.store:
            paused = paused.session
        if isinstance(paused, RunResult):
            await self._source_tools_async()
            loop, calls = self._resumed_loop(paused, decisions, context, limits, principal)
            driven = self._observed_async(loop, self._drive_async(loop, stream=False, first=calls))
            return await self._consume_async(driven, loop)
        events = self._session_events_async(
            None, paused, context, limits, decisions=decisions, principal=principal
        )
        return await self._consume_async(events)

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
        context = _deps(deps, context)
        limits = self._run_limits(max_turns, limits)
        if session is not None:
            return self._session_events_async(
                prompt, session, context, limits, stream=True, principal=principal
            )
        if self._sources:
            return self._stream_with_sources(prompt, context, limits, principal)
        loop = self._new_loop(prompt, context, limits, None, principal)
        return self._observed_async(loop, self._drive_async(loop, stream=True), streamed=True)

    async def _stream_with_sources(
        self, prompt: Prompt, context: Any, limits: RunLimits | None, principal: Principal | None
    ) -> AsyncGenerator[AgentEvent, None]:
        loop = self._new_loop(prompt, context, limits, await self._source_tools_async(), principal)
        driven = self._observed_async(loop, self._drive_async(loop, stream=True), streamed=True)
        async with contextlib.aclosing(driven) as events:
            async for event in events:
                yield event

    def _consume(
        self, events: Generator[AgentEvent, None, None], loop: RunLoop | None = None
    ) -> RunResult[OutputT]:
        result: RunResult[Any] | None = None
        try:
            for event in events:
                if isinstance(event, RunFinished):
                    result = event.result
        except BaseException as exc:  # e.g. Ctrl-C between two events
            events.close()
            if loop is not None:
                loop.fail(exc)
            raise
        assert result is not None
        return cast(RunResult[OutputT], result)

    async def _consume_async(
        self, events: AsyncGenerator[AgentEvent, None], loop: RunLoop | None = None
    ) -> RunResult[OutputT]:
        result: RunResult[Any] | None = None
        try:
            async with contextlib.aclosing(events) as running:
                async for event in running:
                    if isinstance(event, RunFinished):
                        result = event.result
        except BaseException as exc:
            if loop is not None:
                loop.fail(exc)
            raise
        assert result is not None
        return cast(RunResult[OutputT], result)

    # -- sessions -----------------------------------------------------------------------

    def _session_store(self, session: str) -> Store:
        check_session_id(session)
        if self.store is None:
            raise ConfigurationError(
                "session= needs a store: Agent(..., store=SQLiteStore('bot.db'))"
            )
        return self.store

    def _session_events(
        self,
        prompt: Prompt | None,
        session: str,
        context: Any,
        limits: RunLimits | None,
        *,
        stream: bool = False,
        decisions: Mapping[Any, Decision] | None = None,
        principal: Principal | None = None,
    ) -> Generator[AgentEvent, None, None]:
        store = self._session_store(session)
        found = self._source_tools()
        claim = store.claim(session, wait=self._session_wait)
        try:
            record = store.load(claim)
            plan = _SessionPlan(self, record, prompt, context, limits, decisions, found, principal)
            if plan.closing:
                store.append(claim, plan.closing, close_round=True)
            plan.attach(store, claim)
            events = self._observed(
                plan.loop, self._drive(plan.loop, stream=stream, first=plan.calls), streamed=stream
            )
            with contextlib.closing(events):
                for event in events:
                    yield plan.finished(event)
        except BaseException:
            with contextlib.suppress(Exception):  # the run's own error is what counts
                store.release(claim)
            raise
        store.release(claim)

    async def _session_events_async(
        self,
        prompt: Prompt | None,
        session: str,
        context: Any,
        limits: RunLimits | None,
        *,
        stream: bool = False,
        decisions: Mapping[Any, Decision] | None = None,
        principal: Principal | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        store = self._session_store(session)
        found = await self._source_tools_async()
        claim = await store.claim_async(session, wait=self._session_wait)
        try:
            record = await store.load_async(claim)
            plan = _SessionPlan(self, record, prompt, context, limits, decisions, found, principal)
            if plan.closing:
                await store.append_async(claim, plan.closing, close_round=True)
            plan.attach(store, claim)
            events = self._observed_async(
                plan.loop,
                self._drive_async(plan.loop, stream=stream, first=plan.calls),
                streamed=stream,
            )
            async with contextlib.aclosing(events) as running:
                async for event in running:
                    yield plan.finished(event)
        except BaseException:
            with contextlib.suppress(Exception):  # the run's own error is what counts
                await store.release_async(claim)
            raise
        await store.release_async(claim)

    def _resumed_loop(
        self,
        paused: RunResult[Any],
        decisions: Mapping[Any, Decision],
        context: Any,
        limits: RunLimits | None,
        principal: Principal | None = None,
    ) -> tuple[RunLoop, list[PlannedCall]]:
        """A loop that goes on from a paused ``RunResult`` (no store)."""
        if paused.status != "paused" or paused.resume_state is None:
            raise ResumeError("this result is not paused: there is nothing to resume")
        history = [m for m in paused.messages if m.get("role") != "system"]
        if not open_calls(history):
            raise ResumeError("this result's transcript has no open round to resume")
        settings = self._settings_with(self._source_tools()) if self._sources else self._settings
        round_ = settle_open_round(
            None, history, paused.resume_state, (), settings.tools, decisions
        )
        settings, turns = self._limited(settings, limits)
        loop = RunLoop(
            settings,
            [*self._system_messages(context, None, principal), *history],
            deps=context,
            max_turns=turns,
            tools_with_stream=self._tools_with_stream,
            principal=principal,
        )
        return loop, loop.resume_round(round_.plan)

    def _system_messages(
        self, context: Any, summary: str | None, principal: Principal | None = None
    ) -> list[dict[str, Any]]:
        instructions = self.instructions
        if callable(instructions):
            instructions = instructions(RunContext(deps=context, principal=principal))
            if not isinstance(instructions, str):
                raise ConfigurationError("an instructions function must return a str")
        if summary:
            summary = f"Summary of the earlier conversation:\n{summary}"
            instructions = f"{instructions}\n\n{summary}" if instructions else summary
        return [] if instructions is None else [{"role": "system", "content": instructions}]

    # -- resources ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool and the tool threads this agent made, and its tool
        sources (idempotent).

        A client passed in is left open. An async client can only be closed from its event
        loop: use ``await agent.aclose()`` (or ``async with agent``) in async code.
        """
        self._close_own()
        for source in self._sources:
            source.close()

    def _close_own(self) -> None:
        with self._lock:
            client = self._sync_client if self._given_client is None else None
            self._sync_client = None if self._given_client is None else self._sync_client
            threads, self._threads = self._threads, None
        if client is not None:
            client.close()
        if threads is not None:
            threads.close()

    async def aclose(self) -> None:
        """Close everything :meth:`close` does, and the async client made for this loop
        (those of other live loops close when their loop ends)."""
        running = asyncio.get_running_loop()
        with self._lock:
            entry = self._loop_clients.pop(running, None)
        if entry is not None:
            await entry[1].aclose()  # closes the async client
        self._close_own()
        for source in self._sources:
            await source.aclose()

    def __enter__(self) -> Agent[OutputT]:
        for source in self._sources:
            source.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Agent[OutputT]:
        for source in self._sources:
            await source.aopen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- setup --------------------------------------------------------------------------

    def _new_loop(
        self,
        prompt: Prompt,
        context: Any,
        limits: RunLimits | None,
        found: list[Sequence[Tool[..., Any]]] | None = None,
        principal: Principal | None = None,
    ) -> RunLoop:
        settings, turns = self._limited(
            self._settings_with(found) if found else self._settings, limits
        )
        return RunLoop(
            settings,
            self._messages_for(prompt, context, principal),
            deps=context,
            max_turns=turns,
            tools_with_stream=self._tools_with_stream,
            principal=principal,
        )

    def _run_limits(self, max_turns: int | None, limits: RunLimits | None) -> RunLimits | None:
        """This run's limits, when ``max_turns=`` or ``limits=`` overrides the agent's."""
        if limits is None:
            if max_turns is None:
                return None
            return dataclasses.replace(self._limits, max_turns=max_turns)
        if not isinstance(limits, RunLimits):
            raise ConfigurationError("limits must be a RunLimits record")
        if max_turns is not None:
            raise ConfigurationError(
                "max_turns is given both as a keyword and in limits=; give it in one place"
            )
        if limits.parallel_tool_calls_limit != self._parallel_limit:
            raise ConfigurationError(
                "parallel_tool_calls_limit sizes the agent's thread pool and cannot change "
                "for one run; keep the agent's value in a run's limits="
            )
        return limits

    def _limited(
        self, settings: LoopSettings, limits: RunLimits | None
    ) -> tuple[LoopSettings, int | None]:
        """The settings and turn cap for a run under ``limits`` (``None``: the agent's)."""
        if limits is None or limits == self._limits:
            return settings, None
        if dataclasses.replace(limits, max_turns=self._limits.max_turns) == self._limits:
            return settings, limits.max_turns
        options = {**self._settings_options, **loop_limits(limits)}
        return LoopSettings(self.model, list(settings.tools.values()), **options), None

    def _source_tools(self) -> list[Sequence[Tool[..., Any]]]:
        return [source.tools() for source in self._sources]

    async def _source_tools_async(self) -> list[Sequence[Tool[..., Any]]]:
        return [await source.tools_async() for source in self._sources]

    def _settings_with(self, found: list[Sequence[Tool[..., Any]]]) -> LoopSettings:
        """The settings for this run's tools: the agent's own and its sources'. Derived
        again only when a source returned a different tool list than last time."""
        cached = self._sourced
        if cached is not None and all(a is b for a, b in zip(cached[0], found, strict=True)):
            return cached[1]
        owners: dict[str, object] = {t.name: "a @tool" for t in self.tools}
        merged = list(self.tools)
        for source, tools in zip(self._sources, found, strict=True):
            for item in tools:
                owner = owners.setdefault(item.name, source)
                if owner is not source:
                    raise ConfigurationError(
                        f"two tools are named {item.name!r}: one from {source!r} and one from "
                        f"{owner!s}; give the source a prefix (e.g. prefix='crm') or rename one"
                    )
                merged.append(item)
        settings = LoopSettings(self.model, merged, **self._settings_options)
        self._sourced = (found, settings)
        return settings

    def _messages_for(
        self, prompt: Prompt, context: Any = None, principal: Principal | None = None
    ) -> list[dict[str, Any]]:
        instructions = self.instructions
        if callable(instructions):
            instructions = self._system_messages(context, None, principal)[0]["content"]
        if isinstance(prompt, str):
            user = {"role": "user", "content": clean_text(prompt)}
            if instructions is None:
                return [user]
            return [{"role": "system", "content": instructions}, user]
        messages: list[dict[str, Any]] = []
        for message in prompt:
            if not isinstance(message, Mapping) or "role" not in message:
                raise ConfigurationError(
                    "a transcript is a list of message dicts, each with a 'role'; got "
                    f"{type(message).__name__}"
                )
            messages.append(clean_data(message if isinstance(message, dict) else dict(message)))
        if not messages:
            raise ConfigurationError("the transcript is empty: nothing to send")
        if instructions is not None and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": instructions})
        return messages

    def _client(self) -> ChatClient:
        client = self._sync_client
        if client is not None:
            return client
        if self._given_client is not None:
            raise ConfigurationError(
                "this agent was given an AsyncChatClient: use run_async/stream_async, or "
                "pass a ChatClient"
            )
        with self._lock:
            if self._sync_client is None:
                self._sync_client = ChatClient(**self._client_config)
            return self._sync_client

    async def _client_async(self) -> AsyncChatClient:
        if self._given_client is not None:
            if self._async_client is None:
                raise ConfigurationError(
                    "this agent was given a ChatClient: use run/stream, or pass an AsyncChatClient"
                )
            return self._async_client
        # An httpx.AsyncClient's connections belong to one event loop: keep one client
        # (one connection pool, shared by every run) per live loop.
        running = asyncio.get_running_loop()
        entry = self._loop_clients.get(running)
        if entry is not None:
            return entry[0]
        with self._lock:
            entry = self._loop_clients.get(running)
            if entry is not None:
                return entry[0]
            client = AsyncChatClient(**self._client_config)
            closer = _close_with_the_loop(client, self._loop_clients, running)
            self._loop_clients[running] = (client, closer)
        # Started here, the closer is an async generator the loop knows: asyncio.run()
        # finalizes it on shutdown, so each `asyncio.run(agent.run_async(...))` leaves no
        # connection open even without `await agent.aclose()`. The agent holds it until
        # then, so it is never finalized (closing its client) while its loop still runs.
        await closer.__anext__()
        return client

    def _tool_threads(self) -> ToolThreads:
        threads = self._threads
        if threads is not None:
            return threads
        with self._lock:
            if self._threads is None:
                self._threads = ToolThreads(self._parallel_limit)
            return self._threads

    # -- observers ----------------------------------------------------------------------

    def _run_info(self, loop: RunLoop, streamed: bool) -> RunInfo:
        request = loop.settings.base_request
        tools = request.get("tools") or ()
        return RunInfo(
            agent_name=self.name,
            model=loop.settings.model,
            provider=self._client_config["provider"].name
            if self._given_client is None
            else self._given_client.provider.name,
            base_url=self._client_config["provider"].base_url
            if self._given_client is None
            else self._given_client.base_url,
            params={k: v for k, v in request.items() if k not in ("tools", "model")},
            tools=[t.get("function", {}).get("name", "") for t in tools],
            streamed=streamed,
            conversation_id=loop.session,
        )

    def _observed(
        self, loop: RunLoop, events: Generator[AgentEvent, None, None], *, streamed: bool = False
    ) -> Generator[AgentEvent, None, None]:
        if not observing(self._observers):
            return events  # the default: no wrapper, no observer
        return scoped(events, lambda: self._observer(loop, streamed))

    def _observer(self, loop: RunLoop, streamed: bool) -> RunObserver | None:
        observer = observer_for(self._observers, lambda: self._run_info(loop, streamed))
        loop.observer = observer
        return observer

    def _observed_async(
        self,
        loop: RunLoop,
        events: AsyncGenerator[AgentEvent, None],
        *,
        streamed: bool = False,
    ) -> AsyncGenerator[AgentEvent, None]:
        if not observing(self._observers):
            return events
        return scoped_async(events, lambda: self._observer(loop, streamed))

    # -- the drivers: they perform the effects of the one run (see _steps.py) ----------

    def _drive(
        self, loop: RunLoop, *, stream: bool, first: list[PlannedCall] | None = None
    ) -> Generator[AgentEvent, None, None]:
        """Perform the run's effects on this thread; ``first`` is a resumed round."""
        steps = run_steps(loop, self._plan(loop, stream), first)
        timeout, deadline = _deadline(loop)
        batch: SyncBatch | None = None
        answer: Any = None
        failure: BaseException | None = None
        try:
            client = self._client()
            while True:
                try:
                    effect = steps.send(answer) if failure is None else steps.throw(failure)
                except StopIteration:
                    return
                answer = failure = None
                try:
                    late = deadline is not None and time.perf_counter() >= deadline
                    if late and not isinstance(effect, Emit | Callback):
                        raise run_timed_out(timeout)
                    if isinstance(effect, Emit):
                        yield effect.event
                    elif isinstance(effect, Callback):
                        answer = _settle_sync(effect.fn(*effect.args))
                    elif isinstance(effect, CallModel):
                        answer = yield from _call_model(client, effect, deadline, timeout)
                    elif isinstance(effect, StartCalls):
                        if batch is not None:
                            batch.close()
                        batch = SyncBatch(self._tool_threads(), effect.calls, effect.late)
                        batch.start()
                    else:
                        assert batch is not None
                        answer = batch.next(deadline, timeout)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # thrown into the run, which decides
                    failure = exc
        finally:
            if batch is not None:
                batch.close()
            steps.close()

    async def _drive_async(
        self, loop: RunLoop, *, stream: bool, first: list[PlannedCall] | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        """Perform the run's effects on this event loop; ``first`` is a resumed round."""
        steps = run_steps(loop, self._plan(loop, stream), first)
        timeout, deadline = _deadline(loop)
        batch: AsyncBatch | None = None
        answer: Any = None
        failure: BaseException | None = None
        try:
            client = await self._client_async()
            while True:
                try:
                    effect = steps.send(answer) if failure is None else steps.throw(failure)
                except StopIteration:
                    return
                answer = failure = None
                try:
                    if isinstance(effect, Emit):
                        yield effect.event
                    elif isinstance(effect, Callback):
                        fn = effect.fn if effect.fn_async is None else effect.fn_async
                        answer = await _settle(fn(*effect.args))
                    elif isinstance(effect, StartCalls):
                        if batch is not None:
                            await batch.close()
                        batch = AsyncBatch(
                            self._tool_threads, effect.calls, self._parallel_limit, effect.late
                        )
                        batch.start()
                    elif isinstance(effect, CallModel) and effect.stream:
                        async with client.stream(**effect.request) as chat_stream:
                            while (
                                delta := await _next(chat_stream, deadline, timeout)
                            ) is not None:
                                effect.yielded = True
                                if effect.emit:
                                    yield delta
                            answer = chat_stream.completion
                    elif deadline is None:
                        answer = await _await_effect(client, effect, batch)
                    else:
                        async with _run_deadline(deadline, timeout):
                            answer = await _await_effect(client, effect, batch)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # thrown into the run, which decides
                    failure = exc
        finally:
            if batch is not None:
                await batch.close()
            steps.close()

    def _plan(self, loop: RunLoop, stream: bool) -> RunPlan:
        return RunPlan(stream, self._hooks, self._approve, loop.observer, self._forget_stream)

    def _forget_stream(self) -> None:
        # A provider that refused tools with stream=True will refuse again: skip the try.
        self._tools_with_stream = False


class _SessionPlan:
    """One run on a session, planned from what is stored: the loop to drive, the tool
    messages that close a round a crash or a pause left open (for a new prompt), and the
    reopened round to run first (for ``resume``)."""

    def __init__(
        self,
        agent: Agent[Any],
        record: SessionRecord,
        prompt: Prompt | None,
        context: Any,
        limits: RunLimits | None,
        decisions: Mapping[Any, Decision] | None,
        found: list[Sequence[Tool[..., Any]]],
        principal: Principal | None = None,
    ) -> None:
        settings = agent._settings_with(found) if found else agent._settings
        self.session = record.session_id
        history = list(record.messages)
        self.closing: list[dict[str, Any]] = []
        self.calls: list[PlannedCall] | None = None
        self._plan: dict[str, str | None] | None = None
        self.in_doubt: tuple[PendingCall, ...] = ()
        if decisions is not None or open_calls(history):
            round_ = settle_open_round(
                self.session, history, record.pending, record.calls, settings.tools, decisions
            )
            self.in_doubt = tuple(round_.in_doubt)
            if decisions is None:  # a new prompt: close the round, running nothing
                self.closing = tool_messages(open_calls(history), round_.plan)
                history += self.closing
            else:
                self._plan = round_.plan
        new = _new_messages(prompt)
        system = agent._system_messages(context, None, principal)
        kept, summary = fit_budget(
            history, agent._context_budget, fixed=[*system, *new], summarize=agent._summarize
        )
        if summary:
            system = agent._system_messages(context, summary, principal)
        self._start = len(system) + len(kept)
        settings, turns = agent._limited(settings, limits)
        self.loop = RunLoop(
            settings,
            [*system, *kept, *new],
            deps=context,
            max_turns=turns,
            tools_with_stream=agent._tools_with_stream,
            principal=principal,
        )
        self.loop.session = self.session

    def attach(self, store: Store, claim: Claim) -> None:
        """Connect the loop to the store (after the closing messages were stored)."""
        journal = SessionJournal(store, claim, self.loop, self._start)
        self.loop.journal = journal
        self.loop.call_key = journal.key
        if self._plan is not None:
            journal.reopen(self.loop)
            self.calls = self.loop.resume_round(self._plan)

    def finished(self, event: AgentEvent) -> AgentEvent:
        """``event``, with the session and the calls in doubt on the final result."""
        if isinstance(event, RunFinished):
            event.result.session = self.session
            event.result.in_doubt = (*self.in_doubt, *event.result.in_doubt)
        return event


def _new_messages(prompt: Prompt | None) -> list[dict[str, Any]]:
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": clean_text(prompt)}]
    messages = []
    for message in prompt:
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise ConfigurationError(
                "on a session, prompt is a user message (str) or new user/assistant message "
                "dicts; the stored conversation and the instructions are added by the agent"
            )
        messages.append(clean_data(dict(message)))
    if not messages:
        raise ConfigurationError("the prompt is empty: nothing to send")
    return messages


# --- helpers --------------------------------------------------------------------------------


def _deps(deps: Any, context: Any) -> Any:
    """The run's dependencies, given as ``deps=`` (what ``RunContext.deps`` reads) or by
    their older name ``context=``."""
    if deps is not None and context is not None:
        raise ConfigurationError("pass deps= (context= is its older name), not both")
    return deps if deps is not None else context


def _tracing_factory() -> ObserverFactory:
    # agentkit.tracing is loaded only when asked for: `import agentkit` never loads it.
    from .tracing import default_factory

    return default_factory()


def _call_model(
    client: ChatClient, effect: CallModel, deadline: float | None, timeout: float | None
) -> Generator[StreamDelta, None, ChatCompletion]:
    """Perform a model call in the sync driver, yielding the deltas the caller sees."""
    if not effect.stream:
        return client.create(**effect.request)
    with client.stream(**effect.request) as chat_stream:
        for delta in chat_stream:
            effect.yielded = True
            if effect.emit:
                yield delta
            if deadline is not None and time.perf_counter() >= deadline:
                raise run_timed_out(timeout)
        return chat_stream.completion


async def _await_effect(client: AsyncChatClient, effect: Effect, batch: AsyncBatch | None) -> Any:
    """A plain model call or the next tool outcome, in the async driver."""
    if isinstance(effect, CallModel):
        return await client.create(**effect.request)
    assert batch is not None
    return await batch.next()


async def _next(
    chat_stream: AsyncIterator[StreamDelta], deadline: float | None, timeout: float | None
) -> StreamDelta | None:
    """The stream's next delta (``None`` at its end), within the run's deadline."""
    try:
        if deadline is None:
            return await anext(chat_stream)
        async with _run_deadline(deadline, timeout):
            return await anext(chat_stream)
    except StopAsyncIteration:
        return None


@contextlib.asynccontextmanager
async def _run_deadline(deadline: float, timeout: float | None) -> AsyncIterator[None]:
    """Bound an await by the run's deadline (a ``perf_counter`` value)."""
    running = asyncio.get_running_loop()
    scope = asyncio.timeout_at(running.time() + (deadline - time.perf_counter()))
    try:
        async with scope:
            yield
    except TimeoutError:
        if scope.expired():
            raise run_timed_out(timeout) from None
        raise


def _deadline(loop: RunLoop) -> tuple[float | None, float | None]:
    """The run's ``run_timeout`` and its deadline (a ``perf_counter`` value)."""
    timeout = loop.settings.run_timeout
    return timeout, (None if timeout is None else time.perf_counter() + timeout)


async def _close_with_the_loop(
    client: AsyncChatClient,
    clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any],
    loop: asyncio.AbstractEventLoop,
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        entry = clients.get(loop)
        if entry is not None and entry[0] is client:
            del clients[loop]
        del loop  # the generator's frame must not keep its loop alive
        await client.aclose()


async def _settle(value: Any) -> Any:
    """A hook's or approver's result, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def _settle_sync(value: Any) -> Any:
    """The same in the sync driver: an awaitable runs to completion on a fresh loop."""
    if inspect.isawaitable(value):
        return asyncio.run(_as_coroutine(value))
    return value


def _as_coroutine(value: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
    async def wait() -> Any:
        return await value

    return wait()
