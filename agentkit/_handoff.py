"""Handoffs: an agent passes the conversation to another agent inside the same run.

``Agent(..., handoffs=[billing, Handoff(tech, history="none")])`` gives the agent's model
one ``transfer_to_<name>`` tool per target. The loop core answers a transfer at once
(:mod:`agentkit._handoff_plan`); once the round is closed, :func:`switch` (a step of the
run, called by :mod:`agentkit._steps`) goes on as the target: its instructions, tools,
handoffs, output type, model settings and approver, sent the history its ``Handoff``
keeps. The run's limits, usage, observers and hooks stay the run's.

A run's agents are a :class:`Team`: the entry agent's handoff graph walked by name, checked
before any request (names unique and fit for a tool name, one endpoint, no agent handing
off to itself). The transcript records who wrote each assistant turn (its ``name``) and
each transfer made (its tool message), so a stored conversation tells which agent has it
now and what that agent was sent (:meth:`Team.view`): the next run on a session starts
with the specialist, and a resume in another process goes on with the agent that paused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ._errors import ConfigurationError
from ._events import HandedOff
from ._handoff_plan import TRANSFER_PREFIX, transferred
from ._loop import RunLoop
from ._loop_settings import LoopSettings
from ._records import RunLimits, loop_limits
from ._steps import Callback, Effect, Emit, ListTools, RunPlan

if TYPE_CHECKING:
    from ._agent import Agent
    from ._context import Principal
    from ._tool import Tool

__all__ = [
    "Handoff",
    "HistoryPolicy",
    "Team",
    "TeamTools",
    "digest",
    "sourced",
    "switch",
    "team_of",
    "team_tools",
]

HistoryPolicy: TypeAlias = (
    "Literal['all', 'summary', 'none'] "
    "| Callable[[list[dict[str, Any]]], Sequence[Mapping[str, Any]]]"
)
"""What the target of a handoff is sent of the conversation before it: ``"all"``,
``"none"`` (only the last user message), ``"summary"`` (the last user message, and a
digest of the rest after its instructions), or a function of the messages (system message
left out) that returns the messages to send."""

TeamTools: TypeAlias = "dict[str, list[Sequence[Tool[..., Any]]]]"
"""What the tool sources of the agents of a handoff graph returned for a run, by agent name
(only agents with sources)."""

_NAME = re.compile(r"[A-Za-z0-9_-]{1,52}")  # transfer_to_<name> fits a 64-character tool name
_POLICIES = ("all", "summary", "none")
_DIGEST_ITEM = 200  # characters of one message in a summary digest
_DIGEST_TOTAL = 1_500  # characters of the whole digest (the newest kept)


class Handoff:
    """A handoff target with its options, for ``Agent(handoffs=[...])`` (a bare agent is
    ``Handoff(agent)``).

    Args:
        target: the agent that takes the conversation over (it needs a ``name``).
        history: what ``target`` is sent of the conversation so far: ``"all"`` (default),
            ``"none"`` (only the last user message), ``"summary"`` (the last user message,
            with a short digest of what came before added to its instructions), or a
            function that takes the messages (wire-format dicts, system message left out)
            and returns those to send.
        description: the ``transfer_to_<name>`` tool's description (default: from the
            target's name and the first sentence of its instructions). The model is sent
            it with every request: keep it short.
    """

    __slots__ = ("description", "history", "target")

    def __init__(
        self,
        target: Agent[Any],
        history: HistoryPolicy = "all",
        *,
        description: str | None = None,
    ) -> None:
        from ._agent import Agent

        if not isinstance(target, Agent):
            raise ConfigurationError(f"a handoff's target is an Agent, not {type(target).__name__}")
        if not callable(history) and history not in _POLICIES:
            raise ConfigurationError(
                "a handoff's history is 'all', 'summary', 'none' or a function of the "
                f"messages, not {history!r}"
            )
        if description is not None and (not isinstance(description, str) or not description):
            raise ConfigurationError("a handoff's description is a non-empty str")
        self.target = target
        self.history = history
        self.description = description

    @property
    def tool_name(self) -> str:
        """The name of the tool the model calls to make this handoff."""
        return f"{TRANSFER_PREFIX}{self.target.name}"

    def describe(self) -> str:
        """The transfer tool's description: the given one, or a short default."""
        if self.description is not None:
            return self.description
        target = self.target
        text = target.instructions if isinstance(target.instructions, str) else ""
        first = text.strip().split("\n", 1)[0].split(". ", 1)[0].strip()[:160]
        return f"Hand the conversation to {target.name}" + (f": {first}" if first else ".")

    def __repr__(self) -> str:
        return f"Handoff({self.target.name!r}, history={self.history!r})"


