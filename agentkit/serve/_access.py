"""Who may do what with a served conversation: ownership, reviewers, per-person deps.

A stored conversation's id is the name the client gave; its owner is a row beside it
(``agentkit.sessions._owners``). Every refusal names only what the client sent: another
person's conversation is a plain 404, exactly as if it did not exist, and nothing is
written for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ._errors import ServeError
from ._identity import AuthSource
from ._run import RunSpec

if TYPE_CHECKING:
    from .._context import Principal
    from .._result import PendingCall
    from ..sessions._owners import Owners

__all__ = ["Access"]


def _not_found() -> ServeError:
    return ServeError(404, "no such conversation", code="conversation_not_found")


class Access:
    """The rules of one app: which principal may continue, read or decide a conversation."""

    def __init__(
        self,
        source: AuthSource,
        agents: Mapping[str, Any],
        deps: Callable[[Principal], Any] | None,
        reviewers: frozenset[str],
    ) -> None:
        if not isinstance(source, AuthSource):
            raise ConfigurationError(
                "auth= takes an identity source: StoredKeys(store), OIDC(issuer, audience) "
                "or TrustedProxy(header, proxies)"
            )
        if deps is not None and not callable(deps):
            raise ConfigurationError("deps= takes a function of the principal: deps(principal)")
        if reviewers and (source.shared or getattr(source, "roles_header", True) is None):
            # nobody could ever hold the role: every waiting call would wait forever, the
            # owner's own decision refused for want of a reviewer
            raise ValueError(
                f"reviewers={sorted(reviewers)} need people with roles: shared keys and a "
                "proxy without a roles header sign in no one with a role; use StoredKeys, "
                "OIDC or TrustedProxy(..., roles_header=...) (agentkit serve: --auth keys, "
                "--auth oidc, or --proxy-roles-header)"
            )
        self.source = source
        self.deps = deps
        self._deps_async = deps is not None and (
            inspect.iscoroutinefunction(deps)
            or inspect.iscoroutinefunction(type(deps).__call__)  # an object with async __call__
        )
        self.reviewers = reviewers
        self._owners: dict[str, Owners] = {}
        for name, agent in agents.items():
            needs = agent.needs_deps
            if needs and deps is None:
                raise ValueError(
                    f"the agent {name!r} has tools {list(needs)} that need a RunContext[T] "
                    "value: give create_app(..., deps=factory), where factory(principal) "
                    "returns it (agentkit serve: --deps bot.py:FUNCTION)"
                )
            store = getattr(agent, "store", None)
            if store is not None:
                from ..sessions._owners import Owners

                self._owners[name] = Owners(store)

    def is_reviewer(self, principal: Principal) -> bool:
        """Whether the principal holds one of the reviewer roles."""
        return bool(self.reviewers & principal.roles)

    async def with_identity(self, spec: RunSpec, principal: Principal) -> RunSpec:
        """``spec`` with the principal and the deps made for them."""
        deps = spec.deps
        if self.deps is not None:
            if self._deps_async:
                deps = self.deps(principal)
            else:
                # A sync factory may do I/O (the clinic opens its database, which may wait
                # on a lock): on the event loop it would stall every other request.
                deps = await asyncio.to_thread(self.deps, principal)
            if asyncio.iscoroutine(deps):
                deps = await deps
            if deps is None and spec.agent.needs_deps:
                # the run would blame its caller for passing no deps=: name the factory
                name = getattr(self.deps, "__name__", type(self.deps).__name__)
                raise ConfigurationError(
                    f"the deps= factory {name} returned None for {principal.id!r}; the tools "
                    f"{list(spec.agent.needs_deps)} need a value"
                )
        return dataclasses.replace(spec, deps=deps, principal=principal)

    async def _owner(self, conversation: str, agent: str) -> Principal | None:
        owner = await self._owners[agent].run("owner", conversation)
        if owner is None:
            return None
        if owner.agent != agent:
            raise _not_found()
        found: Principal = owner.principal
        return found

    async def _exists(self, conversation: str, agent: str) -> bool:
        from .._store import SessionNotFoundError

        store = self._owners[agent]._tables.store
        try:
            await asyncio.to_thread(store.load, conversation)
        except SessionNotFoundError:
            return False
        return True

    async def continue_(self, conversation: str, agent: str, principal: Principal) -> None:
        """Let ``principal`` add to the conversation (claiming a new one), or a 404."""
        # One trip off the event loop for the owner, the conversation and the claim: each
        # trip to a worker thread and back costs more than the statement it runs.
        owners = self._owners[agent]
        await owners._tables.off_loop(self._continue, owners, conversation, agent, principal)

    def _continue(
        self, owners: Owners, conversation: str, agent: str, principal: Principal
    ) -> None:
        from .._store import SessionNotFoundError

        found = owners.owner(conversation)
        if found is not None and found.agent != agent:
            raise _not_found()
        owner = None if found is None else found.principal
        if owner is None:
            try:
                owners._tables.store.load(conversation)
                exists = True
            except SessionNotFoundError:
                exists = False
            if exists:
                if self.source.shared:
                    return  # made in Python or the CLI: the operator's own
                raise _not_found()
            claimed = owners.claim(conversation, agent, principal)
            if claimed.agent != agent:
                raise _not_found()
            owner = claimed.principal
        if owner.id != principal.id:
            raise _not_found()

    async def read(self, conversation: str, agent: str, principal: Principal) -> str | None:
        """Let ``principal`` read the conversation (its owner or a reviewer); the owner's
        id, or a 404."""
        owner = await self._owner(conversation, agent)
        if owner is None:
            if self.source.shared or self.is_reviewer(principal):
                return None
            raise _not_found()
        if owner.id != principal.id and not self.is_reviewer(principal):
            raise _not_found()
        return owner.id

    async def decide(
        self,
        conversation: str,
        agent: str,
        principal: Principal,
        decisions: Mapping[str, bool | str],
        digests: Mapping[str, str] | None = None,
    ) -> tuple[Principal, dict[str, PendingCall], Callable[[], Awaitable[bool]] | None]:
        """Check that ``principal`` may decide the conversation's waiting calls and record
        who decided; the principal the run goes on for (the owner), the waiting calls by
        key (those asked inside agents used as tools too), and what removes the record
        again (``None`` when nothing was recorded) for a resume that fails before running
        anything. 404 for a conversation that does not exist or is not theirs to see, 403
        for an owner when reviewers decide; nothing is written before every check passed."""
        owner = await self._owner(conversation, agent)
        if owner is None and not (self.source.shared or self.is_reviewer(principal)):
            raise _not_found()
        is_owner = owner is None or owner.id == principal.id
        if self.reviewers:
            if not self.is_reviewer(principal):
                if is_owner:
                    raise ServeError(
                        403,
                        "on this server a reviewer decides waiting calls, not the person who asked",
                        type="permission_error",
                        code="reviewer_required",
                    )
                raise _not_found()
            if owner is not None and owner.id == principal.id:
                # a reviewer who asked is the person who asked: another reviewer decides
                # (a receptionist does not approve their own booking)
                raise ServeError(
                    403,
                    "on this server another reviewer decides your own waiting calls",
                    type="permission_error",
                    code="reviewer_required",
                )
        elif not is_owner:
            raise _not_found()
        store = self._owners[agent]._tables.store
        record = await asyncio.to_thread(store.load, conversation)  # SessionNotFoundError: 404
        calls = {call.key: call for call in record.pending_calls}
        waiting = {key: call.digest for key, call in calls.items()}
        if digests is not None and any(
            call_id in waiting and waiting[call_id] != digest for call_id, digest in digests.items()
        ):
            # decided on other arguments than the waiting call's: refused before any write
            raise ServeError(
                409,
                "a decision was made on other arguments than the waiting call's "
                "(arguments_digest differs); show the call again and decide anew",
                param="digests",
                code="approval_mismatch",
            )
        missing = sorted(set(waiting) - set(decisions))
        if waiting and set(decisions) <= set(waiting) and missing:
            # the resume would refuse it; recorded, the refused decision would lock every
            # other reviewer out of this pause ("already decided")
            raise ServeError(
                409,
                f"no decision for the waiting call {missing[0][:100]!r}: every waiting call "
                "needs true, false or a reason; nothing was recorded or run",
                param="decisions",
                code="approval_mismatch",
            )
        undo: Callable[[], Awaitable[bool]] | None = None
        if waiting and set(decisions) <= set(waiting):
            recorded = await self._owners[agent].run(
                "record", conversation, dict(decisions), principal.id
            )
            if recorded is None:
                # another reviewer decided first: only their decision runs, so only theirs
                # may stand in the record
                raise ServeError(
                    409,
                    "these calls were already decided by someone else; show the conversation again",
                    code="already_decided",
                )
            undo = partial(
                self._owners[agent].run,
                "unrecord",
                conversation,
                list(decisions),
                principal.id,
                recorded,
            )
        return (owner if owner is not None else principal), calls, undo

    async def decisions(self, conversation: str, agent: str) -> list[dict[str, Any]]:
        """The recorded decisions of a conversation (who decided which call, when)."""
        found = await self._owners[agent].run("decisions", conversation)
        return [decision.as_dict() for decision in found]

    async def waiting(self, agent: str, principal: Principal) -> tuple[list[dict[str, Any]], bool]:
        """The agent's paused conversations, for a reviewer (at most a share of each
        owner's), and whether some were left out; a 403 for anyone else."""
        if not self.is_reviewer(principal):
            raise ServeError(
                403,
                "only a reviewer sees the waiting calls"
                + ("" if self.reviewers else " (this server has no reviewers)"),
                type="permission_error",
                code="reviewer_required",
            )
        rows, more = await self._owners[agent].run("waiting", agent)
        return [
            {
                "conversation": row.session_id,
                "owner": row.owner,
                "calls": row.calls,
                "waiting_since": row.since,
            }
            for row in rows
            if row.owner != principal.id  # their own calls are another reviewer's to decide
        ], more
