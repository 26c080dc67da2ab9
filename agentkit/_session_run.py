"""A run on a stored session: the session claimed, loaded, run and released.

:class:`SessionPlan` plans the run from what is stored: the loop to drive, the tool
messages that close a round a crash or a pause left open (for a new prompt), and the
reopened round to run first (for ``resume``). :func:`session_steps` is the whole run on a
session as effects of the one step generator (:mod:`agentkit._steps`): the claim, the
load and the release are performed by the drivers, as the model call is. The store is
reached through the ``Store`` protocol only; the async driver runs each of its calls in a
thread (:mod:`agentkit._blocking`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ._blocking import release_claim
from ._calls import PlannedCall
from ._config import AgentConfig, Instructions, Prompt, new_messages
from ._context import Principal
from ._errors import ConfigurationError
from ._handoff import Team, team_of
from ._records import RunLimits
from ._result import PendingCall, RunResult
from ._session import (
    Decision,
    OpenRound,
    SessionJournal,
    check_settler,
    fit_budget,
    settle_open_round,
    tool_messages,
)
from ._steps import Callback, Effect, RunPlan
from ._store import Claim, SessionRecord, Store, check_session_id, open_calls

if TYPE_CHECKING:
    from ._agent import Agent, Found

__all__ = ["SessionPlan", "session_steps", "session_store"]


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
        found: Found,
        team: Team | None = None,
        name: str | None = None,
    ) -> None:
        self.session = record.session_id
        history = list(record.messages)
        agent = None
        if team is not None:  # the agent of the last round settles it (_handoff.py)
            agent = team.author(history)
            config, instructions = agent._config, agent.instructions
            settings = team.settings(agent)
        else:
            settings = config.settings_for(found if isinstance(found, list) else None)
        self.closing: list[dict[str, Any]] = []
        self.calls: list[PlannedCall] | None = None
        self._plan: dict[str, str | None] | None = None
        self._round: OpenRound | None = None
        self.in_doubt: tuple[PendingCall, ...] = ()
        if decisions is not None or open_calls(history):
            if decisions is not None:
                check_settler(self.session, history, agent.name if agent is not None else name)
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

    def finish(self, result: RunResult[Any]) -> None:
        """Put the session and the calls found in doubt at the start on ``result``."""
        result.session = self.session
        result.in_doubt = (*self.in_doubt, *result.in_doubt)


def session_store(store: Store | None, session: str) -> Store:
    """The agent's store, for a run on ``session`` (a checked id)."""
    check_session_id(session)
    if store is None:
        raise ConfigurationError("session= needs a store: Agent(..., store=SQLiteStore('bot.db'))")
    return store


def session_steps(
    agent: Agent[Any],
    plan: RunPlan,
    session: str,
    prompt: Prompt | None,
    deps: Any,
    principal: Principal | None,
    limits: RunLimits | None,
    decisions: Mapping[Any, Decision] | None = None,
) -> Generator[Effect, Any, RunResult[Any]]:
    """The effects of a run on ``session``: the sources asked, the session claimed and
    loaded, the run, and the claim released (also when the run fails or its caller leaves)."""
    store = session_store(agent.store, session)
    config, runtime = agent._config, agent._runtime
    found = yield from agent._listed()
    # A claim taken after an async waiter was cancelled is given back (see _blocking.py).
    claim: Claim = yield Callback(
        partial(store.claim, session, wait=config.session_wait),
        (),
        blocking=True,
        undo=partial(release_claim, store),
    )
    try:
        record = yield Callback(store.load, (claim,), blocking=True)
        stored = SessionPlan(
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
            team_of(agent, limits, deps, found),
            agent.name,
        )
        if stored.closing:
            close_round = partial(store.append, close_round=True)
            yield Callback(close_round, (claim, stored.closing), blocking=True)
        stored.attach(store, claim)
        plan.finish = stored.finish
        result = yield from agent._loop_steps(stored.loop, plan, stored.calls)
    except GeneratorExit:  # the caller left: no more effects, the driver releases it
        plan.closing.append(partial(release_claim, store, claim))
        raise
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is what counts
            yield Callback(release_claim, (store, claim), blocking=True, through=True)
        raise
    yield Callback(release_claim, (store, claim), blocking=True, through=True)
    return result
