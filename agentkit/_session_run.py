"""A run on a stored session: the session claimed, loaded, run and released.

:class:`SessionPlan` plans the run from what is stored: the loop to drive, the tool
messages that close a round a crash or a pause left open (for a new prompt), and the
reopened round to run first (for ``resume``). :func:`session_events` and
:func:`session_events_async` hold the session's claim for the run and hand its events on.
The store is reached through the ``Store`` protocol only; in async code each of its calls
runs in a thread (:mod:`agentkit._blocking`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._blocking import claim_off_loop, off_loop, release_claim, release_off_loop
from ._calls import PlannedCall
from ._config import AgentConfig, Instructions, Prompt, new_messages
from ._context import Principal
from ._errors import ConfigurationError
from ._events import AgentEvent, RunFinished
from ._handoff import Team
from ._records import RunLimits
from ._result import PendingCall
from ._session import (
    Decision,
    OpenRound,
    SessionJournal,
    fit_budget,
    settle_open_round,
    tool_messages,
)
from ._store import Claim, SessionRecord, Store, check_session_id, open_calls
from ._tool import Tool

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["SessionPlan", "session_events", "session_events_async", "session_store"]


class SessionPlan:
    """One run on a session, planned from what is stored: the loop to drive, the tool
    messages that close a round a crash or a pause left open (for a new prompt), and the
    reopened round to run first (for ``resume``)."""

    def __init__(
        self,
        config: AgentConfig,
        instructions: Instructions,
        tools_with_stream: bool,
        record: SessionRecord,
        prompt: Prompt | None,
        deps: Any,
        principal: Principal | None,
        limits: RunLimits | None,
        decisions: Mapping[Any, Decision] | None,
        found: list[Sequence[Tool[..., Any]]],
        team: Team | None = None,
    ) -> None:
        self.session = record.session_id
        history = list(record.messages)
        agent = None
        if team is not None:  # the agent of the last round settles it (_handoff.py)
            agent = team.author(history)
            config, instructions = agent._config, agent.instructions
            settings = team.settings(agent, found)
        else:
            settings = config.settings_for(found)
        self.closing: list[dict[str, Any]] = []
        self.calls: list[PlannedCall] | None = None
        self._plan: dict[str, str | None] | None = None
        self._round: OpenRound | None = None
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
                self._round = round_
        new = new_messages(prompt)
        digest = None
        if team is not None:  # who has the conversation now, and what it was sent
            active, history, digest = team.view(history)
            if self._plan is None:
                agent, config, instructions = active, active._config, active.instructions
        system = config.system_messages(instructions, deps, digest, principal)
        kept, summary = fit_budget(
            history, config.context_budget, fixed=[*system, *new], summarize=config.summarize
        )
        if summary:
            summary = f"{digest}\n\n{summary}" if digest else summary
            system = config.system_messages(instructions, deps, summary, principal)
        self._start = len(system) + len(kept)
        if team is not None and agent is not None:
            self.loop = team.new_loop(
                agent,
                [*system, *kept, *new],
                found,
                principal=principal,
                tools_with_stream=tools_with_stream,
            )
        else:
            self.loop = config.new_loop(
                [*system, *kept, *new],
                settings,
                limits,
                deps=deps,
                principal=principal,
                tools_with_stream=tools_with_stream,
            )
        self.loop.session = self.session

    def attach(self, store: Store, claim: Claim) -> None:
        """Connect the loop to the store (after the closing messages were stored)."""
        journal = SessionJournal(store, claim, self.loop, self._start)
        self.loop.journal = journal
        self.loop.call_key = journal.key
        if self._plan is not None:
            journal.reopen(self.loop)
            round_ = self._round
            mark = round_.mark if round_ is not None else None
            nested = round_.nested if round_ is not None else None
            self.calls = self.loop.resume_round(self._plan, mark, nested)

    def finished(self, event: AgentEvent) -> AgentEvent:
        """``event``, with the session and the calls in doubt on the final result."""
        if isinstance(event, RunFinished):
            event.result.session = self.session
            event.result.in_doubt = (*self.in_doubt, *event.result.in_doubt)
        return event


def session_store(store: Store | None, session: str) -> Store:
    """The agent's store, for a run on ``session`` (a checked id)."""
    check_session_id(session)
    if store is None:
        raise ConfigurationError("session= needs a store: Agent(..., store=SQLiteStore('bot.db'))")
    return store


def session_events(
    agent: Agent[Any],
    prompt: Prompt | None,
    session: str,
    deps: Any,
    principal: Principal | None,
    limits: RunLimits | None,
    *,
    stream: bool = False,
    decisions: Mapping[Any, Decision] | None = None,
) -> Generator[AgentEvent, None, None]:
    """The events of a run on ``session``, the session claimed while they are produced."""
    store = session_store(agent.store, session)
    config, runtime = agent._config, agent._runtime
    found = runtime.source_tools()
    claim = store.claim(session, wait=config.session_wait)
    try:
        record = store.load(claim)
        plan = SessionPlan(
            config,
            agent.instructions,
            runtime.tools_with_stream,
            record,
            prompt,
            deps,
            principal,
            limits,
            decisions,
            found,
            Team(agent, limits, deps) if agent.handoffs else None,
        )
        if plan.closing:
            store.append(claim, plan.closing, close_round=True)
        plan.attach(store, claim)
        events = agent._events(plan.loop, stream=stream, first=plan.calls)
        with contextlib.closing(events):
            for event in events:
                yield plan.finished(event)
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is what counts
            release_claim(store, claim)
        raise
    release_claim(store, claim)


async def session_events_async(
    agent: Agent[Any],
    prompt: Prompt | None,
    session: str,
    deps: Any,
    principal: Principal | None,
    limits: RunLimits | None,
    *,
    stream: bool = False,
    decisions: Mapping[Any, Decision] | None = None,
) -> AsyncGenerator[AgentEvent, None]:
    """The asynchronous :func:`session_events`."""
    store = session_store(agent.store, session)
    config, runtime = agent._config, agent._runtime
    found = await runtime.source_tools_async()
    claim = await claim_off_loop(store, session, config.session_wait)
    try:
        record = await off_loop(store.load, claim)
        plan = SessionPlan(
            config,
            agent.instructions,
            runtime.tools_with_stream,
            record,
            prompt,
            deps,
            principal,
            limits,
            decisions,
            found,
            Team(agent, limits, deps) if agent.handoffs else None,
        )
        if plan.closing:
            await off_loop(store.append, claim, plan.closing, close_round=True)
        plan.attach(store, claim)
        events = agent._events_async(plan.loop, stream=stream, first=plan.calls)
        async with contextlib.aclosing(events) as running:
            async for event in running:
                yield plan.finished(event)
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is what counts
            await release_off_loop(store, claim)
        raise
    await release_off_loop(store, claim)
