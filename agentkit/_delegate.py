"""An agent used as a tool (:meth:`Agent.as_tool`): a sub-run inside the caller's run.

The tool is an async function of the caller's :class:`~agentkit.RunContext`. It runs the
sub-agent through the same drivers and step generator as any run, on the caller's terms:
the same ``deps`` and principal, the caller's deadline (the sooner of the two), its
cancellation (in ``run_async``/``stream_async`` the sub-run is a task of the caller's
round, cancelled with it), its usage added to the caller's, whether the sub-run ends
well or not, and its model calls and tool calls taken from the top-level run's
``max_turns`` and ``max_tool_calls``, one budget for the whole tree (``_budget.py``), as
well as bounded by its own agent's limits. In a streamed run the sub-run streams too, and
each of its events reaches the caller's stream as a :class:`~agentkit.SubAgentEvent`
while the call runs.

A cycle (an agent that reaches itself through agent tools) is a ``ConfigurationError``
before the caller's first request (:func:`check_agent_tools`).

A sub-run that pauses for a person (a ``requires_approval`` call and no ``approve=``)
returns :class:`~agentkit._calls.SubRunPaused`: the call stays open and the caller's run
pauses too, its ``resume_state`` holding the sub-run's transcript and state under the
call's id. Resuming the caller runs the call again from there (``RunContext._resume``): the
sub-run settles its calls with the decisions below it and goes on to its answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel

from ._budget import budget_of
from ._calls import PlannedCall, SubRunPaused
from ._client import AsyncChatClient, ChatClient
from ._context import RunContext
from ._errors import ConfigurationError, RunTimeoutError
from ._events import HandedOff, RunFinished, SubAgentEvent
from ._handoff import sourced
from ._records import RunLimits
from ._result import RunResult
from ._session import NestedResume
from ._threads import ToolTimedOut, this_call
from ._tool import Tool
from ._wire import Usage

if TYPE_CHECKING:
    from ._agent import Agent, Found
    from ._loop import RunLoop

__all__ = ["agent_tool", "check_agent_tools"]


class AgentTool(Tool[..., Any]):
    """A :class:`~agentkit.Tool` that runs an agent; ``agent`` is that agent."""

    agent: Agent[Any]


def agent_tool(
    agent: Agent[Any],
    name: str | None,
    description: str | None,
    input_type: type[BaseModel] | None,
) -> AgentTool:
    """The tool behind :meth:`Agent.as_tool`."""
    tool_name = name or agent.name
    if not tool_name:
        raise ConfigurationError(
            "as_tool() needs a tool name: give the agent a name (Agent(..., name='flights')) "
            "or pass as_tool(name=...)"
        )
    if description is None:
        instructions = agent.instructions if isinstance(agent.instructions, str) else ""
        description = f"Ask the {agent.name or tool_name} agent. {instructions}".strip()
    request = _plain_request if input_type is None else _structured_request(input_type)
    ask = _plain(agent) if input_type is None else _structured(agent, input_type)
    built = AgentTool(ask, name=tool_name, description=description)
    built.agent = agent
    if not isinstance(agent._runtime.given_client, AsyncChatClient):
        # Under the sync driver the sub-agent runs on the sync driver and its sync client
        # in the call's thread (no event loop and async client of its own per call).
        def in_thread(kwargs: dict[str, Any], ctx: RunContext[Any]) -> Any:
            return _sub_run_sync(agent, ctx, request(kwargs))

        built._in_thread = in_thread
    return built


def _plain_request(kwargs: dict[str, Any]) -> str:
    return str(kwargs["request"])


def _structured_request(input_type: type[BaseModel]) -> Callable[[dict[str, Any]], str]:
    def request(kwargs: dict[str, Any]) -> str:
        return input_type.model_validate(kwargs).model_dump_json()

    return request


def _plain(agent: Agent[Any]) -> Callable[..., Awaitable[Any]]:
    """The tool's function for one ``request: str``."""

    async def ask(ctx: RunContext[Any], request: str) -> Any:
        return await _sub_run(agent, ctx, request)

    return ask


