"""A private PostgreSQL server for tests that restart or kill it.

The shared test server (``AGENTKIT_TEST_POSTGRES``) is never stopped: a test that needs a
server to go away starts its own with ``initdb``/``pg_ctl`` (as the user ``agentkit-pg``
when run as root, as .ci/postgres.sh does). Use the ``private_postgres`` fixture (import it
into a conftest or test module), or ``PrivatePostgres`` directly.

The server listens on a Unix socket in its own temporary folder and on no TCP port.
PostgreSQL can neither be handed a bound socket nor pick a free port and report it, so a
TCP port would have to be found by binding and releasing one, which another process may
take before the server binds it (and again at each restart). A folder of its own is
nobody else's to take: the socket's name cannot clash, across restarts too.

``LostCommitRelay`` sits between a store and any PostgreSQL server and, once armed, cuts
the connection that carries the server's answer to a COMMIT: the server applied the
transaction, and the client never hears so (what a restart or a dropped network at that
moment does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

__all__ = ["LostCommitRelay", "PrivatePostgres", "private_postgres", "require_postgres_programs"]

_PORT = 5432  # only names the socket file (.s.PGSQL.5432) in the cluster's own folder


def require_postgres_programs() -> None:
    """Skip the test (fail it in CI) when PostgreSQL's programs cannot start a server here:
    ``initdb``/``pg_ctl`` are not on the PATH, or this is root and there is no user
    ``agentkit-pg`` to run the server as."""
    for program in ("initdb", "pg_ctl"):
        if shutil.which(program) is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true and {program} is not on the PATH")
            pytest.skip(f"{program} is not on the PATH")
    if (
        os.geteuid() == 0
        and subprocess.run(["id", "-u", "agentkit-pg"], capture_output=True, check=False).returncode
        != 0
    ):
        reason = "running as root needs the user agentkit-pg (made by .ci/postgres.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


class PrivatePostgres:
    """One throwaway PostgreSQL cluster, its data and its Unix socket in a temporary folder."""

    def __init__(self) -> None:
        require_postgres_programs()
        self._as: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as = ["runuser", "-u", "agentkit-pg", "--"]
            shutil.chown(self.folder, "agentkit-pg")
        self.data = self.folder / "db"
        self._run("initdb", "-D", str(self.data), "-U", "agentkit", "--auth=trust", "-E", "UTF8")
        self.socket_folder = self.data  # the server's own: no other cluster's socket is here
        self.dsn = f"postgresql://agentkit@/postgres?host={self.socket_folder}&port={_PORT}"
        self.start()

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # -h '': no TCP listener at all; -k: the socket's folder; -F: no fsync (thrown away)
        options = f"-h '' -p {_PORT} -k {self.socket_folder} -F"
        log = str(self.data / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", log, "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected, as an operator's restart does)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def restart(self) -> None:
        """Stop and start again: every open connection is cut."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server if it runs, and remove its data."""
        subprocess.run(
            [*self._as, "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test module's own, which its tests may restart."""
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()


# The server's CommandComplete for a COMMIT: 'C', its length (4 + 7), "COMMIT\0".
_COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class LostCommitRelay:
    """A TCP relay to a PostgreSQL server that, while ``armed`` is set, cuts the connection
    carrying the next answer to a COMMIT instead of passing it on (the server committed;
    the client sees its connection drop). ``dsn`` reaches the server through the relay.

    With ``hold`` set as well, that answer is held instead (``held`` is set meanwhile) and
    passed on once the client opens another connection (psycopg's cancel request, sent on
    Ctrl-C) or ``let_go`` is set.

    The relay binds its port once, here, and hands it over in ``dsn``. It reads the bytes
    it passes, so the connection is made without TLS (``sslmode=disable``).
    """

    def __init__(self, dsn: str) -> None:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(dsn)
        host = str(params.get("host") or "/var/run/postgresql")
        port = int(params.get("port") or 5432)
        if host.startswith("/"):
            self._upstream: tuple[int, Any] = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self._upstream = (socket.AF_INET, (host, port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.dsn = make_conninfo(
            dsn,
            host="127.0.0.1",
            port=self._listener.getsockname()[1],
            sslmode="disable",
            gssencmode="disable",
        )
        self.armed = threading.Event()
        self.cut = threading.Event()  # set once an answer to a COMMIT was cut
        self.hold = threading.Event()
        self.held = threading.Event()  # set while an answer to a COMMIT is held
        self.let_go = threading.Event()  # set by the next connection made
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.let_go.set()
            server = socket.socket(self._upstream[0], socket.SOCK_STREAM)
            server.connect(self._upstream[1])
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
                for source, sink, answers in ((client, server, False), (server, client, True)):
                    thread = threading.Thread(
                        target=self._pump, args=(source, sink, answers), daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        tail = b""  # a COMMIT's answer may come split over two reads
        try:
            while chunk := source.recv(65536):
                if answers and self.armed.is_set() and _COMMIT_DONE in tail + chunk:
                    self.armed.clear()
                    if not self.hold.is_set():
                        self.cut.set()
                        break
                    self.let_go.clear()
                    self.held.set()
                    self.let_go.wait(60)  # a liveness guard: the client's cancel ends it
                    self.held.clear()
                sink.sendall(chunk)
                tail = chunk[-len(_COMMIT_DONE) :]
        except OSError:
            pass
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop relaying: the listener and every connection are closed."""
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for end in sockets:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        for thread in self._threads:
            thread.join(timeout=30)
