"""``PostgresStore``: sessions in PostgreSQL (psycopg 3), shared by processes and machines.

psycopg is imported when the first store is made, never by ``import agentkit``; without it,
the error names the extra to install.
"""

from __future__ import annotations

import queue
import re
import select
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from .._errors import ConfigurationError
from .._store import SessionError
from ._sql import NOT_UTF8, ConnectionDropped, Cursor, SQLStore

__all__ = ["PostgresStore"]

_CREATE_V1 = (
    "CREATE TABLE {p}agentkit_schema (version INTEGER NOT NULL)",
    "CREATE TABLE {p}agentkit_sessions ("
    " id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL, length INTEGER NOT NULL, status TEXT NOT NULL,"
    " pending TEXT, metadata TEXT, owner TEXT, lease_until DOUBLE PRECISION, owner_host TEXT,"
    " owner_pid INTEGER)",
    "CREATE INDEX ON {p}agentkit_sessions (updated_at)",
    "CREATE TABLE {p}agentkit_messages ("
    " session_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (session_id, seq))",
    "CREATE TABLE {p}agentkit_calls ("
    " session_id TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, arguments TEXT NOT NULL,"
    " digest TEXT NOT NULL, state TEXT NOT NULL, result TEXT,"
    " started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,"
    " PRIMARY KEY (session_id, key))",
)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Any constant works: it only has to be the same in every process that opens a store.
_SCHEMA_LOCK = 0x6167656E746B6974  # "agentkit"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "PostgresStore needs psycopg 3: pip install 'agentkit[postgres]'"
        ) from None
    return psycopg