def _structured(agent: Agent[Any], model: Any) -> Callable[..., Awaitable[Any]]:
    """The tool's function whose parameters are the fields of ``model`` (the caller's
    model sees them unwrapped); the sub-agent is sent the model's JSON."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError("as_tool(input_type=...) must be a pydantic model class")
    request = _structured_request(model)

    async def ask(ctx: RunContext[Any], **fields: Any) -> Any:
        return await _sub_run(agent, ctx, request(fields))

    parameters = [
        inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RunContext[Any]
        )
    ]
    for field_name, info in model.model_fields.items():
        parameters.append(
            inspect.Parameter(
                field_name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[info.annotation, info],
            )
        )
    ask.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    ask.__annotations__ = {p.name: p.annotation for p in parameters}
    return ask


# --- the sub-run: set up once, then driven by either driver ----------------------------------


async def _sub_run(agent: Agent[Any], ctx: RunContext[Any], prompt: str) -> Any:
    """Run ``agent`` on ``prompt`` inside the run of ``ctx`` (on its event loop); its
    output for the caller."""
    caller: RunLoop | None = ctx._caller
    if caller is None:  # called by hand, outside a run
        return (await agent.run_async(prompt, deps=ctx.deps, principal=ctx.principal)).output
    sub = _SubRun(agent, caller)
    found: Found
    if agent.handoffs:  # every agent of its graph may have sources
        found = {a.name or "": await a._runtime.source_tools_async() for a in sourced(agent)}
    else:
        found = await agent._runtime.source_tools_async()
    loop, first = sub.start(ctx, prompt, found, caller.deadline)
    try:
        events = agent._events_async(loop, stream=sub.forward is not None, first=first)
        async with contextlib.aclosing(events) as running:
            async for event in running:
                sub.seen(event)
    finally:
        caller.add_usage(loop.usage)
    return sub.output()


def _sub_run_sync(agent: Agent[Any], ctx: RunContext[Any], prompt: str) -> Any:
    """The same in a tool thread of the sync driver, on the sync driver and client. It
    ends by the call's deadline (a grace after the driver reports the call timed out) and
    takes no further step (a model call, a tool round) and no further event once the
    caller's run no longer waits for it."""
    caller: RunLoop | None = ctx._caller
    if caller is None:
        return agent.run(prompt, deps=ctx.deps, principal=ctx.principal).output
    sub = _SubRun(agent, caller)
    deadline, given_up = caller.deadline, _never
    call = this_call()
    if call is not None:
        given_up = call[1]
        if call[0] is not None:
            ends = call[0] + _GRACE
            deadline = ends if deadline is None else min(deadline, ends)
    found: Found
    if agent.handoffs:
        found = {a.name or "": a._runtime.source_tools() for a in sourced(agent)}
    else:
        found = agent._runtime.source_tools()
    loop, first = sub.start(ctx, prompt, found, deadline)
    if call is not None:  # it takes no further step once its caller gave up on the call
        loop.given_up = functools.partial(_left, given_up, sub)
    try:
        events = agent._events(loop, stream=sub.forward is not None, first=first)
        with contextlib.closing(events) as running:
            for event in running:
                if given_up():
                    raise _CallerLeft(f"the run that called agent {sub.name!r} ended")
                sub.seen(event)
    except RunTimeoutError:
        if call is not None and call[0] is not None and time.perf_counter() >= call[0]:
            # Its call's time ran out before the caller's driver said so (a loaded
            # machine can wake it late): the call timed out, as the driver reports it.
            raise ToolTimedOut from None
        raise
    finally:
        caller.add_usage(loop.usage)
    return sub.output()


_GRACE = 0.5  # seconds a sub-run outlives its call's timeout: the driver reports it first


class _CallerLeft(Exception):
    """The caller's run no longer waits for this sub-run (its result would be dropped)."""


def _left(given_up: Callable[[], bool], sub: _SubRun) -> BaseException | None:
    """What ends a sub-run in a tool thread once its caller gave up on its call."""
    return _CallerLeft(f"the run that called agent {sub.name!r} ended") if given_up() else None


def _never() -> bool:
    return False


