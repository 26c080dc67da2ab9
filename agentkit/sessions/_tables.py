"""Tables that sit beside a SQL store's sessions: made on first use, in the store's own
database and schema, with the store's connections and dialect.

They are not part of the sessions schema version: each is created with ``IF NOT EXISTS``
under the store's schema lock, so a store written by an agentkit without them reads the
same, and an older agentkit ignores them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigurationError

__all__ = ["SideTables", "sql_store"]


def sql_store(store: Any, what: str) -> Any:
    """``store`` if it is one of agentkit's SQL stores, else a clear ``ConfigurationError``."""
    from ._sql import SQLStore

    if not isinstance(store, SQLStore):
        raise ConfigurationError(
            f"{what} needs a SQLiteStore or PostgresStore, not {type(store).__name__}"
        )
    return store


class SideTables:
    """Creates ``statements`` once per process in ``store``'s database, then lets callers
    run statements there, synchronously or off the event loop."""

    def __init__(self, store: Any, statements: Sequence[str], what: str) -> None:
        self.store = sql_store(store, what)
        self._statements = tuple(statements)
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Create the tables if this process has not yet (idempotent, safe across processes)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            store = self.store
            store._ensure_schema()
            with store._transaction(write=True) as cursor:
                store._lock_schema(cursor)
                for statement in self._statements:
                    store._run(cursor, statement)
            self._ready = True

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one read statement."""
        self.ensure()
        with self.store._transaction(write=False) as cursor:
            return list(self.store._run(cursor, text, params).fetchall())

    def write(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; how many rows it changed."""
        self.ensure()
        with self.store._transaction(write=True) as cursor:
            return int(self.store._run(cursor, text, params).rowcount)

    async def off_loop(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, off the event loop."""
        return await asyncio.to_thread(fn, *args)
