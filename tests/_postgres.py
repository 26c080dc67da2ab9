"""A private PostgreSQL server for tests that restart or kill it.

The shared test server (``AGENTKIT_TEST_POSTGRES``) is never stopped: a test that needs a
server to go away starts its own with ``initdb``/``pg_ctl`` (as the user ``agentkit-pg``
when run as root, as .ci/postgres.sh does) on a port bound once and handed over. Use the
``private_postgres`` fixture (import it into a conftest or test module), or
``PrivatePostgres`` directly.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PrivatePostgres", "private_postgres"]


class PrivatePostgres:
    """One throwaway PostgreSQL cluster on 127.0.0.1, its data in a temporary folder."""

    def __init__(self) -> None:
        for program in ("initdb", "pg_ctl"):
            if shutil.which(program) is None:
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(f"CI=true and {program} is not on the PATH")
                pytest.skip(f"{program} is not on the PATH")
        self._as: list[str] = []
        if (
            os.geteuid() == 0
            and subprocess.run(
                ["id", "-u", "agentkit-pg"], capture_output=True, check=False
            ).returncode
            != 0
        ):
            reason = "running as root needs the user agentkit-pg (made by .ci/postgres.sh)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as = ["runuser", "-u", "agentkit-pg", "--"]
            shutil.chown(self.folder, "agentkit-pg")
        self.data = self.folder / "db"
        self._run("initdb", "-D", str(self.data), "-U", "agentkit", "--auth=trust", "-E", "UTF8")
        with socket.socket() as probe:  # the port, found once and handed to the server
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dsn = f"postgresql://agentkit@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} -F"
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
