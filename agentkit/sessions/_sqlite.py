"""``SQLiteStore``: sessions in one SQLite file (stdlib ``sqlite3``, WAL), for one machine."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .._store import SessionError
from ._sql import NOT_UTF8, Cursor, SQLStore

__all__ = ["SQLiteStore"]

_CREATE_V1 = (
    "CREATE TABLE {p}agentkit_schema (version INTEGER NOT NULL)",
    "CREATE TABLE {p}agentkit_sessions ("
    " id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
    " length INTEGER NOT NULL, status TEXT NOT NULL, pending TEXT, metadata TEXT,"
    " owner TEXT, lease_until REAL, owner_host TEXT, owner_pid INTEGER)",
    "CREATE INDEX {p}agentkit_sessions_updated ON agentkit_sessions (updated_at)",
    "CREATE TABLE {p}agentkit_messages ("
    " session_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (session_id, seq)) WITHOUT ROWID",
    "CREATE TABLE {p}agentkit_calls ("
    " session_id TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, arguments TEXT NOT NULL,"
    " digest TEXT NOT NULL, state TEXT NOT NULL, result TEXT, started_at REAL NOT NULL,"
    " finished_at REAL, PRIMARY KEY (session_id, key))",
)


class _Slot:
    """A thread's connection, in that thread's local storage alone: freed when the thread
    ends, and its finalizer closes the connection then."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection


def _thread_ended(
    lock: threading.Lock, connections: set[sqlite3.Connection], connection: sqlite3.Connection
) -> None:
    # Closed here only while the store still counts it: close() takes the store's idle
    # connections out under the same lock, so no connection is closed twice at once.
    with lock:
        if connection not in connections:
            return
        connections.discard(connection)
    connection.close()


