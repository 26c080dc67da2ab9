"""The logic both SQL stores share: the schema, claims, append-only writes, loading.

A store subclass supplies connections and transactions (``_transaction``), its dialect
(placeholders, ``FOR UPDATE``, how to find a table) and the DDL of each schema version.
Every statement takes its values as SQL parameters; the only text ever put into SQL is
the table prefix, checked against a strict pattern when the store is made.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from functools import wraps
from typing import Any, ClassVar, Protocol, TypeVar, cast

from .._blocking import release_claim
from .._store import (
    CallRecord,
    Claim,
    SchemaVersionError,
    SessionBusyError,
    SessionCorruptError,
    SessionError,
    SessionInfo,
    SessionNotFoundError,
    SessionRecord,
    check_paused_state,
    check_session_id,
    check_transcript,
    decode_row,
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

SCHEMA_VERSION = 1


class Cursor(Protocol):
    """The slice of a DB-API cursor the stores use (sqlite3 and psycopg agree on it)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: Any, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def _host_identity() -> str:
    """Which machine and process namespace a pid belongs to (pids mean nothing elsewhere)."""
    parts = [socket.gethostname()]
    with suppress(OSError), open("/proc/sys/kernel/random/boot_id") as file:
        parts.append(file.read().strip())
    with suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)[:200]


_HOST = _host_identity()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


NOT_UTF8 = (
    "the text to store holds a lone surrogate (bytes that were not UTF-8, decoded with "
    "surrogateescape), which no database column can hold: nothing was written. Replace it "
    "first, e.g. text.encode('utf-8', 'replace').decode()"
)


class ConnectionDropped(SessionError):
    """A pooled connection turned out dead before its first statement did anything (a
    database server restart): the operation is retried once on a new connection."""


