"""Closing a store while other threads still use it (a late tool result, a server shutting
down under its requests): the calls in flight end, with their result or a typed
``SessionError``, and the process lives. Closing a connection under another thread's
statement freed it in C (libpq, SQLite) and killed the process with SIGSEGV."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from agentkit import Agent
from agentkit.testing import ScriptedServer, echo

from ._support import StoreSpec

ROUNDS = 40  # the old close() crashed within a few rounds on each store


def _opener(spec: StoreSpec, folder: Path) -> str:
    if spec.kind == "sqlite":
        return (
            "from agentkit.sessions import SQLiteStore\n"
            f"def opened(n): return SQLiteStore({str(folder)!r} + f'/s{{n}}.db')\n"
        )
    return (
        "from agentkit.sessions import PostgresStore\n"
        f"def opened(n): return PostgresStore({spec.where!r}, schema={spec.schema!r})\n"
    )


BODY = """
import random, threading
from agentkit import SessionError

failures = set()

def busy(store):
    for i in range(200):
        try:
            store.load("big")  # a long read: the close lands inside it
            store.delete(f"s{i}")
        except SessionError:
            return  # the store was closed under this call: a typed error, as documented
        except BaseException as error:
            failures.add(f"{type(error).__name__}: {error}")
            return

random.seed(7)
for n in range(ROUNDS):
    store = opened(n)
    if n == 0 or store.list_sessions(prefix="big") == []:
        claim = store.claim("big")
        store.append(claim, [{"role": "user", "content": "x" * 200_000}] * 4, close_round=True)
        store.release(claim)
    threads = [threading.Thread(target=busy, args=(store,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    threading.Event().wait(random.random() * 0.01)
    store.close()
    for thread in threads:
        thread.join()
print(sorted(failures) or "clean")
"""


def test_closing_a_store_under_running_calls_ends_them_with_a_typed_error(
    spec: StoreSpec, tmp_path: Path
) -> None:
    source = _opener(spec, tmp_path) + f"ROUNDS = {ROUNDS}\n" + textwrap.dedent(BODY)
    child = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, f"the process died ({child.returncode}): {child.stderr[-2000:]}"
    assert child.stdout.strip() == "clean"


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` (or its WAL)."""
    names = {str(path), f"{path}-wal"}
    found = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found += str(fd.readlink()) in names
        except OSError:
            continue  # closed meanwhile, such as the descriptor iterdir itself used
    return found


def test_a_thread_that_ends_leaves_no_sqlite_connection_open(tmp_path: Path) -> None:
    """Each thread gets its own SQLite connection; it closes when the thread ends. Kept
    until close(), a server that ran its store calls in short-lived threads (a late
    result's thread, a thread per request) held two more open files per thread, until
    it could open no more."""
    from agentkit.sessions import SQLiteStore

    def in_threads(count: int) -> int:
        for _ in range(count):
            thread = threading.Thread(target=store.list_sessions)
            thread.start()
            thread.join()
        return _open_files(tmp_path / "s.db")

    store = SQLiteStore(tmp_path / "s.db")
    store.list_sessions()
    # SQLite keeps a closed connection's descriptor for reuse while another connection
    # holds the file (POSIX locks are per process): one, whatever the number of threads
    opened = in_threads(2)
    assert opened >= 2
    assert in_threads(50) == opened
    store.close()
    assert _open_files(tmp_path / "s.db") == 0


def test_each_asyncio_run_of_a_stored_session_leaves_no_file_open(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """``asyncio.run(agent.run_async(..., session=...))`` in a loop (a script, a task
    queue's worker): each run's store calls go to its loop's threads, which end with it;
    each run left three more files open on the store before."""
    from agentkit.sessions import SQLiteStore

    server.respond_with(echo())
    store = SQLiteStore(tmp_path / "s.db")
    agent = Agent("m", [], "x", base_url=server.base_url, api_key="k", store=store)

    def runs(count: int) -> int:
        for _ in range(count):
            asyncio.run(agent.run_async("hi", session="s1"))
        return _open_files(tmp_path / "s.db")

    opened = runs(2)
    assert runs(10) == opened
    agent.close()
    store.close()