class SQLiteStore(SQLStore):
    """Conversations kept in a SQLite file: the embedded default for one machine.

    Several processes may share the file: a session is claimed by one run at a time, and
    every write is one transaction. The file uses WAL, so readers never wait for a writer.
    Async code runs its calls in threads (the agent does), off the event loop.

    Args:
        path: the database file; created (with its folder) if missing.
        lease: seconds a run's claim on a session lasts without a write; a claim whose
            process died on this machine is taken over at once.
        busy_timeout: seconds a write waits for another process's write to finish.
        synchronous: SQLite's ``synchronous`` setting for the transcript. ``"NORMAL"`` (the
            default) survives a crash of the process; a power cut may lose the last writes.
            ``"FULL"`` syncs every commit. Write-ahead records of side-effect calls are
            always synced, whatever this says.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: float = 600.0,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        executor_threads: int = 8,
    ) -> None:
        super().__init__(lease=lease, executor_threads=executor_threads)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous.upper()
        # Each thread's connection is closed when the thread ends (see _Slot): kept until
        # close(), every thread that ever used the store held two open files.
        self._local = threading.local()
        self._connections: set[sqlite3.Connection] = set()
        self._in_use: set[sqlite3.Connection] = set()
        self._connections_lock = threading.Lock()
        self._closed = False
        # SQLite has one writer at a time; threads of this process queue here instead of
        # in SQLite's busy handler, which sleeps in growing steps and wastes the wait.
        self._write_lock = threading.Lock()
        # The file the store opened first (device, inode): a file deleted or replaced under
        # the store is refused instead of written to (a lost file) or recreated empty.
        self._identity: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None:
            return slot.connection
        if self._closed:
            raise SessionError("this SQLiteStore is closed")
        if self._identity is not None:
            self._check_file()  # never let a new connection create an empty file in its place
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are begun by hand, so a write can take the
            # lock up front (BEGIN IMMEDIATE) instead of failing to upgrade a read lock.
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as error:
            raise SessionError(f"cannot open: {_explain(error, str(self.path))}") from None
        except OSError as error:
            raise SessionError(
                f"cannot open the session database {str(self.path)!r}: {error}"
            ) from None
        if self._identity is None:
            self._identity = self._file_identity()
        slot = _Slot(connection)
        ended = weakref.finalize(
            slot, _thread_ended, self._connections_lock, self._connections, connection
        )
        ended.atexit = False  # at exit a daemon thread may still be using it
        with self._connections_lock:
            self._connections.add(connection)
        self._local.slot = slot
        return connection

    @contextmanager
    def _held(self) -> Iterator[None]:
        """This thread's connection, marked in use for the block: close() leaves it to this
        thread, which closes it at the end (SQLite closing a connection under another
        thread's statement crashes the process)."""
        connection = self._connection()
        with self._connections_lock:
            if self._closed:
                raise SessionError("this SQLiteStore is closed")
            self._in_use.add(connection)
        try:
            yield
        finally:
            with self._connections_lock:
                self._in_use.discard(connection)
                closing = self._closed
            if closing:
                connection.close()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino)

    def _check_file(self) -> None:
        identity = self._file_identity()
        if identity != self._identity:
            raise SessionError(
                f"the session database {str(self.path)!r} was "
                f"{'deleted' if identity is None else 'replaced'} while this store had it open; "
                "refusing to write to a lost file (nothing was written). Restore the file, or "
                "open a new SQLiteStore to start a new one."
            )

    @contextmanager
    def _transaction(self, *, write: bool, durable: bool = False) -> Iterator[Cursor]:
        try:
            with self._held(), self._transaction_on(write=write, durable=durable) as cursor:
                yield cursor
        except sqlite3.Error as error:
            raise SessionError(_explain(error, str(self.path))) from error
        except UnicodeEncodeError as error:
            raise SessionError(NOT_UTF8) from error

    @contextmanager
    def _transaction_on(self, *, write: bool, durable: bool) -> Iterator[Cursor]:
        if self._identity is not None:
            self._check_file()
        if not write:
            with self._begin("BEGIN") as cursor:
                yield cursor
            return
        with self._write_lock:
            if not durable or self._synchronous in ("FULL", "EXTRA"):
                with self._begin("BEGIN IMMEDIATE") as cursor:
                    yield cursor
                return
            # In WAL mode a FULL commit syncs the log up to it: this record and every
            # write before it (the round it belongs to) are on disk before the call runs.
            connection = self._connection()
            connection.execute("PRAGMA synchronous=FULL")
            try:
                with self._begin("BEGIN IMMEDIATE") as cursor:
                    yield cursor
            finally:
                connection.execute(f"PRAGMA synchronous={self._synchronous}")

    @contextmanager
    def _begin(self, statement: str) -> Iterator[Cursor]:
        connection = self._connection()
        cursor = connection.cursor()
        cursor.execute(statement)
        try:
            yield cursor
        except BaseException:
            connection.rollback()
            raise
        else:
            connection.commit()
        finally:
            cursor.close()

    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return cursor.fetchone() is not None

    def _create_statements(self) -> Sequence[str]:
        return _CREATE_V1

    def close(self) -> None:
        """Close the store's idle connections and its worker threads; a connection that a
        call is using is closed when that call ends, and later calls raise ``SessionError``."""
        super().close()
        with self._connections_lock:
            self._closed = True
            idle = [c for c in self._connections if c not in self._in_use]
            self._connections.clear()
        for connection in idle:
            connection.close()


def _explain(error: sqlite3.Error, path: str) -> str:
    """What went wrong with the database file, and what to do, in words."""
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    nothing = "nothing of this write was stored"
    if code == 13:  # SQLITE_FULL
        return f"the disk holding {path!r} is full: {nothing}. Free some space and retry."
    if code == 8:  # SQLITE_READONLY
        return (
            f"the session database {path!r} is read-only (the file's or its folder's "
            f"permissions, or a read-only mount): {nothing}. Make it writable and retry."
        )
    if code in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return (
            f"another process held the write lock of {path!r} longer than busy_timeout: "
            f"{nothing}. Retry, or open the store with a longer busy_timeout."
        )
    if code in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
        return (
            f"the session database {path!r} is damaged or not a SQLite file ({error}); "
            "restore it from a backup."
        )
    if code == 10:  # SQLITE_IOERR
        return f"reading or writing {path!r} failed ({error}): {nothing}. Check the disk."
    return f"the session database {path!r} failed: {error}"
