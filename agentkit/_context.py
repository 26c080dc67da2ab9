"""``RunContext[T]``: what a tool receives from the agent run that calls it.

A tool asks for the context by annotating one parameter with ``RunContext`` (or
``RunContext[MyDeps]``). That parameter is left out of the tool's JSON Schema, so the model
never sees it, and the agent loop fills it in on every call::

    @tool
    def lookup_order(ctx: RunContext[Database], order_id: int) -> str:
        \"\"\"Look up an order by its number.\"\"\"
        return ctx.deps.find(order_id)

    agent.run("Where is order 42?", deps=database)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._wire import Usage

__all__ = ["RunContext"]

DepsT = TypeVar("DepsT")


@dataclass(slots=True)
class RunContext(Generic[DepsT]):
    """The state of the run a tool call belongs to.

    Attributes:
        deps: the user's dependencies (a database handle, an HTTP client, the current
            user...), passed as ``Agent.run(..., deps=...)`` (``context=`` is the older
            name); ``None`` when none were passed.
        usage: tokens used by the run's model calls so far.
        messages: the transcript so far, as plain wire-format dicts. Read it; do not change
            it (the loop owns it).
        turn: how many model calls the run has made so far (1 during the first round's
            tool calls).
        call_id: the id of the tool call being run (empty outside a tool call).
        idempotency_key: a key naming this one call for good: the same when the call is run
            again after a crash, different for every other call. Pass it to a payment or
            messaging API so that a repeat is not done twice. On a session it is
            ``"<session>/<message number>/<call id>"``; without one, the call id.
        session: the session id of the run, or ``None``.
    """

    deps: DepsT
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn: int = 0
    call_id: str = ""
    idempotency_key: str = ""
    session: str | None = None