class PostgresStore(SQLStore):
    """Conversations kept in PostgreSQL: the store for more than one process or machine.

    Any worker can continue any conversation; a session is claimed by one run at a time
    (a row lock decides), and every write is one transaction. Connections come from a small
    pool; async code runs the store's calls in threads (the agent does), off the event loop.

    Args:
        dsn: a libpq connection string, e.g. ``"postgresql://user@host/db"``.
        schema: the PostgreSQL schema that holds the tables (created if missing).
        pool_size: connections kept open at most.
        lease: seconds a run's claim on a session lasts without a write.
        connect_timeout: seconds to wait for a connection.
        lock_timeout: seconds a statement waits for a row another connection holds locked
            (a process frozen mid-transaction) before it fails with a ``SessionError``.
    """

    _placeholder = "%s"
    _for_update = " FOR UPDATE"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 10,
        lease: float = 600.0,
        connect_timeout: float = 10.0,
        executor_threads: int | None = None,
        lock_timeout: float = 30.0,
    ) -> None:
        super().__init__(lease=lease, executor_threads=executor_threads or pool_size)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(
                "schema must be a plain lower-case PostgreSQL name (letters, digits, _)"
            )
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if not lock_timeout > 0:
            raise ValueError("lock_timeout must be positive")
        self._psycopg = _psycopg()
        self._dsn = dsn
        self.schema = schema
        self._prefix = f'"{schema}".'
        self._connect_timeout = connect_timeout
        # PostgreSQL waits for a row lock without end: a claim or a release behind a
        # transaction whose process froze would hang for as long as that process does.
        self._lock_timeout = f"{max(1, round(lock_timeout * 1000))}ms"
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()  # orders close() against a connection given back
        self._closed = False

    def __repr__(self) -> str:
        # Never the DSN: it may hold a password.
        return f"PostgresStore(schema={self.schema!r})"

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._connect_timeout + 30):
            raise SessionError("no PostgreSQL connection came free in time (pool exhausted)")
        connection = None
        try:
            connection = self._pooled()
            if connection is None:
                connection = self._connect()
            yield connection
        except self._psycopg.Error as error:
            if connection is not None and connection.broken:  # never given back
                connection.close()
                connection = None
            raise SessionError(self._explain(error)) from error
        except UnicodeEncodeError as error:  # psycopg encodes the parameters before sending
            raise SessionError(NOT_UTF8) from error
        finally:
            if connection is not None:
                self._give_back(connection)
            self._slots.release()

    def _give_back(self, connection: Any) -> None:
        # close() closes only idle connections (libpq frees a connection under the thread
        # using it otherwise, and the process crashes): one in use at close() is closed here.
        with self._lock:
            if not (connection.closed or connection.broken or self._closed):
                self._pool.put(connection)
                return
        connection.close()

    def _explain(self, error: BaseException) -> str:
        """What a psycopg error means for the caller, and what to do, in words."""
        state = getattr(error, "sqlstate", None) or ""
        if state in ("42P01", "3F000"):  # undefined_table, invalid_schema_name
            return (
                f"the agentkit tables in PostgreSQL schema {self.schema!r} are gone (dropped "
                "while this store was open): nothing was written. Restore them, or open a new "
                "PostgresStore to create them again."
            )
        if state == "53100":  # disk_full
            return "PostgreSQL's disk is full: nothing was written. Free some space and retry."
        if state == "25006":  # read_only_sql_transaction: a standby, or a read-only server
            return (
                "PostgreSQL refuses writes (a read-only server or a standby): nothing was "
                "written. Point the store at the primary."
            )
        if state == "55P03":  # lock_not_available: lock_timeout passed
            return (
                "another connection held the session's row locked in PostgreSQL for longer "
                f"than lock_timeout ({self._lock_timeout}; a process frozen mid-transaction):"
                " nothing was written. Retry, or open the store with a longer lock_timeout."
            )
        if isinstance(error, self._psycopg.OperationalError):
            return (
                f"PostgreSQL failed: {_first_line(error)}; retry (the transaction was rolled "
                "back, unless the connection dropped as it committed)"
            )
        return f"PostgreSQL refused a statement: {_first_line(error)}; nothing was written"

    def _maybe_committed(self, error: SessionError) -> bool:
        # A lost connection (not a refused statement: that has a state of its own) may
        # have lost the COMMIT's answer after the server applied it.
        cause = error.__cause__
        if not isinstance(cause, self._psycopg.OperationalError):
            return False
        state = cause.sqlstate or ""
        return state == "" or state.startswith(("08", "57P"))  # connection, shutdown

    def _pooled(self) -> Any:
        """A pooled connection that still looks alive, or None.

        An idle connection has nothing to read: if its socket is readable, the server closed
        it or sent a FATAL (a restart, an admin's terminate), and it is dropped unused. The
        check is one poll, no round trip.
        """
        while True:
            try:
                connection = self._pool.get_nowait()
            except queue.Empty:
                return None
            try:
                readable, _, _ = select.select([connection.fileno()], [], [], 0)
            except (OSError, ValueError, self._psycopg.Error):
                readable = [True]
            if not readable and not connection.closed:
                return connection
            connection.close()

    def _dropped(self, error: BaseException) -> ConnectionDropped:
        # The pooled connections idled through the same restart: drop them all, so that
        # the retry gets a new connection.
        self._close_idle()
        return ConnectionDropped(
            f"the connection to PostgreSQL was lost ({_first_line(error)}): the server "
            "restarted or the network dropped; nothing was written. Retry once the server "
            "is back."
        )

    def _connect(self) -> Any:
        if self._closed:
            raise SessionError("this PostgresStore is closed")
        try:
            connection = self._psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except self._psycopg.OperationalError as error:
            raise SessionError(f"cannot connect to PostgreSQL: {_first_line(error)}") from None
        try:
            connection.execute(
                "SELECT set_config('lock_timeout', %s, false)", (self._lock_timeout,)
            )
        except self._psycopg.Error as error:
            connection.close()
            raise SessionError(
                f"cannot set up a PostgreSQL connection: {_first_line(error)}"
            ) from None
        return connection

    @contextmanager
    def _transaction(self, *, write: bool, durable: bool = False) -> Iterator[Cursor]:
        with ExitStack() as stack:
            connection, transaction = self._begin(stack)
            with _entered(transaction):
                cursor = connection.cursor()
                if not write:
                    # One snapshot for the session row and its messages.
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield cursor

    def _begin(self, stack: ExitStack) -> tuple[Any, Any]:
        """A connection (its release left on ``stack``) with a transaction begun.

        BEGIN is a transaction's first statement: when it fails on a connection the server
        dropped (a restart), nothing was done, so it is sent once more on a new connection.
        Every user of ``_transaction`` gets this, the side tables of other modules too.
        """
        for attempt in (0, 1):
            with ExitStack() as attempt_stack:
                connection = attempt_stack.enter_context(self._connection())
                try:
                    transaction = connection.transaction()
                    transaction.__enter__()
                except self._psycopg.OperationalError as error:
                    if not connection.broken:
                        raise
                    dropped = self._dropped(error)
                    if attempt:
                        raise dropped from error
                    continue  # the broken connection is closed as attempt_stack ends
                stack.push(attempt_stack.pop_all())
                return connection, transaction
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _statement(self) -> Iterator[Cursor]:
        # autocommit: the statement commits itself. The statements run this way (release,
        # record_result) mean the same run twice, so a dropped connection may retry them.
        with self._connection() as connection:
            try:
                yield connection.cursor()
            except self._psycopg.OperationalError as error:
                if connection.broken:
                    raise self._dropped(error) from error
                raise

    def _lock_schema(self, cursor: Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.schema, table),
        )
        return cursor.fetchone() is not None

    def _create_statements(self) -> Sequence[str]:
        return _CREATE_V1

    def close(self) -> None:
        """Close the store's idle connections and its worker threads; a connection that a
        call is using is closed when that call ends, and later calls raise ``SessionError``."""
        super().close()
        with self._lock:
            self._closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


@contextmanager
def _entered(transaction: Any) -> Iterator[None]:
    """Leave a transaction already entered: commit, or roll back on an exception."""
    try:
        yield
    except BaseException as error:
        if not transaction.__exit__(type(error), error, error.__traceback__):
            raise
    else:
        transaction.__exit__(None, None, None)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
