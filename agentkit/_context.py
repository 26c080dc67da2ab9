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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._wire import Usage

__all__ = ["Principal", "RunContext"]

DepsT = TypeVar("DepsT")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a run is for: a person or a service, as a server authenticated them.

    ``agentkit serve`` turns each request into one (from an API key, a token or a trusted
    proxy's header) and hands it to the run; in Python, pass ``principal=`` to
    ``Agent.run`` and the other entry points. Tools read it as ``ctx.principal``.

    Attributes:
        id: a stable name for the person (a user name, a token's ``sub``).
        roles: what the person may do, e.g. ``frozenset({"receptionist"})``.
        claims: what else the identity source said (a token's claims); never a secret.
    """

    id: str
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("a Principal needs a non-empty id")
        if not isinstance(self.roles, frozenset):
            object.__setattr__(self, "roles", frozenset(self.roles))

    def __hash__(self) -> int:
        return hash((self.id, self.roles))


@dataclass(slots=True)
class RunContext(Generic[DepsT]):
    """The state of the run a tool call belongs to.

    Attributes:
        deps: the user's dependencies (a database handle, an HTTP client, the current
            user...), passed as ``Agent.run(..., deps=...)`` (``context=``, deprecated, is the older
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
        principal: who the run is for (:class:`Principal`), or ``None`` when the caller
            named nobody (``Agent.run(..., principal=...)``; served runs always have one).
    """

    deps: DepsT
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn: int = 0
    call_id: str = ""
    idempotency_key: str = ""
    session: str | None = None
    principal: Principal | None = None
    # The run the call belongs to (its RunLoop), for a sub-agent's run (Agent.as_tool): its
    # deadline, where its events go, its usage. Not part of the public record.
    _caller: Any = field(default=None, repr=False, compare=False)
    # For an agent tool whose sub-run paused: what the sub-run resumes from (_delegate.py).
    _resume: Any = field(default=None, repr=False, compare=False)
