"""Conversations that last: session stores for ``Agent(..., store=...)``.

``SQLiteStore`` keeps sessions in one file on one machine (stdlib ``sqlite3``);
``PostgresStore`` keeps them in PostgreSQL for many processes and machines (the
``agentkit[postgres]`` extra). Both implement ``agentkit.Store``. See docs/sessions.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    Store,
)
from ._keys import KeyInfo, KeyTable, NewKey
from ._sqlite import SQLiteStore

if TYPE_CHECKING:
    from ._postgres import PostgresStore

__all__ = [
    "CallRecord",
    "Claim",
    "KeyInfo",
    "KeyTable",
    "NewKey",
    "PostgresStore",
    "SQLiteStore",
    "SchemaVersionError",
    "SessionBusyError",
    "SessionCorruptError",
    "SessionError",
    "SessionInfo",
    "SessionNotFoundError",
    "SessionRecord",
    "Store",
]


def __getattr__(name: str) -> Any:
    # PostgresStore's module is light, but keep it out until asked for.
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module 'agentkit.sessions' has no attribute {name!r}")