def handoff_of(item: object) -> Handoff:
    """An entry of ``Agent(handoffs=[...])`` as a :class:`Handoff`."""
    return item if isinstance(item, Handoff) else Handoff(item)  # type: ignore[arg-type]


class Team:
    """The agents one run can reach by handoffs from its entry agent, found by name and
    checked before any request (``ConfigurationError``)."""

    __slots__ = ("deps", "edges", "entry", "found", "limits", "max_handoffs", "members")

    def __init__(
        self,
        entry: Agent[Any],
        limits: RunLimits | None,
        deps: Any,
        found: TeamTools | None = None,
    ) -> None:
        self.entry = entry
        self.limits = limits
        self.deps = deps
        self.found: TeamTools = found or {}
        self.members: dict[str, Agent[Any]] = {}
        self.edges: dict[str, dict[str, Handoff]] = {}
        stack = [entry]
        while stack:
            agent = stack.pop()
            name = _checked_name(agent)
            known = self.members.get(name)
            if known is not None:
                if known is not agent:
                    raise ConfigurationError(
                        f"two agents of the handoff graph are named {name!r}: names must be "
                        "unique (a stored conversation names the agent that has it)"
                    )
                continue
            self.members[name] = agent
            edges: dict[str, Handoff] = {}
            for item in agent.handoffs:
                handoff = handoff_of(item)
                if handoff.target is agent:
                    raise ConfigurationError(f"agent {name!r} hands off to itself")
                _checked_name(handoff.target)
                if handoff.tool_name in edges:
                    raise ConfigurationError(
                        f"agent {name!r} has two handoffs to {handoff.target.name!r}"
                    )
                edges[handoff.tool_name] = handoff
                stack.append(handoff.target)
            self.edges[name] = edges
        for member in self.members.values():
            self._check(member)
        self.max_handoffs = (limits or entry._config.limits).max_handoffs

    def _check(self, member: Agent[Any]) -> None:
        entry = self.entry
        found = self.found.get(member.name or "")
        if member is entry:
            if found:  # a source may bring agent tools (a cycle through them is refused)
                from ._delegate import check_agent_tools

                check_agent_tools(member, found)
            return
        if member._runtime.base_url != entry._runtime.base_url:
            raise ConfigurationError(
                f"agent {member.name!r} talks to {member._runtime.base_url!r} and "
                f"{entry.name!r} to {entry._runtime.base_url!r}: a handoff goes on with the "
                "run's client, so every agent of the handoff graph uses one endpoint"
            )
        needs = member._config.settings.needs_deps
        if needs and self.deps is None:
            raise ConfigurationError(
                f"the tools {list(needs)} of agent {member.name!r} declare a RunContext[T] "
                "whose T is not optional, and this run has none: pass deps="
            )
        if member._delegates or found:
            from ._delegate import check_agent_tools

            check_agent_tools(member, found)

    # -- what each agent runs with ------------------------------------------------------

    def settings(self, agent: Agent[Any]) -> LoopSettings:
        """``agent``'s loop settings in this team: its tools (its sources' too) and transfer
        tools, signed with its name, under the run's limits (derived once per tool list,
        limits and graph)."""
        config = agent._config
        base = config.settings_for(self.found.get(agent.name or ""))
        handoffs = {
            name: (handoff.target.name or "", handoff.describe())
            for name, handoff in self.edges[agent.name or ""].items()
        }
        # the base settings by identity (a tool source's new list is a new object), the
        # limits and the transfer tools by value
        key = (base, self.limits, tuple(handoffs.items()))
        cached = config.team_settings
        if cached is not None and cached[0][0] is base and cached[0][1:] == key[1:]:
            return cached[1]
        options = dict(config._options)
        if self.limits is not None:
            options.update(loop_limits(self.limits))
        settings = LoopSettings(
            config.model,
            list(base.tools.values()),
            **options,
            handoffs=handoffs,
            sign=True,
        )
        config.team_settings = (key, settings)
        return settings

    def new_loop(
        self,
        agent: Agent[Any],
        messages: list[dict[str, Any]],
        *,
        principal: Principal | None,
        tools_with_stream: bool,
    ) -> RunLoop:
        """A loop over ``messages`` in which ``agent`` has the conversation."""
        limits = self.limits or self.entry._config.limits
        loop = RunLoop(
            self.settings(agent),
            messages,
            deps=self.deps,
            principal=principal,
            max_turns=limits.max_turns,
            tools_with_stream=tools_with_stream,
        )
        loop.team = self
        loop.handoffs = [agent.name or ""]
        return loop

    def system(
        self, agent: Agent[Any], summary: str | None, principal: Principal | None
    ) -> list[dict[str, Any]]:
        """``agent``'s system message, with ``summary`` (a digest) after its instructions."""
        return agent._config.system_messages(agent.instructions, self.deps, summary, principal)

    # -- a stored conversation ------------------------------------------------------------

    def author(self, history: Sequence[Mapping[str, Any]]) -> Agent[Any]:
        """The agent that wrote the transcript's last assistant turn (the entry agent when
        none is named): the one that settles a round left open."""
        for message in reversed(history):
            if message.get("role") == "assistant":
                return self.members.get(str(message.get("name")), self.entry)
        return self.entry

    def view(
        self, history: list[dict[str, Any]]
    ) -> tuple[Agent[Any], list[dict[str, Any]], str | None]:
        """Which agent has a stored conversation (``history``, no system message, its last
        round closed) and what it is sent: the history its handoff's policy keeps, and a
        digest for its instructions (``"summary"``)."""
        agent = self.author(history)
        last = _last_assistant(history)
        for index in range(last, -1, -1):
            message = history[index]
            if message.get("role") != "assistant":
                continue
            made = self._made(history, index)
            if made is None:
                continue
            source, target, end = made
            if index == last:
                agent = self.members[target]  # the last round handed the conversation on
            if target != agent.name:
                continue
            handoff = self.edges.get(source, {}).get(TRANSFER_PREFIX + target)
            policy: HistoryPolicy = "all" if handoff is None else handoff.history
            kept, summary = keep(policy, history[:end])
            return agent, [*kept, *history[end:]], summary
        return agent, history, None

    def _made(
        self, history: Sequence[Mapping[str, Any]], index: int
    ) -> tuple[str, str, int] | None:
        """The transfer made in the round of the assistant turn at ``index``: its author's
        name, the target's name and where the round's tool messages end; ``None`` if none."""
        message = history[index]
        calls = {
            call.get("id"): call.get("function", {}).get("name", "")
            for call in message.get("tool_calls") or ()
        }
        end = index + 1
        target = None
        while end < len(history) and history[end].get("role") == "tool":
            name = calls.get(history[end].get("tool_call_id"), "")
            wanted = name[len(TRANSFER_PREFIX) :]
            if (
                target is None
                and name.startswith(TRANSFER_PREFIX)
                and wanted in self.members
                and history[end].get("content") == transferred(wanted)
            ):
                target = wanted
            end += 1
        if target is None:
            return None
        source = str(message.get("name") or self.entry.name)
        return source, target, end


