"""An agent used as a tool (:meth:`Agent.as_tool`): a sub-run inside the caller's run.

The tool is an async function of the caller's :class:`~agentkit.RunContext`. It runs the
sub-agent through the same drivers and step generator as any run, on the caller's terms:
the same ``deps`` and principal, the caller's deadline (the sooner of the two), its
cancellation (in ``run_async``/``stream_async`` the sub-run is a task of the caller's
round, cancelled with it), and its usage added to the caller's, whether the sub-run ends
well or not. In a streamed run the sub-run streams too, and each of its events reaches the
caller's stream as a :class:`~agentkit.SubAgentEvent` while the call runs.

A cycle (an agent that reaches itself through agent tools) is a ``ConfigurationError``
before the caller's first request (:func:`check_agent_tools`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel

from ._client import ChatClient
from ._context import RunContext
from ._errors import ConfigurationError
from ._events import RunFinished, SubAgentEvent
from ._records import RunLimits
from ._result import RunResult
from ._tool import Tool

if TYPE_CHECKING:
    from ._agent import Agent
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
    ask = _plain(agent) if input_type is None else _structured(agent, input_type)
    built = AgentTool(ask, name=tool_name, description=description)
    built.agent = agent
    return built


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
    input_type: type[BaseModel] = model

    async def ask(ctx: RunContext[Any], **fields: Any) -> Any:
        request = input_type.model_validate(fields).model_dump_json()
        return await _sub_run(agent, ctx, request)

    parameters = [
        inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RunContext[Any]
        )
    ]
    for field_name, info in input_type.model_fields.items():
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


async def _sub_run(agent: Agent[Any], ctx: RunContext[Any], prompt: str) -> Any:
    """Run ``agent`` on ``prompt`` inside the run of ``ctx``; its output for the caller."""
    caller: RunLoop | None = ctx._caller
    if caller is None:  # called by hand, outside a run
        return (await agent.run_async(prompt, deps=ctx.deps, principal=ctx.principal)).output
    if id(agent) in caller.agents:  # reached through a tool source, past the check
        raise ConfigurationError(f"agent {agent.name!r} calls itself through its agent tools")
    limits = _bounded(agent, caller.deadline)
    found = await agent._runtime.source_tools_async()
    loop = agent._new_loop(prompt, ctx.deps, ctx.principal, limits, found)
    loop.agents = (*caller.agents, id(agent))
    name = agent.name or "agent"
    forward = caller.forward
    result: RunResult[Any] | None = None
    try:
        events = agent._events_async(loop, stream=forward is not None)
        async with contextlib.aclosing(events) as running:
            async for event in running:
                if isinstance(event, RunFinished):
                    result = event.result
                if forward is not None:
                    if isinstance(event, SubAgentEvent):  # one level deeper: one path
                        forward(SubAgentEvent((name, *event.path), event.event))
                    else:
                        forward(SubAgentEvent((name,), event))
    finally:
        caller.add_usage(loop.usage)
    assert result is not None
    if result.status == "paused":  # refused before the run by check_agent_tools
        raise ConfigurationError(f"agent {name!r} paused for an approval inside a tool call")
    return result.output


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
    """Refuse, before any request, a cycle of agent tools and a sub-agent whose approvals
    would pause inside a tool call (nested pauses are not carried up yet). ``found``: the
    tools the agent's sources returned for this run."""
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
        if sub._approve is None and any(t.requires_approval for t in _tools(sub)):
            raise ConfigurationError(
                f"agent {sub.name!r} used as a tool has requires_approval tools and no "
                "approve= callback: give it one (a pause inside a sub-agent is not "
                "carried up to the caller yet)"
            )
        _walk(sub, _tools(sub), (*seen, id(sub)), sub_names)
