"""API keys with identities, kept hashed beside the sessions (SQLite or PostgreSQL).

A key is ``ak_`` and 43 random URL-safe characters (256 bits). Only its SHA-256 digest is
stored: a slow password hash buys nothing for a key that random, and one indexed lookup
per request keeps authentication cheap. A revoked key's row stays (revoked_at set), so
every worker refuses it at its next request: nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._context import Principal
from .._errors import ConfigurationError
from ._tables import SideTables

__all__ = ["KeyInfo", "KeyTable", "NewKey"]

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {p}agentkit_keys ("
    " id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, principal TEXT NOT NULL,"
    " roles TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " revoked_at DOUBLE PRECISION)",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")
_PREFIX = "ak_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(value: str, what: str) -> str:
    """A user id or a role: 1 to 128 of letters, digits and ``._@:+-``, or a clear error."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigurationError(
            f"{what} {value!r} is not a valid name: 1 to 128 letters, digits and ._@:+- "
            "(starting with a letter or digit)"
        )
    return value


RESERVED = ("cli:", "key:", "cli", "local")
"""The ids agentkit gives on its own: ``cli:<user>`` for a decision made with ``agentkit
sessions approve``, ``key:<digest>`` for a shared key, ``local`` for a keyless loopback
client. A person an identity source names may not take one: the audit of decisions (and a
conversation's owner) would read as the command line's or a shared key's."""


def reserved_id(identity: str) -> bool:
    """Whether ``identity`` is one agentkit gives on its own (see :data:`RESERVED`), in any
    case and with any surrounding space."""
    folded = identity.strip().casefold()
    return folded in ("cli", "local") or folded.startswith(("cli:", "key:"))


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key as listed: never the key itself.

    Attributes:
        id: the key's id (for ``agentkit keys revoke``).
        principal: the user the key signs in.
        roles: the user's roles.
        created_at: seconds since the epoch.
        revoked_at: when it was revoked, or ``None`` while it works.
    """

    id: str
    principal: str
    roles: frozenset[str]
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: ``key`` is shown once and never stored."""

    key: str
    info: KeyInfo


class KeyTable:
    """The API keys of a store: ``add`` (returns the key once), ``list``, ``revoke`` and
    ``principal_for`` (the lookup each request makes)."""

    def __init__(self, store: Any) -> None:
        self._tables = SideTables(store, _TABLES, "a key table")

    @property
    def store(self) -> Any:
        """The store the keys live in."""
        return self._tables.store

    def add(self, principal: str, roles: Iterable[str] = ()) -> NewKey:
        """Make a key for ``principal`` with ``roles``; the key is in the result only."""
        check_name(principal, "the user")
        if reserved_id(principal):
            raise ConfigurationError(
                f"the user {principal!r} takes an id agentkit gives on its own (cli:..., "
                "key:..., local): decisions under it would read as the command line's or a "
                "shared key's; choose another name"
            )
        kept = sorted({check_name(role, "the role") for role in roles})
        key = _PREFIX + secrets.token_urlsafe(32)
        key_id = secrets.token_hex(6)
        now = time.time()
        self._tables.write(
            "INSERT INTO {p}agentkit_keys (id, digest, principal, roles, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key_id, _digest(key), principal, json.dumps(kept), now),
        )
        return NewKey(key, KeyInfo(key_id, principal, frozenset(kept), now, None))

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first, revoked ones included."""
        rows = self._tables.rows(
            "SELECT id, principal, roles, created_at, revoked_at FROM {p}agentkit_keys"
            " ORDER BY created_at, id"
        )
        return [KeyInfo(r[0], r[1], frozenset(json.loads(r[2])), r[3], r[4]) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id (or every key of a user, given ``user:NAME``); whether
        any key was revoked. Takes effect at every worker's next request."""
        if key_id.startswith("user:"):
            where, value = "principal = ?", key_id[5:]
        else:
            where, value = "id = ?", key_id
        return (
            self._tables.write(
                "UPDATE {p}agentkit_keys SET revoked_at = ? WHERE revoked_at IS NULL AND " + where,
                (time.time(), value),
            )
            > 0
        )

    def principal_for(self, key: str) -> Principal | None:
        """The principal a key signs in, or ``None`` for an unknown or revoked key."""
        if not key.startswith(_PREFIX) or len(key) > 200:
            return None
        rows = self._tables.rows(
            "SELECT principal, roles, revoked_at FROM {p}agentkit_keys WHERE digest = ?",
            (_digest(key),),
        )
        if not rows or rows[0][2] is not None:
            return None
        return Principal(rows[0][0], frozenset(json.loads(rows[0][1])))

    async def principal_for_async(self, key: str) -> Principal | None:
        """:meth:`principal_for` off the event loop."""
        if not key.startswith(_PREFIX) or len(key) > 200:
            return None
        found: Principal | None = await self._tables.off_loop(self.principal_for, key)
        return found