# --- the tool sources of the graph ---------------------------------------------------------


def sourced(entry: Agent[Any]) -> list[Agent[Any]]:
    """The agents of ``entry``'s handoff graph that have tool sources (``entry`` first)."""
    seen: dict[int, Agent[Any]] = {}
    stack = [entry]
    while stack:
        agent = stack.pop()
        if id(agent) not in seen:
            seen[id(agent)] = agent
            stack.extend(reversed([handoff_of(item).target for item in agent.handoffs]))
    return [agent for agent in seen.values() if agent._runtime.sources]


def team_of(entry: Agent[Any], limits: RunLimits | None, deps: Any, found: object) -> Team | None:
    """The team of a run of ``entry`` (``None`` without handoffs); ``found``: what
    :func:`team_tools` returned for it."""
    if not entry.handoffs:
        return None
    return Team(entry, limits, deps, found if isinstance(found, dict) else None)


def team_tools(entry: Agent[Any]) -> Generator[Effect, Any, TeamTools]:
    """Effects: the tool sources of every agent of ``entry``'s graph asked for their tools
    as the run starts, so a handoff (or a resume with a handed-off agent) finds them."""
    found: TeamTools = {}
    for agent in sourced(entry):
        found[agent.name or ""] = yield ListTools(agent._runtime)
    return found


