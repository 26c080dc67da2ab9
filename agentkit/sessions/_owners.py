"""Who owns a served conversation, and who decided its approvals: rows beside the session.

The session id stays the one a client gave (the same in HTTP, Python and the CLI); the
owner is a row keyed by that id, holding the agent it belongs to and the principal that
started it (id, roles and claims, so that a reviewer's decision runs the owner's tools
with the owner's dependencies).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .._context import Principal
from .._store import paused_calls
from ._sql import _expired
from ._tables import SideTables

__all__ = ["Decision", "Owner", "Owners", "Waiting"]

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {p}agentkit_owners ("
    " session_id TEXT PRIMARY KEY, agent TEXT NOT NULL, owner TEXT NOT NULL,"
    " principal TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}agentkit_decisions ("
    " session_id TEXT NOT NULL, call_id TEXT NOT NULL, decision TEXT NOT NULL,"
    " decided_by TEXT NOT NULL, decided_at DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (session_id, decided_at, call_id))",
)


@dataclass(frozen=True, slots=True)
class Owner:
    """A conversation's owner: the agent it belongs to and the principal who started it."""

    agent: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class Decision:
    """One recorded decision: which call, what was decided, by whom, when."""

    call_id: str
    decision: bool | str
    decided_by: str
    decided_at: float

    def as_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        approved = self.decision is True
        reason = self.decision if isinstance(self.decision, str) else None
        return {
            "call_id": self.call_id,
            "approved": approved,
            "reason": reason,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
        }


@dataclass(frozen=True, slots=True)
class Waiting:
    """A paused conversation of an agent, as a reviewer's queue shows it."""

    session_id: str
    owner: str
    since: float
    calls: list[dict[str, Any]]


def _principal_json(principal: Principal) -> str:
    return json.dumps(
        {"id": principal.id, "roles": sorted(principal.roles), "claims": dict(principal.claims)},
        ensure_ascii=False,
        default=str,
    )


def _principal_of(text: str) -> Principal:
    data = json.loads(text)
    return Principal(data["id"], frozenset(data.get("roles") or ()), data.get("claims") or {})


def _waiting_ids(pending: Any) -> set[str]:
    """The keys of the calls a stored pause waits on, at every level (``PendingCall.key``)."""
    try:
        state = json.loads(pending) if pending else {}
    except ValueError:
        return set()
    return {call.key for call in paused_calls(state if isinstance(state, dict) else None)}