def _retried(method: F) -> F:
    """Run ``method`` again, once, when its connection was found dropped before anything
    was done: after a server restart, the next run does not fail on a stale connection."""

    @wraps(method)
    def retried(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ConnectionDropped:
            return method(*args, **kwargs)

    return retried  # type: ignore[return-value]


def _names_session(method: F) -> F:
    """Name the session in a ``SessionError`` the connection layer raised without one (a
    disk full, a read-only file, a lost connection): the caller learns which session's
    operation failed, as well as what to do. A dropped connection is retried once."""
    method = _retried(method)

    @wraps(method)
    def named(self: Any, session: Claim | str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, session, *args, **kwargs)
        except SessionError as error:
            if error.session_id is None:
                session_id = session.session_id if isinstance(session, Claim) else session
                error.session_id = session_id
                error.message = f"session {session_id!r}: {error.message}"
                error.args = (error.message,)
            raise

    return named  # type: ignore[return-value]


class SQLStore:
    """Shared implementation of ``agentkit.Store`` over a DB-API connection.

    Args:
        lease: seconds a claim stays valid without a write; every write renews it. A claim
            whose process died on this machine is taken over at once; one from a machine
            that went away, after the lease.
        executor_threads: not used any more (a store has one blocking surface; async code
            runs its calls in threads of its own); accepted so that older code runs.
    """

    schema_version: ClassVar[int] = SCHEMA_VERSION
    #: statements that take the schema from version N to N + 1, run in one transaction
    #: with the version bump; ``{p}`` is the table prefix.
    migrations: ClassVar[Mapping[int, Sequence[str]]] = {}
    _placeholder: ClassVar[str] = "?"
    _for_update: ClassVar[str] = ""

    def __init__(self, *, lease: float = 600.0, executor_threads: int = 8) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self._lease = lease
        del executor_threads  # see the docstring
        self._ready = False
        self._ready_lock = threading.Lock()
        self._prefix = ""

    # -- what a dialect supplies ------------------------------------------------------

    def _transaction(self, *, write: bool, durable: bool = False) -> AbstractContextManager[Cursor]:
        """A transaction; ``durable``: on disk when it commits, whatever the store's
        settings (a write-ahead record must survive a power cut)."""
        raise NotImplementedError

    def _statement(self) -> AbstractContextManager[Cursor]:
        """A cursor for one statement that needs no transaction around it (one statement is
        atomic by itself; a server store saves the BEGIN and COMMIT round trips)."""
        return self._transaction(write=True)

    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        raise NotImplementedError

    def _create_statements(self) -> Sequence[str]:
        raise NotImplementedError

    def _lock_schema(self, cursor: Cursor) -> None:
        """Serialise schema creation and upgrades between processes (where needed)."""

    def close(self) -> None:
        """Close the store's connections."""

    # -- SQL helpers ------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        text = text.replace("{p}", self._prefix)
        if self._placeholder != "?":
            text = text.replace("?", self._placeholder)
        return text

    def _run(self, cursor: Cursor, text: str, params: Sequence[Any] = ()) -> Cursor:
        cursor.execute(self._sql(text), params)
        return cursor

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            with self._transaction(write=True) as cursor:
                self._lock_schema(cursor)
                self._upgrade(cursor)
            self._ready = True

    def _upgrade(self, cursor: Cursor) -> None:
        if not self._table_exists(cursor, "agentkit_schema"):
            if self._table_exists(cursor, "agentkit_sessions"):
                raise SchemaVersionError(
                    "this database has agentkit tables but no schema version: it was not "
                    "written by agentkit, or is damaged; refusing to touch it"
                )
            for statement in self._create_statements():
                self._run(cursor, statement)
            self._run(cursor, "INSERT INTO {p}agentkit_schema (version) VALUES (?)", (1,))
        row = self._run(cursor, "SELECT version FROM {p}agentkit_schema").fetchall()
        if len(row) != 1 or not isinstance(row[0][0], int):
            raise SchemaVersionError("the agentkit_schema table does not hold one version")
        version: int = row[0][0]
        if version > self.schema_version:
            raise SchemaVersionError(
                f"this session database has schema version {version}, written by a newer "
                f"agentkit; this agentkit reads up to version {self.schema_version}. Upgrade "
                "agentkit (the database was not changed)."
            )
        while version < self.schema_version:
            steps = self.migrations.get(version)
            if steps is None:
                raise SchemaVersionError(f"no upgrade from schema version {version}")
            for statement in steps:
                self._run(cursor, statement)
            version += 1
            self._run(cursor, "UPDATE {p}agentkit_schema SET version = ?", (version,))

    # -- claims -----------------------------------------------------------------------

    def claim(
        self, session_id: str, *, wait: float = 0.0, metadata: Mapping[str, Any] | None = None
    ) -> Claim:
        """Take the session for one run (see ``agentkit.Store.claim``)."""
        deadline = time.monotonic() + wait
        for pause in _backoff():
            claim = self._try_claim(session_id, metadata)
            if claim is not None:
                return claim
            if time.monotonic() + pause > deadline:
                raise _busy(session_id, wait)
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    @_names_session
    def _try_claim(self, session_id: str, metadata: Mapping[str, Any] | None) -> Claim | None:
        check_session_id(session_id)
        self._ensure_schema()
        token = secrets.token_hex(16)
        try:
            return self._claim_with(session_id, token, metadata)
        except ConnectionDropped:  # its BEGIN failed: nothing was done
            raise
        except SessionError as error:
            if self._maybe_committed(error):
                # The connection dropped as the claim committed: the session may be held
                # under a token nobody knows, for the whole lease. Give it back (an update
                # of nothing when the claim did not land; retried while the store is away).
                with suppress(Exception):
                    release_claim(self, Claim(session_id, token, 0))
            raise
        except BaseException:
            # Ctrl-C (or an exit) while the claim committed: psycopg raises it once the
            # COMMIT has answered, and this process, alive, would hold the session for the
            # lease. Give it back, as above.
            with suppress(Exception):
                release_claim(self, Claim(session_id, token, 0))
            raise

    def _maybe_committed(self, error: SessionError) -> bool:
        """Whether a transaction that failed with ``error`` may have committed all the same
        (a server store whose connection dropped during the COMMIT)."""
        return False

    def _claim_with(
        self, session_id: str, token: str, metadata: Mapping[str, Any] | None
    ) -> Claim | None:
        now = time.time()
        with self._transaction(write=True) as cursor:
            self._run(
                cursor,
                "INSERT INTO {p}agentkit_sessions (id, created_at, updated_at, length, status,"
                " metadata) VALUES (?, ?, ?, 0, 'idle', ?) ON CONFLICT (id) DO NOTHING",
                (session_id, now, now, json.dumps(dict(metadata or {}))),
            )
            row = self._run(
                cursor,
                "SELECT owner, lease_until, owner_host, owner_pid, length FROM "
                "{p}agentkit_sessions WHERE id = ?" + self._for_update,
                (session_id,),
            ).fetchone()
            owner, lease_until, host, pid, length = row
            if not _numbers(length):
                raise _corrupt_session(session_id, "has a length that is not a number")
            if owner is not None and not _expired(lease_until, host, pid, now):
                return None
            self._run(
                cursor,
                "UPDATE {p}agentkit_sessions SET owner = ?, lease_until = ?, owner_host = ?,"
                " owner_pid = ? WHERE id = ?",
                (token, now + self._lease, _HOST, os.getpid(), session_id),
            )
        return Claim(session_id, token, int(length))

    @_names_session
    def release(self, claim: Claim) -> None:
        """Give the session back (see ``agentkit.Store.release``)."""
        with self._statement() as cursor:
            self._run(
                cursor,
                "UPDATE {p}agentkit_sessions SET owner = NULL, lease_until = NULL,"
                " owner_host = NULL, owner_pid = NULL WHERE id = ? AND owner = ?",
                (claim.session_id, claim.token),
            )

    # -- writes -----------------------------------------------------------------------

    @_names_session
    def append(
        self,
        claim: Claim,
        messages: Sequence[Mapping[str, Any]],
        *,
        pending: Mapping[str, Any] | None = None,
        close_round: bool = False,
    ) -> None:
        """Add messages in one transaction (see ``agentkit.Store.append``)."""
        bodies = [json.dumps(dict(m), ensure_ascii=False, separators=(",", ":")) for m in messages]
        state = json.dumps(dict(pending), ensure_ascii=False) if pending is not None else None
        now = time.time()
        with self._transaction(write=True) as cursor:
            row = self._run(
                cursor,
                "UPDATE {p}agentkit_sessions SET length = length + ?, updated_at = ?,"
                " lease_until = ?, status = ?, pending = ? WHERE id = ? AND owner = ?"
                " RETURNING length",
                (
                    len(bodies),
                    now,
                    now + self._lease,
                    "paused" if state is not None else "idle",
                    state,
                    claim.session_id,
                    claim.token,
                ),
            ).fetchone()
            if row is None:
                raise _lost(claim)
            length = int(row[0])
            start = length - len(bodies)
            if bodies:
                cursor.executemany(
                    self._sql(
                        "INSERT INTO {p}agentkit_messages (session_id, seq, body) VALUES (?, ?, ?)"
                    ),
                    [(claim.session_id, start + i, body) for i, body in enumerate(bodies)],
                )
            if close_round:
                self._run(
                    cursor,
                    "DELETE FROM {p}agentkit_calls WHERE session_id = ?",
                    (claim.session_id,),
                )
        claim.length = length

    @_names_session
    def write_ahead(self, claim: Claim, key: str, name: str, arguments: str, digest: str) -> None:
        """Record a side-effect call before it runs (see ``agentkit.Store.write_ahead``)."""
        now = time.time()
        with self._transaction(write=True, durable=True) as cursor:
            self._renew(cursor, claim, now)
            self._run(
                cursor,
                "INSERT INTO {p}agentkit_calls (session_id, key, name, arguments, digest, state,"
                " started_at) VALUES (?, ?, ?, ?, ?, 'started', ?) ON CONFLICT (session_id, key)"
                " DO UPDATE SET state = 'started', result = NULL, started_at = ?",
                (claim.session_id, key, name, arguments, digest, now, now),
            )

    @_names_session
    def record_result(self, claim: Claim, key: str, content: str) -> None:
        """Record a written-ahead call's outcome (see ``agentkit.Store.record_result``).

        Recorded even if the claim was lost meanwhile: the side effect happened, and the
        next run must know it did.
        """
        now = time.time()
        with self._statement() as cursor:
            self._run(
                cursor,
                "UPDATE {p}agentkit_calls SET state = 'done', result = ?, finished_at = ?"
                " WHERE session_id = ? AND key = ?",
                (content, now, claim.session_id, key),
            )

    def _renew(self, cursor: Cursor, claim: Claim, now: float) -> None:
        self._run(
            cursor,
            "UPDATE {p}agentkit_sessions SET lease_until = ? WHERE id = ? AND owner = ?",
            (now + self._lease, claim.session_id, claim.token),
        )
        if cursor.rowcount != 1:
            raise _lost(claim)

    @_names_session
    def delete(self, session_id: str) -> bool:
        """Remove a session and all it holds (see ``agentkit.Store.delete``)."""
        check_session_id(session_id)
        self._ensure_schema()
        with self._transaction(write=True) as cursor:
            for table in ("agentkit_messages", "agentkit_calls"):
                self._run(cursor, f"DELETE FROM {{p}}{table} WHERE session_id = ?", (session_id,))
            self._run(cursor, "DELETE FROM {p}agentkit_sessions WHERE id = ?", (session_id,))
            return cursor.rowcount > 0

    # -- reads ------------------------------------------------------------------------

    @_names_session
    def load(self, session: Claim | str) -> SessionRecord:
        """The session as stored (see ``agentkit.Store.load``).

        Raises ``SessionNotFoundError`` for an unknown id and ``SessionCorruptError`` naming
        the row when something stored cannot be read back.
        """
        session_id = session.session_id if isinstance(session, Claim) else session
        check_session_id(session_id)
        self._ensure_schema()
        with self._transaction(write=False) as cursor:
            row = self._run(
                cursor,
                "SELECT length, status, created_at, updated_at, metadata, pending FROM "
                "{p}agentkit_sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(
                    f"no session {session_id!r} in this store", session_id=session_id
                )
            rows = self._run(
                cursor,
                "SELECT seq, body FROM {p}agentkit_messages WHERE session_id = ? ORDER BY seq",
                (session_id,),
            ).fetchall()
            call_rows = self._run(
                cursor,
                "SELECT key, name, arguments, digest, state, result FROM {p}agentkit_calls"
                " WHERE session_id = ? ORDER BY started_at, key",
                (session_id,),
            ).fetchall()
        length, status, created_at, updated_at, metadata, pending = row
        info = _info(session_id, length, status, created_at, updated_at, metadata)
        if status not in ("idle", "paused"):
            raise _corrupt_session(session_id, f"has an unknown status {status!r}")
        if not _numbers(length, created_at, updated_at):
            raise _corrupt_session(session_id, "has a length or a timestamp that is not a number")
        messages: list[dict[str, Any]] = []
        for index, (seq, body) in enumerate(rows):
            if seq != index:
                raise SessionCorruptError(
                    f"session {session_id!r} is corrupt: message {index} is missing",
                    session_id=session_id,
                    row=index,
                )
            messages.append(decode_row(session_id, int(seq), body))
        if len(messages) != length:
            raise SessionCorruptError(
                f"session {session_id!r} is corrupt: it should hold {length} messages and "
                f"holds {len(messages)}",
                session_id=session_id,
                row=len(messages),
            )
        check_transcript(session_id, messages)
        state = decode_row(session_id, "paused state", pending) if pending is not None else None
        if (state is None) != (status == "idle"):
            raise _corrupt_session(session_id, "is paused without a paused state")
        if state is not None:
            check_paused_state(session_id, state)
        calls = []
        for key, name, arguments, digest, call_state, result in call_rows:
            if call_state not in ("started", "done"):
                raise _corrupt_session(session_id, f"has a call {key!r} in state {call_state!r}")
            if not all(isinstance(v, str) for v in (key, name, arguments, digest)) or not (
                result is None or isinstance(result, str)
            ):
                raise _corrupt_session(session_id, f"has a malformed call record {key!r}")
            calls.append(CallRecord(key, name, arguments, digest, call_state, result))
        return SessionRecord(info, messages, state, tuple(calls))

    @_retried
    def list_sessions(self, *, limit: int = 100, prefix: str = "") -> list[SessionInfo]:
        """Sessions whose id starts with ``prefix``, most recently updated first."""
        self._ensure_schema()
        with self._transaction(write=False) as cursor:
            rows = self._run(
                cursor,
                "SELECT id, length, status, created_at, updated_at, metadata FROM "
                "{p}agentkit_sessions WHERE substr(id, 1, ?) = ? ORDER BY updated_at DESC, id"
                " LIMIT ?",
                (len(prefix), prefix, max(0, int(limit))),
            ).fetchall()
        return [_info(*row) for row in rows]

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _info(
    session_id: str,
    length: int,
    status: str,
    created_at: float,
    updated_at: float,
    metadata: str | None,
) -> SessionInfo:
    # A row a hand edit or another program damaged is still listed (with 0 for what cannot
    # be read): one bad row must not hide every other session. ``load`` refuses it by name.
    try:
        meta = json.loads(metadata) if isinstance(metadata, str) and metadata else {}
    except ValueError:
        meta = {}
    return SessionInfo(
        str(session_id),
        int(length) if _numbers(length) else 0,
        "paused" if status == "paused" else "idle",
        float(created_at) if _numbers(created_at) else 0.0,
        float(updated_at) if _numbers(updated_at) else 0.0,
        meta if isinstance(meta, dict) else {},
    )


def _numbers(*values: object) -> bool:
    return all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        for value in values
    )