class _SubRun:
    """What both forms of a sub-run share: its loop, its events forwarded to the caller's
    stream as :class:`SubAgentEvent`, its result."""

    __slots__ = ("agent", "call_id", "caller", "forward", "name", "result")

    def __init__(self, agent: Agent[Any], caller: RunLoop) -> None:
        if id(agent) in caller.agents:  # reached through a tool source, past the check
            raise ConfigurationError(f"agent {agent.name!r} calls itself through its agent tools")
        self.agent = agent
        self.caller = caller
        self.name = agent.name or "agent"
        self.forward = caller.forward
        self.result: RunResult[Any] | None = None
        self.call_id = ""

    def start(
        self,
        ctx: RunContext[Any],
        prompt: str,
        found: Found,
        deadline: float | None,
    ) -> tuple[RunLoop, list[PlannedCall] | None]:
        """The sub-run's loop (the caller's deps and principal, ending by ``deadline``) and
        the round to run first: for a call resumed from its sub-run's pause
        (``ctx._resume``), the loop goes on from that pause."""
        agent = self.agent
        self.call_id = ctx.call_id
        limits = _bounded(agent, deadline)
        resumed: NestedResume | None = ctx._resume
        first: list[PlannedCall] | None = None
        if resumed is None:
            loop = agent._new_loop(prompt, ctx.deps, ctx.principal, limits, found)
        else:
            paused: RunResult[Any] = RunResult(
                None, resumed.messages, Usage(), 0, status="paused", resume_state=resumed.state
            )
            loop, first = agent._resumed_loop(
                paused, resumed.decisions, ctx.deps, ctx.principal, limits, found or None
            )
        loop.agents = (*self.caller.agents, id(agent))
        # its model calls and tool calls take from the run tree's budget as well
        loop.budget = budget_of(self.caller)
        loop.caller = (self.caller.observer, ctx.call_id)
        # who asks: the agent, or after a handoff inside it the agent that has it now
        self.name = loop.settings.agent or self.name
        loop.path = (*self.caller.path, self.name)
        # Its calls' idempotency keys extend the agent-tool call's (unique on a session too),
        # and on a session its side-effect calls are written ahead in the session's log.
        loop.call_key = functools.partial(_call_key, ctx.idempotency_key or ctx.call_id)
        if self.caller.journal is not None:
            loop.journal = self.caller.journal.below(loop, ctx.call_id)
        return loop, first

    def seen(self, event: Any) -> None:
        """One event of the sub-run: kept if it is the last, forwarded if the caller streams."""
        if isinstance(event, RunFinished):
            self.result = event.result
        forward = self.forward
        if forward is not None:
            if isinstance(event, SubAgentEvent):  # one level deeper: one path
                forward(SubAgentEvent((self.name, *event.path), event.event))
            else:
                forward(SubAgentEvent((self.name,), event))
        if isinstance(event, HandedOff):  # its events from now on are the target's
            self.name = event.target

    def output(self) -> Any:
        """The sub-run's answer, for the caller's model."""
        result = self.result
        assert result is not None
        if result.status == "paused":  # the call stays open; the caller pauses with it
            return SubRunPaused(result)
        for call in result.in_doubt:  # side-effect calls past their timeout, at any level
            self.caller.in_doubt.append(dataclasses.replace(call, via=(self.call_id, *call.via)))
        return result.output


def _call_key(above: str, message_index: int, call_id: str) -> str:
    """A sub-run's call's idempotency key: the agent-tool call's, its message, its id."""
    return f"{above}/{message_index}/{call_id}"


def _bounded(agent: Agent[Any], deadline: float | None) -> RunLimits | None:
    """The sub-run's limits: its agent's, ending by the caller's deadline at the latest."""
    if deadline is None:
        return None
    left = max(deadline - time.perf_counter(), 0.001)
    own = agent._config.limits
    if own.run_timeout is not None and own.run_timeout <= left:
        return None
    return dataclasses.replace(own, run_timeout=left)


def check_agent_tools(agent: Agent[Any], found: Any = None) -> None:
    """Refuse, before any request, a cycle of agent tools and a sub-agent given a sync
    client. ``found``: the tools the agent's sources returned for this run."""
    extra = [t for group in found or () for t in group]
    _walk(agent, [*_tools(agent), *extra], (id(agent),), (agent.name or "agent",))


def _tools(agent: Agent[Any]) -> list[Tool[..., Any]]:
    """The agent's own tools, as its runs use them."""
    return list(agent._config.settings.tools.values())


def _walk(
    agent: Agent[Any], tools: list[Tool[..., Any]], seen: tuple[int, ...], names: tuple[str, ...]
) -> None:
    for tool in tools:
        if not isinstance(tool, AgentTool):
            continue
        sub = tool.agent
        sub_names = (*names, sub.name or "agent")
        if id(sub) in seen:
            raise ConfigurationError(
                "agent tools form a cycle: " + " -> ".join(sub_names) + "; an agent may not "
                "call itself, directly or through other agents"
            )
        if isinstance(sub._runtime.given_client, ChatClient):
            raise ConfigurationError(
                f"agent {sub.name!r} used as a tool was given a ChatClient, and a sub-agent "
                "runs with an async client: give it an AsyncChatClient, or no client"
            )
        _walk(sub, _tools(sub), (*seen, id(sub)), sub_names)