class Owners:
    """The owner rows and decision records of one store."""

    def __init__(self, store: Any) -> None:
        self._tables = SideTables(store, _TABLES, "ownership of served conversations")

    def owner(self, session_id: str) -> Owner | None:
        """The conversation's owner, or ``None`` when nobody claimed it."""
        rows = self._tables.rows(
            "SELECT agent, principal FROM {p}agentkit_owners WHERE session_id = ?", (session_id,)
        )
        return Owner(rows[0][0], _principal_of(rows[0][1])) if rows else None

    def claim(self, session_id: str, agent: str, principal: Principal) -> Owner:
        """Make ``principal`` the owner unless someone is already; the owner either way."""
        store = self._tables.store
        self._tables.ensure()
        with store._transaction(write=True) as cursor:
            row = store._run(
                cursor,
                "SELECT agent, principal FROM {p}agentkit_owners WHERE session_id = ?"
                + store._for_update,
                (session_id,),
            ).fetchone()
            if row is not None:
                return Owner(row[0], _principal_of(row[1]))
            written = _principal_json(principal)
            inserted = store._run(
                cursor,
                "INSERT INTO {p}agentkit_owners (session_id, agent, owner, principal, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (session_id, agent, principal.id, written, time.time()),
            ).rowcount
        if inserted == 1:  # ours: no need to read it back
            return Owner(agent, _principal_of(written))
        found = self.owner(session_id)  # a racing claim may have won: its row counts
        assert found is not None
        return found

    def record(
        self, session_id: str, decisions: dict[str, bool | str], decided_by: str
    ) -> float | None:
        """Record who decided which calls, now; the time recorded, or ``None`` (nothing
        written) when someone else already decided one of them during this pause, or the
        calls are no longer waiting.

        Two reviewers may decide one waiting call at once; only one resume can run it, so
        only one decision may stand in the record. The check and the write are one
        transaction holding the session's row (``FOR UPDATE`` on PostgreSQL, SQLite's
        single writer), and "this pause" is every decision since the session last
        changed: a model may use an earlier call's id again in a later pause. The same
        person may decide again (a retry after their connection dropped).
        """
        now = time.time()
        store = self._tables.store
        self._tables.ensure()
        with store._transaction(write=True) as cursor:
            row = store._run(
                cursor,
                "SELECT updated_at, status, pending, owner, lease_until, owner_host, owner_pid"
                " FROM {p}agentkit_sessions WHERE id = ?" + store._for_update,
                (session_id,),
            ).fetchone()
            if row is None or row[1] != "paused" or not set(decisions) <= _waiting_ids(row[2]):
                return None  # a resume ran meanwhile: the calls are no longer waiting
            since = row[0]
            # Another person's decision of this pause stands while its resume may still
            # come: for the store's lease, or while someone holds the conversation. One
            # older than that, unheld, had its worker die between the record and the resume
            # (nothing ran, nothing took it back): it must not lock the call for good.
            held = row[3] is not None and not _expired(row[4], row[5], row[6], now)
            stale = -1.0 if held else now - store._lease
            for call_id in decisions:
                taken = store._run(
                    cursor,
                    "SELECT 1 FROM {p}agentkit_decisions WHERE session_id = ? AND call_id = ?"
                    " AND decided_at >= ? AND decided_at > ? AND decided_by <> ?",
                    (session_id, call_id, since, stale, decided_by),
                ).fetchone()
                if taken is not None:
                    return None
            for call_id, decision in decisions.items():
                store._run(
                    cursor,
                    "DELETE FROM {p}agentkit_decisions WHERE session_id = ? AND call_id = ?"
                    " AND decided_at >= ?",
                    (session_id, call_id, since),
                )
                store._run(
                    cursor,
                    "INSERT INTO {p}agentkit_decisions"
                    " (session_id, call_id, decision, decided_by, decided_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (session_id, call_id, json.dumps(decision), decided_by, now),
                )
        return now

    def unrecord(
        self, session_id: str, call_ids: list[str], decided_by: str, decided_at: float
    ) -> bool:
        """Remove the decisions :meth:`record` wrote at ``decided_at``, when the resume they
        were for failed before anything of it reached the store; whether they were removed.

        A recorded decision locks every other reviewer out of the pause; one whose resume
        was refused (the paused tool is gone, the store failed, the session was busy) ran
        nothing and must not. The record stays once the session changed since the decision
        (the resume stored a round) or a side-effect call was written ahead after it (it
        may have run: a second decision must not run it again). One transaction holding
        the session's row, as :meth:`record`, so a racing resume cannot slip between.
        """
        store = self._tables.store
        self._tables.ensure()
        with store._transaction(write=True) as cursor:
            row = store._run(
                cursor,
                "SELECT updated_at, status FROM {p}agentkit_sessions WHERE id = ?"
                + store._for_update,
                (session_id,),
            ).fetchone()
            if row is None or row[1] != "paused" or row[0] > decided_at:
                return False  # the resume stored something: the decision stands
            started = store._run(
                cursor,
                "SELECT 1 FROM {p}agentkit_calls WHERE session_id = ? AND started_at >= ?",
                (session_id, decided_at),
            ).fetchone()
            if started is not None:
                return False  # a side-effect call may have run on this decision
            removed = 0
            for call_id in call_ids:
                removed += store._run(
                    cursor,
                    "DELETE FROM {p}agentkit_decisions WHERE session_id = ? AND call_id = ?"
                    " AND decided_by = ? AND decided_at = ?",
                    (session_id, call_id, decided_by, decided_at),
                ).rowcount
        return removed > 0

    def decisions(self, session_id: str) -> list[Decision]:
        """Every recorded decision of the conversation, oldest first."""
        rows = self._tables.rows(
            "SELECT call_id, decision, decided_by, decided_at FROM {p}agentkit_decisions"
            " WHERE session_id = ? ORDER BY decided_at, call_id",
            (session_id,),
        )
        return [Decision(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]

    def waiting(
        self, agent: str, limit: int = 200, per_owner: int = 20
    ) -> tuple[list[Waiting], bool]:
        """The paused conversations of ``agent``, longest waiting first, at most
        ``per_owner`` of each owner's, and whether some were left out.

        Each owner's share is bounded so that one person who leaves many calls waiting
        cannot push everyone else's out of the reviewers' view.
        """
        rows = self._tables.rows(
            "SELECT id, owner, updated_at, pending, total FROM ("
            " SELECT s.id AS id, o.owner AS owner, s.updated_at AS updated_at,"
            " s.pending AS pending, COUNT(*) OVER () AS total,"
            " ROW_NUMBER() OVER (PARTITION BY o.owner ORDER BY s.updated_at, s.id) AS place"
            " FROM {p}agentkit_sessions s JOIN {p}agentkit_owners o ON o.session_id = s.id"
            " WHERE s.status = 'paused' AND o.agent = ?"
            ") ranked WHERE place <= ? ORDER BY updated_at, id LIMIT ?",
            (agent, per_owner, limit),
        )
        more = bool(rows) and int(rows[0][4]) > len(rows)
        out: list[Waiting] = []
        for session_id, owner, since, pending, _ in rows:
            try:
                state = json.loads(pending) if pending else {}
            except ValueError:
                continue  # a damaged row is the store's to report when the session loads
            calls = [
                {
                    "id": call.key,
                    "name": call.name,
                    "arguments": call.arguments,
                    "arguments_digest": call.digest,
                    "path": list(call.path),
                }
                for call in paused_calls(state if isinstance(state, dict) else None)
            ]
            out.append(Waiting(session_id, owner, since, calls))
        return out, more

    async def run(self, method: str, *args: Any) -> Any:
        """``self.<method>(*args)`` off the event loop."""
        return await self._tables.off_loop(getattr(self, method), *args)