def _expired(lease_until: float | None, host: str | None, pid: int | None, now: float) -> bool:
    # A lease that is not a number (a damaged row) holds nothing: the claim repairs it.
    if not _numbers(lease_until) or cast(float, lease_until) < now:
        return True
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    # A claim held by a process of this machine that no longer exists is taken over at
    # once: a crashed run must not lock its session for the whole lease.
    return host == _HOST and pid is not None and pid != os.getpid() and not _alive(pid)


def _backoff() -> Iterator[float]:
    pause = 0.005
    while True:
        yield pause
        pause = min(pause * 2, 0.1)


def _busy(session_id: str, wait: float) -> SessionBusyError:
    waited = f" (waited {wait:g} s)" if wait > 0 else ""
    return SessionBusyError(
        f"session {session_id!r} is busy: another run holds it{waited}", session_id=session_id
    )


def _lost(claim: Claim) -> SessionBusyError:
    return SessionBusyError(
        f"session {claim.session_id!r} was taken over by another run (or deleted) while this "
        "run held it; nothing more was written",
        session_id=claim.session_id,
    )


def _corrupt_session(session_id: str, problem: str) -> SessionCorruptError:
    return SessionCorruptError(
        f"session {session_id!r} is corrupt: its session row {problem}; the session is refused "
        "(other sessions are not affected)",
        session_id=session_id,
        row="session",
    )
