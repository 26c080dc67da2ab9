"""The store seam: what an agent run needs from a place that keeps conversations.

The core defines the protocol and checks what a store hands back; the stores themselves
(``agentkit.sessions.SQLiteStore``, ``PostgresStore``) live outside the core and are
imported only by the user. Everything crossing the seam is plain data: wire-format message
dicts, strings and JSON-ready dicts. This module does no I/O.

A run on a session goes like this::

    claim = store.claim(session_id, wait=0.0)   # SessionBusyError if another run holds it
    record = store.load(claim)                  # messages, paused state, the open call log
    store.append(claim, [user, assistant])      # what the run added, as it goes
    store.write_ahead(claim, key, name, arguments, digest)   # before a side-effect call
    store.record_result(claim, key, content)                 # after it
    store.append(claim, tool_messages, close_round=True)     # the round is whole
    store.release(claim)

Every write names the claim; a store refuses writes from a claim that is no longer the
session's owner (``SessionBusyError``), so two runs never interleave messages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ._errors import AgentKitError
from ._result import PendingCall

__all__ = [
    "MAX_SESSION_ID",
    "CallRecord",
    "Claim",
    "SchemaVersionError",
    "SessionBusyError",
    "SessionCorruptError",
    "SessionError",
    "SessionInfo",
    "SessionNotFoundError",
    "SessionRecord",
    "Store",
    "argument_digest",
    "check_paused_state",
    "check_session_id",
    "check_transcript",
    "paused_calls",
]

MAX_SESSION_ID = 256

SessionStatus = Literal["idle", "paused"]


class SessionError(AgentKitError):
    """Base of the errors a session store raises. ``session_id`` names the session."""

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        messages: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, messages=messages)
        self.session_id = session_id


class SessionBusyError(SessionError):
    """Another run holds the session (or took it over): this run did not start or write."""


class SessionNotFoundError(SessionError, KeyError):
    """No session has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class SessionCorruptError(SessionError):
    """A stored row cannot be read back. ``row`` names it (a message number, or ``"session"``).

    Only this session is refused; every other session of the store keeps working.
    """

    def __init__(self, message: str, *, session_id: str, row: int | str) -> None:
        super().__init__(message, session_id=session_id)
        self.row = row


class SchemaVersionError(SessionError):
    """The database was written by a newer agentkit (or is not an agentkit store)."""