# --- the switch, a step of the run -------------------------------------------------------


def switch(loop: RunLoop, plan: RunPlan) -> Generator[Effect, Any, None]:
    """Go on as the target of the transfer made in the round just closed."""
    team = loop.team
    target_name = loop.handoff
    assert team is not None and target_name is not None
    source = loop.settings.agent or ""
    target = team.members[target_name]
    handoff = team.edges[source][TRANSFER_PREFIX + target_name]
    history = [m for m in loop.messages if m.get("role") != "system"]
    kept, summary = keep(handoff.history, history)
    head = [*team.system(target, summary, loop.principal), *kept]
    loop.switch(team.settings(target), head, target_name)
    plan.approve = target._approve
    if plan.observer is not None:
        yield Callback(plan.observer.handoff, (source, target_name))
    if plan.stream:
        yield Emit(HandedOff(source, target_name))


def start(loop: RunLoop, plan: RunPlan) -> None:
    """A run that starts (or resumes) with another agent than its entry agent asks that
    agent's approver."""
    team = loop.team
    if team is not None:
        agent = team.members.get(loop.settings.agent or "")
        if agent is not None and agent is not team.entry:
            plan.approve = agent._approve


def keep(
    policy: HistoryPolicy, history: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """What a target is sent of ``history`` under ``policy``, and a digest for its
    instructions (``"summary"`` only)."""
    if policy == "all":
        return list(history), None
    last = _last_user(history)
    if policy == "none":
        return last, None
    if policy == "summary":  # the digest: all but the last user message, sent as it is
        index = _last_user_index(history)
        return last, digest([*history[:index], *history[index + 1 :]]) or None
    assert callable(policy)
    kept = policy([dict(message) for message in history])
    if not isinstance(kept, Sequence) or isinstance(kept, str | bytes):
        raise ConfigurationError("a handoff's history function must return a list of messages")
    result: list[dict[str, Any]] = []
    for message in kept:
        if not isinstance(message, Mapping) or message.get("role") not in (
            "user",
            "assistant",
            "tool",
        ):
            raise ConfigurationError(
                "a handoff's history function must return user, assistant and tool message "
                f"dicts, not {message!r:.80}"
            )
        result.append(dict(message))
    return result, None


def digest(history: Sequence[Mapping[str, Any]]) -> str:
    """A short, deterministic digest of ``history`` (who said, called and got what),
    newest kept when it is long: the ``"summary"`` policy's text."""
    lines: list[str] = []
    for message in history:
        role = message.get("role")
        text = _short(_text(message.get("content")))
        if role == "user" and text:
            lines.append(f"- The user said: {text}")
        elif role == "assistant":
            who = str(message.get("name") or "The assistant")
            if text:
                lines.append(f"- {who} said: {text}")
            for call in message.get("tool_calls") or ():
                function = call.get("function", {})
                name = str(function.get("name", ""))
                if not name.startswith(TRANSFER_PREFIX):
                    arguments = _short(str(function.get("arguments") or ""))
                    lines.append(f"- {who} called {name}({arguments})")
        elif role == "tool" and not str(message.get("name", "")).startswith(TRANSFER_PREFIX):
            lines.append(f"- {message.get('name', 'a tool')} returned: {text}")
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if size > _DIGEST_TOTAL:
            kept.append("- (earlier messages left out)")
            break
        kept.append(line)
    return "\n".join(reversed(kept))


# --- helpers --------------------------------------------------------------------------------


def _checked_name(agent: Agent[Any]) -> str:
    name = agent.name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"every agent of a handoff graph needs a name of 1-52 letters, digits, '_' or "
            f"'-' (it names the transfer_to_<name> tool and the agent's messages), not "
            f"{name!r}: Agent(..., name='billing')"
        )
    return name


def _last_assistant(history: Sequence[Mapping[str, Any]]) -> int:
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "assistant":
            return index
    return -1


def _last_user_index(history: Sequence[Mapping[str, Any]]) -> int:
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            return index
    return len(history)


def _last_user(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    index = _last_user_index(history)
    return [history[index]] if index < len(history) else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DIGEST_ITEM else f"{text[: _DIGEST_ITEM - 1]}…"