@dataclass(slots=True)
class Claim:
    """The right to write to one session, held by one run until released.

    Attributes:
        session_id: the session.
        token: a random string naming the holder; writes with another token are refused.
        length: how many messages the session holds, as far as this claim has written.
    """

    session_id: str
    token: str
    length: int = 0


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One entry of a session's write-ahead log: a side-effect tool call of the open round.

    Attributes:
        key: unique within the session (the assistant message's number and the call id).
        name: the tool's name.
        arguments: the arguments as the model wrote them (JSON text).
        digest: ``argument_digest(name, arguments)``.
        state: ``"started"`` (written ahead; if the run is gone, the call is in doubt) or
            ``"done"``.
        result: the tool message's content once done, else ``None``.
    """

    key: str
    name: str
    arguments: str
    digest: str
    state: Literal["started", "done"]
    result: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A summary of one stored session, as listed.

    Attributes:
        session_id: the id.
        length: how many messages it holds.
        status: ``"idle"`` or ``"paused"`` (waiting for approval decisions).
        created_at: seconds since the epoch.
        updated_at: seconds since the epoch of the last write.
        metadata: what the creator attached (``claim(..., metadata=...)``).
    """

    session_id: str
    length: int
    status: SessionStatus
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as loaded: everything a run needs to continue it.

    Attributes:
        info: the summary (id, length, status, times, metadata).
        messages: the stored transcript, wire-format dicts, oldest first. No system message
            is stored: the agent sends its current instructions.
        pending: when paused, the state the run left for ``resume`` (JSON-ready), else None.
        calls: the write-ahead log of the open round (empty once a round is whole).
    """

    info: SessionInfo
    messages: list[dict[str, Any]]
    pending: dict[str, Any] | None = None
    calls: tuple[CallRecord, ...] = ()

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.info.session_id

    @property
    def status(self) -> SessionStatus:
        """``"idle"`` or ``"paused"``."""
        return self.info.status

    @property
    def pending_calls(self) -> tuple[PendingCall, ...]:
        """The calls the paused session waits on, at every level (a call asked inside an
        agent used as a tool too, with its ``path`` and ``via``); empty when not paused."""
        return paused_calls(self.pending)


@runtime_checkable
class Store(Protocol):
    """What an agent needs from a session store: one blocking surface (async code runs each
    call in a thread, e.g. ``await asyncio.to_thread(store.load, session_id)``).

    Each write is one transaction. ``append`` costs O(new messages): a store never rewrites
    a stored transcript.
    """

    def claim(
        self, session_id: str, *, wait: float = 0.0, metadata: Mapping[str, Any] | None = None
    ) -> Claim:
        """Take the session for one run, creating it if new (with ``metadata``).

        Raises ``SessionBusyError`` when another run holds it, at once or after ``wait``
        seconds.
        """
        ...

    def release(self, claim: Claim) -> None:
        """Give the session back (a no-op if the claim was already lost)."""
        ...

    def load(self, session: Claim | str) -> SessionRecord:
        """The session's transcript, paused state and open call log."""
        ...

    def append(
        self,
        claim: Claim,
        messages: Sequence[Mapping[str, Any]],
        *,
        pending: Mapping[str, Any] | None = None,
        close_round: bool = False,
    ) -> None:
        """Add messages; set the paused state (``pending``) or clear it (``None``).

        ``close_round`` empties the call log: every call of the round has its tool message.
        """
        ...

    def write_ahead(self, claim: Claim, key: str, name: str, arguments: str, digest: str) -> None:
        """Record that a side-effect call is about to run (committed before it runs)."""
        ...

    def record_result(self, claim: Claim, key: str, content: str) -> None:
        """Record the outcome of a call written ahead (committed as soon as it ends)."""
        ...

    def list_sessions(self, *, limit: int = 100, prefix: str = "") -> list[SessionInfo]:
        """Sessions, the most recently updated first."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove a session and everything stored for it; ``False`` if there was none."""
        ...

    def close(self) -> None:
        """Close the store's connections."""
        ...


def check_session_id(session_id: object) -> str:
    """The id itself, or ``ValueError``: a session id is a non-empty string of at most 256."""
    if not isinstance(session_id, str):
        raise TypeError(f"a session id is a str, not {type(session_id).__name__}")
    if not session_id:
        raise ValueError("a session id cannot be empty")
    if len(session_id) > MAX_SESSION_ID:
        raise ValueError(
            f"a session id has at most {MAX_SESSION_ID} characters (this one has {len(session_id)})"
        )
    if "\x00" in session_id:  # PostgreSQL text cannot hold NUL
        raise ValueError("a session id cannot contain a NUL character")
    if not session_id.isascii():
        try:
            session_id.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (os.fsdecode of bytes that are not UTF-8): no store can
            # keep it, and a raw UnicodeEncodeError from deep in a driver says nothing.
            raise ValueError(
                "a session id must be valid UTF-8 text; this one holds a lone surrogate "
                "(bytes that were not UTF-8, decoded with surrogateescape)"
            ) from None
    return session_id


def argument_digest(name: str, arguments: str) -> str:
    """A digest binding a decision to one tool call's exact name and arguments.

    The arguments are canonicalised when they are JSON (key order and spacing do not
    matter), so the digest names what the call does, not how the model spelled it.
    """
    try:
        canonical = json.dumps(json.loads(arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = arguments
    return hashlib.sha256(f"{name}\x00{canonical}".encode()).hexdigest()


_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


def decode_row(session_id: str, row: int | str, text: object) -> dict[str, Any]:
    """One stored JSON object, or ``SessionCorruptError`` naming the session and row."""
    try:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode()
        value = json.loads(text) if isinstance(text, str) else text
    except (ValueError, UnicodeDecodeError) as error:
        raise _corrupt(session_id, row, f"is not JSON ({error})") from None
    if not isinstance(value, dict):
        raise _corrupt(session_id, row, f"is a JSON {type(value).__name__}, not an object")
    return value


def check_transcript(
    session_id: str, messages: Sequence[Mapping[str, Any]], *, first_row: int = 0
) -> None:
    """Refuse a transcript that a model would refuse: a bad message, or ids that do not pair.

    Every tool message must answer a call of the assistant message before it, and every call
    must be answered before the next user or assistant message. Only the last round may be
    open (a paused run, or a run that crashed mid-round). Raises ``SessionCorruptError``
    naming the session and the first bad row.
    """
    open_calls: dict[str, int] = {}
    for offset, message in enumerate(messages):
        row = first_row + offset
        role = message.get("role")
        if role not in _ROLES:
            raise _corrupt(session_id, row, f"has no valid role ({role!r})")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in open_calls:
                raise _corrupt(
                    session_id, row, f"answers a tool call ({call_id!r}) that is not open"
                )
            del open_calls[call_id]
            continue
        if open_calls:
            first = min(open_calls.values())
            raise _corrupt(
                session_id,
                first,
                f"has tool calls never answered ({', '.join(sorted(open_calls))})",
            )
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise _corrupt(session_id, row, "has tool_calls that are not a list")
            for call in calls:
                call_id = call.get("id") if isinstance(call, dict) else None
                function = call.get("function") if isinstance(call, dict) else None
                if (
                    not isinstance(call_id, str)
                    or not isinstance(function, dict)
                    or not isinstance(function.get("name"), str)
                ):
                    raise _corrupt(session_id, row, "has a malformed tool call")
                if call_id in open_calls:
                    raise _corrupt(session_id, row, f"repeats the tool call id {call_id!r}")
                open_calls[call_id] = row


def check_paused_state(session_id: str, state: Mapping[str, Any]) -> None:
    """Refuse a paused state that ``resume`` could not read: ``calls`` a list of calls (each
    with a text ``id``; ``name``, ``arguments`` and ``digest`` texts too), ``settled`` a map of
    call id to tool message text, ``nested`` a map of call id to a paused sub-run (its
    ``messages``, a list of messages, and its ``state``, checked the same way). Raises
    ``SessionCorruptError`` naming the session."""
    calls = state.get("calls", [])
    if not isinstance(calls, list):
        raise _corrupt(session_id, "paused state", "has calls that are not a list")
    for call in calls:
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("id"), str)
            or not all(
                isinstance(call.get(key, ""), str) for key in ("name", "arguments", "digest")
            )
        ):
            raise _corrupt(session_id, "paused state", "has a malformed paused call")
    settled = state.get("settled", {})
    if not isinstance(settled, dict) or not all(
        isinstance(value, str) for value in settled.values()
    ):
        raise _corrupt(session_id, "paused state", "has settled calls that are not texts")
    if not isinstance(state.get("round", 0), int):
        raise _corrupt(session_id, "paused state", "has a round that is not a number")
    nested = state.get("nested", {})
    if not isinstance(nested, dict):
        raise _corrupt(session_id, "paused state", "has nested runs that are not a map")
    for sub in nested.values():
        if (
            not isinstance(sub, dict)
            or not isinstance(sub.get("messages"), list)
            or not all(isinstance(m, dict) for m in sub["messages"])
            or not isinstance(sub.get("state"), dict)
        ):
            raise _corrupt(session_id, "paused state", "has a malformed nested run")
        check_paused_state(session_id, sub["state"])


def paused_calls(
    state: Mapping[str, Any] | None, via: tuple[str, ...] = ()
) -> tuple[PendingCall, ...]:
    """Every call a paused state waits on, at every level: the run's own calls, then those
    of each agent-tool call's paused sub-run (with that call's id before their ``via``).
    ``kwargs`` are empty (a stored state holds the arguments as text)."""
    if not state:
        return ()
    found = [
        PendingCall(
            str(call.get("id")),
            str(call.get("name", "")),
            str(call.get("arguments", "")),
            {},
            str(call.get("digest", "")),
            tuple(str(name) for name in call.get("path") or ()),
            via,
        )
        for call in state.get("calls") or ()
        if isinstance(call, dict)
    ]
    for call_id, sub in (state.get("nested") or {}).items():
        if isinstance(sub, dict) and isinstance(sub.get("state"), dict):
            found += paused_calls(sub["state"], (*via, call_id))
    return tuple(found)


def open_calls(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of the last assistant message that no tool message answers yet."""
    answered: set[str] = set()
    for message in reversed(messages):
        if message.get("role") == "tool":
            answered.add(str(message.get("tool_call_id")))
            continue
        if message.get("role") == "assistant":
            calls = message.get("tool_calls") or []
            return [call for call in calls if call.get("id") not in answered]
        return []
    return []


def _corrupt(session_id: str, row: int | str, problem: str) -> SessionCorruptError:
    where = f"message {row}" if isinstance(row, int) else str(row)
    return SessionCorruptError(
        f"session {session_id!r} is corrupt: its {where} {problem}; the session is refused "
        "(other sessions are not affected)",
        session_id=session_id,
        row=row,
    )
